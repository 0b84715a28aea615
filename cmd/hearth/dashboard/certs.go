package dashboard

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
)

// Request statuses.
const (
	statusPending  = "pending"
	statusApproved = "approved"
	statusRefused  = "refused"
	// statusReplaced is a pending request that a later upload for the same
	// site or account replaced: kept, so that its id is never reused and
	// an approval shown before the upload is refused with the reason.
	statusReplaced = "replaced"
)

// certRequest is a row of requests.
type certRequest struct {
	ID       int64
	Identity pki.Identity
	SiteID   int64 // 0: an account's own request
	UserID   int64
	By       string
	PEM      string
	Status   string
	Uploaded time.Time
	Decided  *time.Time
	// KeyDigest is the SHA-256 of the request's public key (its
	// SubjectPublicKeyInfo, DER), "sha256:" and hex: what the requests
	// page shows and its approve form sends back (keyDigest).
	KeyDigest string
}

const requestColumns = `r.id, r.name, r.org, r.kind, r.role, COALESCE(r.site_id, 0), COALESCE(r.user_id, 0), u.email, r.csr_pem, r.status, r.uploaded_at, r.decided_at`

func scanRequest(sc interface{ Scan(...any) error }) (*certRequest, error) {
	var q certRequest
	var kind, role string
	var uploaded int64
	var decided sql.NullInt64
	if err := sc.Scan(&q.ID, &q.Identity.Name, &q.Identity.Org, &kind, &role, &q.SiteID, &q.UserID, &q.By, &q.PEM, &q.Status, &uploaded, &decided); err != nil {
		return nil, err
	}
	q.Identity.Kind, q.Identity.Role = pki.Kind(kind), pki.Role(role)
	q.Uploaded = time.Unix(uploaded, 0)
	q.KeyDigest = keyDigest([]byte(q.PEM))
	if decided.Valid {
		t := time.Unix(decided.Int64, 0)
		q.Decided = &t
	}
	return &q, nil
}

// latestRequest is the newest request of a site (col "site_id") or an
// account (col "user_id"); nil when there is none.
func (s *Server) latestRequest(ctx context.Context, col string, id int64) (*certRequest, error) {
	return latestRequestIn(ctx, s.db, col, id)
}

