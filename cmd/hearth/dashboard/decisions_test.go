package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
)

// auditRows are the audit's rows of action, oldest first.
func auditRows(t *testing.T, h *harness, action string) []AuditEntry {
	t.Helper()
	entries, err := readAudit(context.Background(), h.srv.db)
	if err != nil {
		t.Fatal(err)
	}
	var out []AuditEntry
	for _, e := range entries {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

var requestIDRE = regexp.MustCompile(`action="/requests/(\d+)/approve"`)

// pendingID is the id of the one pending request on the requests page.
func pendingID(t *testing.T, pa *client) string {
	t.Helper()
	m := requestIDRE.FindAllStringSubmatch(pa.get("/requests").want(t, 200).body, -1)
	if len(m) != 1 {
		t.Fatalf("%d pending requests, want one", len(m))
	}
	return m[0][1]
}

// TestUploadDuringApprovalIsRefused: a CSR re-uploaded while the project
// admin's approval of the site's pending request is issuing its kit is
// refused (409, audited), not allowed to replace the request being
// approved; the approval completes; an upload after it is refused as
// already approved.
func TestUploadDuringApprovalIsRefused(t *testing.T) {
	h := newHarness(t)
	pa := h.setupAdmin(paEmail, "hub", paPass)
	alice := h.accept(pa.invite(aliceEm, pki.RoleOrgAdmin, "clinic-a"), alicePw)
	page := alice.addSite(url.Values{"name": {"site-1"}})
	_, csr := makeCSR(t, pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(page+"/csr", csr).want(t, http.StatusSeeOther)
	id := pendingID(t, pa)

	_, again := makeCSR(t, pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite})
	var during response
	h.srv.issuingHook = func(name string) {
		if name != "site-1" {
			t.Errorf("issuing %s", name)
		}
		alice.get(page)
		during = alice.upload(page+"/csr", again) // the approval holds its claim meanwhile
	}
	pa.post("/requests/"+id+"/approve", nil).want(t, http.StatusSeeOther)
	h.srv.issuingHook = nil
	during.want(t, http.StatusConflict, "site-1 is being approved")
	alice.get(page).want(t, 200, `id="site-status">approved`)

	alice.upload(page+"/csr", again).want(t, http.StatusConflict, "site-1 is already approved")
	rows := auditRows(t, h, "csr.upload.refused")
	if len(rows) != 2 || rows[0].Target != "site-1" || !strings.Contains(rows[0].Detail, "being approved") || !strings.Contains(rows[1].Detail, "already approved") {
		t.Fatalf("refused uploads audited: %+v", rows)
	}
	if n := len(auditRows(t, h, "cert.approve")); n != 1 {
		t.Fatalf("%d approvals audited, want 1", n)
	}
}

// TestDecisionsOnlyOnPendingRequests: approving or refusing a request that
// is not pending (approved, refused, or none such) is refused with the
// reason and audited, and no kit is issued twice.
func TestDecisionsOnlyOnPendingRequests(t *testing.T) {
	h := newHarness(t)
	pa := h.setupAdmin(paEmail, "hub", paPass)
	alice := h.accept(pa.invite(aliceEm, pki.RoleOrgAdmin, "clinic-a"), alicePw)
	site1 := alice.addSite(url.Values{"name": {"site-1"}})
	site2 := alice.addSite(url.Values{"name": {"site-2"}})
	_, csr1 := makeCSR(t, pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(site1+"/csr", csr1).want(t, http.StatusSeeOther)
	approved := pendingID(t, pa)
	pa.post("/requests/"+approved+"/approve", nil).want(t, http.StatusSeeOther)
	cert, err := os.ReadFile(filepath.Join(provision.KitDir(h.ws, "site-1"), "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	_, csr2 := makeCSR(t, pki.Identity{Name: "site-2", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(site2+"/csr", csr2).want(t, http.StatusSeeOther)
	refused := pendingID(t, pa)
	pa.post("/requests/"+refused+"/refuse", url.Values{"reason": {"not this one"}}).want(t, http.StatusSeeOther)

	for _, tc := range []struct {
		name, path, action, want string
		status                   int
	}{
		{"approve an approved request", "/requests/" + approved + "/approve", "cert.approve.refused", "for site-1 is already approved", http.StatusConflict},
		{"refuse an approved request", "/requests/" + approved + "/refuse", "cert.refuse.refused", "for site-1 is already approved", http.StatusConflict},
		{"approve a refused request", "/requests/" + refused + "/approve", "cert.approve.refused", "for site-2 is already refused", http.StatusConflict},
		{"refuse a refused request", "/requests/" + refused + "/refuse", "cert.refuse.refused", "for site-2 is already refused", http.StatusConflict},
		{"approve a request that does not exist", "/requests/9999/approve", "cert.approve.refused", "not found", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(auditRows(t, h, tc.action))
			pa.get("/requests")
			pa.post(tc.path, nil).want(t, tc.status, tc.want)
			rows := auditRows(t, h, tc.action)
			if len(rows) != before+1 || !strings.Contains(rows[len(rows)-1].Detail, tc.want) || rows[len(rows)-1].Actor != paEmail {
				t.Fatalf("audit of %s: %+v, want one more row saying %q", tc.action, rows, tc.want)
			}
		})
	}

	// Nothing was issued twice: site-1's certificate is the first one,
	// issued once; site-2 has none.
	if again, _ := os.ReadFile(filepath.Join(provision.KitDir(h.ws, "site-1"), "cert.pem")); string(again) != string(cert) {
		t.Fatal("site-1's certificate was issued again")
	}
	var issued map[string]json.RawMessage
	data, err := os.ReadFile(filepath.Join(h.ws, "ca", "issued.json"))
	if err != nil || json.Unmarshal(data, &issued) != nil {
		t.Fatalf("issued.json: %v", err)
	}
	if _, ok := issued["site-2"]; ok {
		t.Fatal("the refused site-2 was issued a certificate")
	}
	if n := len(auditRows(t, h, "cert.approve")); n != 1 {
		t.Fatalf("%d approvals audited, want 1", n)
	}
}
