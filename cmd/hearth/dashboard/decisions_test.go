package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/policies"
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

// TestUploadDuringApprovalIsRefused: a CSR re-uploaded while the project
// admin's approval of the site's pending request is issuing its kit is
// refused (409, audited), not allowed to replace the request being
// approved; the approval completes; an upload after it is refused as
// already approved.
func TestUploadDuringApprovalIsRefused(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	page := alice.addSite(url.Values{"name": {"site-1"}})
	_, csr := makeCSR(t, pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(page+"/csr", csr).want(t, http.StatusSeeOther)
	shown := pa.pendingShown()

	_, again := makeCSR(t, pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite})
	var during response
	h.srv.issuingHook = func(name string) {
		if name != "site-1" {
			t.Errorf("issuing %s", name)
		}
		alice.get(page)
		during = alice.upload(page+"/csr", again) // the approval holds its claim meanwhile
	}
	pa.post("/requests/"+shown.id+"/approve", shown.approveForm()).want(t, http.StatusSeeOther)
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

// TestApprovalBindsToTheKeyShown: the project admin's approval names the
// request and the key digest its page showed. After the org admin uploads
// the site's CSR again (another key), the form of the page shown before is
// refused (its request replaced), so is the new request with the old
// digest or none, each audited, and nothing is issued; the approval from
// the page shown after issues the kit with the new key. Request ids are
// never reused, even after a delete.
func TestApprovalBindsToTheKeyShown(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	page := alice.addSite(url.Values{"name": {"site-1"}})
	site := pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite}
	_, oldCSR := makeCSR(t, site)
	alice.upload(page+"/csr", oldCSR).want(t, http.StatusSeeOther)
	before := pa.pendingShown()
	if before.digest != keyDigest(oldCSR) || !strings.HasPrefix(before.digest, "sha256:") {
		t.Fatalf("the page shows key %s, want the CSR's %s", before.digest, keyDigest(oldCSR))
	}

	alice.get(page)
	_, newCSR := makeCSR(t, site)
	alice.upload(page+"/csr", newCSR).want(t, http.StatusSeeOther)
	after := pa.pendingShown()
	if after.id == before.id || after.digest == before.digest {
		t.Fatalf("after the re-upload the page shows request %s key %s, as before", after.id, after.digest)
	}

	for _, tc := range []struct {
		name, id string
		form     url.Values
		want     string
	}{
		{"the form shown before", before.id, before.approveForm(), "was replaced by a newer upload"},
		{"the new request with the old key", after.id, before.approveForm(), "not the key " + before.digest + " shown"},
		{"the new request with no key", after.id, nil, "names no key digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(auditRows(t, h, "cert.approve.refused"))
			pa.get("/requests")
			pa.post("/requests/"+tc.id+"/approve", tc.form).want(t, http.StatusConflict, tc.want)
			rows := auditRows(t, h, "cert.approve.refused")
			if len(rows) != n+1 || !strings.Contains(rows[n].Detail, tc.want) {
				t.Fatalf("refusal audited as %+v, want one more row saying %q", rows, tc.want)
			}
			if _, err := os.Stat(provision.KitDir(h.ws, "site-1")); !os.IsNotExist(err) {
				t.Fatalf("a kit was issued for site-1 (%v)", err)
			}
		})
	}
	if n := len(auditRows(t, h, "cert.approve")); n != 0 {
		t.Fatalf("%d approvals audited, want none", n)
	}

	pa.post("/requests/"+after.id+"/approve", after.approveForm()).want(t, http.StatusSeeOther)
	certPEM, err := os.ReadFile(filepath.Join(provision.KitDir(h.ws, "site-1"), "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pki.ParseCSR(newCSR)
	if err != nil {
		t.Fatal(err)
	}
	if !want.PublicKey.Equal(cert.PublicKey) {
		t.Fatal("site-1's certificate does not carry the key of the CSR approved")
	}
	list := pa.get("/requests").want(t, 200, `<span class="status replaced">replaced</span>`).body
	if !strings.Contains(list, before.digest) {
		t.Fatal("the replaced request's key is no longer shown")
	}

	// The schema never hands out an id again, even one whose row is gone.
	ctx := context.Background()
	if _, err := h.srv.db.ExecContext(ctx, `DELETE FROM requests WHERE id = ?`, after.id); err != nil {
		t.Fatal(err)
	}
	res, err := h.srv.db.ExecContext(ctx, `INSERT INTO requests (name, org, kind, site_id, uploaded_by, csr_pem, status, uploaded_at)
		SELECT 'site-1', 'clinic-a', 'site', id, 1, 'x', 'refused', 0 FROM sites WHERE name = 'site-1'`)
	if err != nil {
		t.Fatal(err)
	}
	next, err := res.LastInsertId()
	if err != nil {
		t.Fatal(err)
	}
	if next <= mustInt(t, after.id) {
		t.Fatalf("a new request got id %d, reusing the deleted %s", next, after.id)
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDecisionsOnlyOnPendingRequests: approving or refusing a request that
// is not pending (approved, refused, or none such) is refused with the
// reason and audited, and no kit is issued twice.
func TestDecisionsOnlyOnPendingRequests(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	site1 := alice.addSite(url.Values{"name": {"site-1"}})
	site2 := alice.addSite(url.Values{"name": {"site-2"}})
	_, csr1 := makeCSR(t, pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(site1+"/csr", csr1).want(t, http.StatusSeeOther)
	first := pa.pendingShown()
	approved := first.id
	pa.post("/requests/"+approved+"/approve", first.approveForm()).want(t, http.StatusSeeOther)
	cert, err := os.ReadFile(filepath.Join(provision.KitDir(h.ws, "site-1"), "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	_, csr2 := makeCSR(t, pki.Identity{Name: "site-2", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(site2+"/csr", csr2).want(t, http.StatusSeeOther)
	second := pa.pendingShown()
	refused := second.id
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

// TestApprovalRefusedByProvisioningIsAudited: an approval that
// provisioning refuses (here the name was given to a site by `hearth
// provision` after the CSR was uploaded) is answered 409 with the reason
// and audited as cert.approve.refused, like every other refused approval;
// the request stays pending and no kit is issued for it.
func TestApprovalRefusedByProvisioningIsAudited(t *testing.T) {
	h := newHarness(t)
	pa, alice := h.projectAndOrgAdmin()
	page := alice.addSite(url.Values{"name": {"site-1"}})
	_, csr := makeCSR(t, pki.Identity{Name: "site-1", Org: "clinic-a", Kind: pki.KindSite})
	alice.upload(page+"/csr", csr).want(t, http.StatusSeeOther)
	shown := pa.pendingShown()

	p, err := provision.ReadProject(h.ws)
	if err != nil {
		t.Fatal(err)
	}
	p.Sites = append(p.Sites, provision.SiteSpec{Name: "site-1", Org: "clinic-a"})
	if _, err := provision.Provision(p, h.ws, []byte(testPassphrase), policies.Defaults(), time.Now()); err != nil {
		t.Fatal(err)
	}
	central, err := os.ReadFile(filepath.Join(provision.KitDir(h.ws, "site-1"), "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}

	pa.post("/requests/"+shown.id+"/approve", shown.approveForm()).want(t, http.StatusConflict, "site-1")
	rows := auditRows(t, h, "cert.approve.refused")
	if len(rows) != 1 || rows[0].Actor != paEmail || !strings.Contains(rows[0].Detail, "site-1") {
		t.Fatalf("the approval provisioning refused audited as %+v, want one cert.approve.refused row", rows)
	}
	if n := len(auditRows(t, h, "cert.approve")); n != 0 {
		t.Fatalf("%d approvals audited, want none", n)
	}
	if again, _ := os.ReadFile(filepath.Join(provision.KitDir(h.ws, "site-1"), "cert.pem")); string(again) != string(central) {
		t.Fatal("site-1's kit was issued again")
	}
	if after := pa.pendingShown(); after.id != shown.id {
		t.Fatalf("the request is no longer the pending one: %+v", after)
	}
}