// latestRequestIn is latestRequest through db, a transaction or the database.
func latestRequestIn(ctx context.Context, db execer, col string, id int64) (*certRequest, error) {
	if col != "site_id" && col != "user_id" {
		return nil, fmt.Errorf("latestRequest: column %q", col)
	}
	q, err := scanRequest(db.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests r JOIN users u ON u.id = r.uploaded_by
		WHERE r.`+col+` = ? ORDER BY r.id DESC LIMIT 1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return q, err
}

// keyDigest is the SHA-256 of csr's public key as SubjectPublicKeyInfo
// DER, "sha256:" and 64 hex digits; the requester can compute the same from
// its key (`openssl pkey -in key.pem -pubout -outform DER | sha256sum`).
// A CSR that does not parse (none is stored: uploads are checked) has the
// digest "unreadable", which no form matches.
func keyDigest(csr []byte) string {
	req, err := pki.ParseCSR(csr)
	if err != nil {
		return "unreadable"
	}
	der, err := x509.MarshalPKIXPublicKey(req.PublicKey)
	if err != nil {
		return "unreadable"
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// readCSR reads the uploaded (csr_file) or pasted (csr) request.
func readCSR(r *http.Request) ([]byte, error) {
	if f, _, err := r.FormFile("csr_file"); err == nil {
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, maxForm))
		if err != nil {
			return nil, err
		}
		if len(strings.TrimSpace(string(data))) > 0 {
			return data, nil
		}
	}
	if v := r.PostFormValue("csr"); strings.TrimSpace(v) != "" {
		return []byte(v), nil
	}
	return nil, badRequest("no certificate request: choose the .csr file that `hearth cert request` wrote, or paste it")
}

// checkCSR parses csr and refuses it unless it asks for exactly want,
// naming each field that differs.
func checkCSR(csr []byte, want pki.Identity) (*pki.Request, error) {
	req, err := pki.ParseCSR(csr)
	if err != nil {
		return nil, badRequest("certificate request: %v", err)
	}
	got := req.Identity
	var diffs []string
	if got.Name != want.Name {
		diffs = append(diffs, fmt.Sprintf("name %q, not %q", got.Name, want.Name))
	}
	if got.Org != want.Org {
		diffs = append(diffs, fmt.Sprintf("org %q, not %q", got.Org, want.Org))
	}
	if got.Kind != want.Kind {
		diffs = append(diffs, fmt.Sprintf("kind %q, not %q", got.Kind, want.Kind))
	}
	if got.Role != want.Role {
		diffs = append(diffs, fmt.Sprintf("role %q, not %q", got.Role, want.Role))
	}
	if len(diffs) > 0 {
		return nil, badRequest("the certificate request asks for %s: make it again with --name %s --org %s --kind %s%s",
			strings.Join(diffs, ", "), want.Name, want.Org, want.Kind, roleFlag(want.Role))
	}
	if err := provision.CheckRequest(req.Identity, req.Hosts); err != nil {
		return nil, badRequest("certificate request: %v", err)
	}
	return req, nil
}

func roleFlag(r pki.Role) string {
	if r == "" {
		return ""
	}
	return " --role " + string(r)
}

// storeRequest records a pending request for a site or an account,
// replacing an earlier pending one (kept as replaced: ids are never
// reused, and an approval of the old one is refused); it refuses (409, audited as
// csr.upload.refused) where a certificate was already approved, or is
// being approved from the pending request now (reqMu).
func (s *Server) storeRequest(ctx context.Context, u *User, col string, id int64, want pki.Identity, csr []byte) error {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	now := s.now()
	var refusal error
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		prev, err := latestRequestIn(ctx, tx, col, id)
		if err != nil {
			return err
		}
		switch {
		case s.issuing[want.Name]:
			refusal = conflict("the certificate of %s is being approved from its pending request right now: this upload would replace it, so it is refused (once approved, names are never reused)", want.Name)
		case prev != nil && prev.Status == statusApproved:
			refusal = conflict("%s is already approved: it holds a certificate, and names are never reused (revoke it and register under a new name)", want.Name)
		}
		if refusal != nil {
			return audit(ctx, tx, now, u.Email, "csr.upload.refused", want.Name, refusal.(*httpError).msg)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET status = ?, decided_at = ? WHERE `+col+` = ? AND status = ?`,
			statusReplaced, now.Unix(), id, statusPending); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO requests (name, org, kind, role, `+col+`, uploaded_by, csr_pem, status, uploaded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, want.Name, want.Org, string(want.Kind), string(want.Role), id, u.ID, string(csr), statusPending, now.Unix()); err != nil {
			return err
		}
		return audit(ctx, tx, now, u.Email, "csr.upload", want.Name, want.String())
	})
	if err != nil {
		return err
	}
	return refusal
}

func (s *Server) uploadSiteCSR(w http.ResponseWriter, r *http.Request, rq *request) error {
	st, err := s.siteFor(r.Context(), r, rq.user, ActEditSite)
	if err != nil {
		return err
	}
	csr, err := readCSR(r)
	if err != nil {
		return err
	}
	want := pki.Identity{Name: st.Name, Org: st.Org, Kind: pki.KindSite}
	if _, err := checkCSR(csr, want); err != nil {
		return err
	}
	if err := s.storeRequest(r.Context(), rq.user, "site_id", st.ID, want, csr); err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("/sites/%d", st.ID), http.StatusSeeOther)
	return nil
}

// ownIdentity is the admin certificate an account may request.
func ownIdentity(u *User) pki.Identity {
	return pki.Identity{Name: u.Email, Org: u.Org, Kind: pki.KindAdmin, Role: u.Role}
}

func (s *Server) uploadOwnCSR(w http.ResponseWriter, r *http.Request, rq *request) error {
	csr, err := readCSR(r)
	if err != nil {
		return err
	}
	want := ownIdentity(rq.user)
	if _, err := checkCSR(csr, want); err != nil {
		return err
	}
	if err := s.storeRequest(r.Context(), rq.user, "user_id", rq.user.ID, want, csr); err != nil {
		return err
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

func (s *Server) home(w http.ResponseWriter, r *http.Request, rq *request) error {
	req, err := s.latestRequest(r.Context(), "user_id", rq.user.ID)
	if err != nil {
		return err
	}
	var pending int
	if rq.user.Role == pki.RoleProjectAdmin {
		if err := s.db.QueryRowContext(r.Context(), `SELECT COUNT(*) FROM requests WHERE status = ?`, statusPending).Scan(&pending); err != nil {
			return err
		}
	}
	s.render(w, r, rq, http.StatusOK, "home.html", "Home", map[string]any{
		"Request": req, "Own": ownIdentity(rq.user), "Pending": pending})
	return nil
}

func (s *Server) requestList(ctx context.Context) ([]*certRequest, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+requestColumns+` FROM requests r JOIN users u ON u.id = r.uploaded_by
		ORDER BY r.status != 'pending', r.id DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*certRequest
	for rows.Next() {
		q, err := scanRequest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

func (s *Server) requests(w http.ResponseWriter, r *http.Request, rq *request) error {
	list, err := s.requestList(r.Context())
	if err != nil {
		return err
	}
	s.render(w, r, rq, http.StatusOK, "requests.html", "Certificate requests", map[string]any{"List": list})
	return nil
}

// pendingRequest loads the path's request, which must be pending.
func (s *Server) pendingRequest(ctx context.Context, r *http.Request) (*certRequest, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, notFound("request")
	}
	q, err := scanRequest(s.db.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests r JOIN users u ON u.id = r.uploaded_by WHERE r.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("request")
	}
	if err != nil {
		return nil, err
	}
	switch q.Status {
	case statusPending:
		return q, nil
	case statusReplaced:
		return nil, conflict("request %d for %s was replaced by a newer upload: reload the requests page and check the new request's key digest", q.ID, q.Identity.Name)
	}
	return nil, conflict("request %d for %s is already %s", q.ID, q.Identity.Name, q.Status)
}

// keyDigestField is the approve form's field naming the key digest shown.
const keyDigestField = "key_sha256"

// checkShownKey refuses (409) an approval whose form names another key
// digest than q's: the page it came from showed another request.
func checkShownKey(r *http.Request, q *certRequest) error {
	shown := r.PostFormValue(keyDigestField)
	switch {
	case shown == "":
		return conflict("the approval names no key digest (%s): approve from the requests page, which shows the key it approves", keyDigestField)
	case shown != q.KeyDigest:
		return conflict("request %d for %s is for key %s, not the key %s shown where it was approved: its CSR was uploaded again; reload the requests page and check the key", q.ID, q.Identity.Name, q.KeyDigest, bounded(shown))
	}
	return nil
}

// refusedDecision audits an approval or refusal refused (action) because
// its request is not pending (or not found), or provisioning refused it,
// and returns the refusal.
func (s *Server) refusedDecision(r *http.Request, rq *request, action string, refusal error) error {
	var he *httpError
	if !errors.As(refusal, &he) {
		return refusal
	}
	if err := audit(r.Context(), s.db, s.now(), rq.user.Email, action, "request "+bounded(r.PathValue("id")), he.msg); err != nil {
		return errors.Join(refusal, err)
	}
	return refusal
}

// approve issues the kit of a pending request whose key digest is the one
// the form sends (the key the page showed). It claims the request
// (issuing) while the kit is issued, so that a re-upload meanwhile is
// refused; a request that is not pending, or whose key is not the one
// shown, is refused, audited, its kit never issued (nor twice).
func (s *Server) approve(w http.ResponseWriter, r *http.Request, rq *request) error {
	s.wsMu.Lock()
	defer s.wsMu.Unlock()
	s.reqMu.Lock()
	q, err := s.pendingRequest(r.Context(), r)
	if err == nil {
		err = checkShownKey(r, q)
	}
	if err == nil {
		s.issuing[q.Identity.Name] = true
	}
	s.reqMu.Unlock()
	if err != nil {
		return s.refusedDecision(r, rq, "cert.approve.refused", err)
	}
	defer func() {
		s.reqMu.Lock()
		delete(s.issuing, q.Identity.Name)
		s.reqMu.Unlock()
	}()
	if s.issuingHook != nil {
		s.issuingHook(q.Identity.Name)
	}
	now := s.now()
	var dir string
	if q.SiteID != 0 {
		var st *Site
		st, err = scanSite(s.db.QueryRowContext(r.Context(), `SELECT `+siteColumns+` FROM sites s JOIN users u ON u.id = s.created_by WHERE s.id = ?`, q.SiteID))
		if err != nil {
			return err
		}
		spec := provision.SiteSpec{Name: st.Name, Org: st.Org, Websocket: st.Websocket, Proxy: st.Proxy, DataDir: SiteDataDir}
		var defaults fs.FS
		var cleanup func()
		if defaults, cleanup, err = withSiteResources(s.cfg.Defaults, st); err != nil {
			return err
		}
		defer cleanup()
		dir, err = provision.ApproveSite(s.ws, s.cfg.Passphrase, []byte(q.PEM), spec, defaults, now)
	} else {
		dir, err = provision.Approve(s.ws, s.cfg.Passphrase, []byte(q.PEM), s.cfg.Defaults, now)
	}
	if err != nil { // provisioning refused it (a name `hearth provision` took meanwhile, say)
		return s.refusedDecision(r, rq, "cert.approve.refused", conflict("%v", err))
	}
	err = inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(r.Context(), `UPDATE requests SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = ?`,
			statusApproved, rq.user.ID, now.Unix(), q.ID, statusPending)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(fmt.Errorf("request %d was no longer pending", q.ID), err)
		}
		return audit(r.Context(), tx, now, rq.user.Email, "cert.approve", q.Identity.Name, "kit "+dir)
	})
	if err != nil {
		s.log.Error("approved but not recorded: the kit exists", "name", q.Identity.Name, "kit", dir, "err", err)
		return err
	}
	http.Redirect(w, r, "/requests", http.StatusSeeOther)
	return nil
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, rq *request) error {
	s.wsMu.Lock() // not while an approval of the same request is under way
	defer s.wsMu.Unlock()
	q, err := s.pendingRequest(r.Context(), r)
	if err != nil {
		return s.refusedDecision(r, rq, "cert.refuse.refused", err)
	}
	now := s.now()
	err = inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(r.Context(), `UPDATE requests SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = ?`,
			statusRefused, rq.user.ID, now.Unix(), q.ID, statusPending)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(conflict("request %d for %s is no longer pending", q.ID, q.Identity.Name), err)
		}
		return audit(r.Context(), tx, now, rq.user.Email, "cert.refuse", q.Identity.Name, bounded(r.PostFormValue("reason")))
	})
	if err != nil {
		return s.refusedDecision(r, rq, "cert.refuse.refused", err) // replaced by an upload meanwhile
	}
	http.Redirect(w, r, "/requests", http.StatusSeeOther)
	return nil
}

func (s *Server) downloadSiteKit(w http.ResponseWriter, r *http.Request, rq *request) error {
	st, err := s.siteFor(r.Context(), r, rq.user, ActDownloadKit)
	if err != nil {
		return err
	}
	return s.downloadKit(w, r, rq, "site_id", st.ID)
}

func (s *Server) downloadOwnKit(w http.ResponseWriter, r *http.Request, rq *request) error {
	return s.downloadKit(w, r, rq, "user_id", rq.user.ID)
}

// downloadKit sends the approved kit of a site or account as NAME.tar.gz:
// the kit folder as provision.Approve wrote it (no key.pem), without its
// state/ folder.
func (s *Server) downloadKit(w http.ResponseWriter, r *http.Request, rq *request, col string, id int64) error {
	q, err := s.latestRequest(r.Context(), col, id)
	if err != nil {
		return err
	}
	if q == nil || q.Status != statusApproved {
		return notFound("approved kit")
	}
	name := q.Identity.Name
	return s.sendKit(w, r, rq, name)
}

// sendKit answers name's kit as a tar.gz, audited; a revoked
// participant's is not handed out.
func (s *Server) sendKit(w http.ResponseWriter, r *http.Request, rq *request, name string) error {
	var revoked bool
	if err := s.db.QueryRowContext(r.Context(), `SELECT EXISTS (SELECT 1 FROM revoked WHERE name = ?)`, name).Scan(&revoked); err != nil {
		return err
	}
	if revoked {
		return &httpError{status: http.StatusGone, msg: fmt.Sprintf("the certificate of %s was revoked: its kit is no longer handed out", name)}
	}
	if err := audit(r.Context(), s.db, s.now(), rq.user.Email, "kit.download", name, ""); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-kit.tar.gz"`, name))
	return writeKitArchive(w, provision.KitDir(s.ws, name), name)
}

// writeKitArchive writes dir as a gzipped tar whose entries lie under
// prefix/, keeping file modes; state/ and key.pem are left out, and only
// folders and regular files are written.
func writeKitArchive(w io.Writer, dir, prefix string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == kit.StateDirName || rel == kit.KeyFile {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			return nil
		}
		name := prefix
		if rel != "." {
			name += "/" + rel
		}
		hdr := &tar.Header{Name: name, Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()}
		if info.IsDir() {
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
			return tw.WriteHeader(hdr)
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("kit archive %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// participant is a row of the participants page.
type participant struct {
	Identity pki.Identity
	Source   string // "dashboard" or "provision"
	Revoked  *time.Time
	// Link is "connected", "disconnected" (sites and aggregation hosts, as
	// the server's hub sees their leaf connections), "answering" (the
	// server, when its console answered) or "" (admins: consoles come and
	// go; or nobody could say).
	Link string
}

func (s *Server) participants(w http.ResponseWriter, r *http.Request, rq *request) error {
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return err
	}
	revoked := map[string]time.Time{}
	rows, err := s.db.QueryContext(r.Context(), `SELECT name, revoked_at FROM revoked`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var n string
		var at int64
		if err := rows.Scan(&n, &at); err != nil {
			rows.Close()
			return err
		}
		revoked[strings.ToLower(n)] = time.Unix(at, 0)
	}
	rows.Close()
	fromDashboard := map[string]bool{}
	list, err := s.requestList(r.Context())
	if err != nil {
		return err
	}
	for _, q := range list {
		if q.Status == statusApproved {
			fromDashboard[strings.ToLower(q.Identity.Name)] = true
		}
	}
	links, linkProblem := s.connections(r.Context())
	var ps []participant
	add := func(id pki.Identity) {
		pt := participant{Identity: id, Source: "provision"}
		switch up, known := links[strings.ToLower(id.Name)]; {
		case links == nil:
		case id.Kind == pki.KindServer:
			pt.Link = "answering"
		case known && up:
			pt.Link = "connected"
		case known:
			pt.Link = "disconnected"
		}
		if fromDashboard[strings.ToLower(id.Name)] {
			pt.Source = "dashboard"
		}
		if t, ok := revoked[strings.ToLower(id.Name)]; ok {
			pt.Revoked = &t
		}
		ps = append(ps, pt)
	}
	add(pki.Identity{Name: p.Server.Name, Org: p.Server.Org, Kind: pki.KindServer})
	for _, x := range p.Sites {
		add(pki.Identity{Name: x.Name, Org: x.Org, Kind: pki.KindSite})
	}
	for _, x := range p.Admins {
		add(pki.Identity{Name: x.Name, Org: x.Org, Kind: pki.KindAdmin, Role: x.Role})
	}
	for _, x := range p.Aggregators {
		add(pki.Identity{Name: x.Name, Org: x.Org, Kind: pki.KindAggregator})
	}
	s.render(w, r, rq, http.StatusOK, "participants.html", "Participants", map[string]any{"List": ps, "LinkProblem": linkProblem, "Admin": s.cfg.ConsoleName})
	return nil
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request, rq *request) error {
	name := r.PathValue("name")
	if err := pki.ValidName(name); err != nil {
		return notFound("participant")
	}
	s.wsMu.Lock()
	defer s.wsMu.Unlock()
	now := s.now()
	if err := provision.Revoke(s.ws, s.cfg.Passphrase, name, now); err != nil {
		return conflict("%v", err)
	}
	err := inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(r.Context(), `INSERT INTO revoked (name, revoked_by, revoked_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET revoked_by = excluded.revoked_by, revoked_at = excluded.revoked_at`, name, rq.user.ID, now.Unix()); err != nil {
			return err
		}
		// An account of that name is disabled and its sessions end.
		if _, err := tx.ExecContext(r.Context(), `UPDATE users SET disabled = 1 WHERE email = ?`, name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(r.Context(), `DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE email = ?)`, name); err != nil {
			return err
		}
		return audit(r.Context(), tx, now, rq.user.Email, "cert.revoke", name, "new CRL in ca/crl.pem and every kit; its account disabled")
	})
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/participants", http.StatusSeeOther)
	return nil
}

// auditPageSize is how many audit rows one page shows.
const auditPageSize = 200

// auditPage shows auditPageSize rows, newest first, older ones from
// ?before=SEQ; the chain is checked whole, row by row, without holding
// it in memory.
func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	before, err := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	if err != nil || before <= 0 {
		before = 1 << 62
	}
	chain := "intact"
	if _, err := verifyAuditRows(r.Context(), s.db); err != nil {
		chain = "BROKEN: " + err.Error()
	}
	var count int
	if err := s.db.QueryRowContext(r.Context(), `SELECT COUNT(*) FROM audit`).Scan(&count); err != nil {
		return err
	}
	rows, err := s.db.QueryContext(r.Context(), `SELECT seq, at, actor, action, target, detail, prev_hash, hash FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?`, before, auditPageSize)
	if err != nil {
		return err
	}
	defer rows.Close()
	var entries []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		e.At = time.Unix(at, 0).UTC()
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var older int64
	if n := len(entries); n == auditPageSize && entries[n-1].Seq > 1 {
		older = entries[n-1].Seq
	}
	s.render(w, r, rq, http.StatusOK, "audit.html", "Audit log", map[string]any{"List": entries, "Chain": chain, "Count": count, "Older": older})
	return nil
}
