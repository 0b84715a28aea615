package dashboard

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
)

// errSignin is the one answer to a wrong password and an unknown account.
const errSignin = "wrong e-mail or password"

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	s.render(w, r, rq, http.StatusOK, "signin.html", "Sign in", s.signinData(w, r, nil))
	return nil
}

// clientIP is the TCP peer's address: the dashboard trusts no proxy
// headers.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// addressKey is the sign-in limiter's key for a client address: an IPv4
// address itself, an IPv6 address its /64 (one host usually holds a whole
// /64, so single addresses would give it billions of allowances).
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Unmap().Is4() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

func (s *Server) signin(w http.ResponseWriter, r *http.Request, rq *request) error {
	email := strings.TrimSpace(r.PostFormValue("email"))
	password := r.PostFormValue("password")
	now := s.now()
	account, addr := strings.ToLower(bounded(email)), addressKey(clientIP(r))
	// Reserve the attempt on both keys before any hashing; a throttled
	// attempt costs no hashing and is audited once per lock window.
	d, first := s.accounts.reserve(now, account)
	if d == 0 {
		if d, first = s.addresses.reserve(now, addr); d > 0 {
			s.accounts.release(account)
		}
	}
	if d > 0 {
		return s.throttled(w, r, now, email, d, first)
	}
	release := func() { s.accounts.release(account); s.addresses.release(addr) }
	u, hash, err := s.userByEmail(r.Context(), email)
	switch {
	case errors.Is(err, sql.ErrNoRows), err == nil && u.Disabled:
		hash = s.dummyHash // the same work as a real account
	case err != nil:
		release()
		return err
	}
	found := err == nil && !u.Disabled
	ok, err := s.checkPassword(r.Context(), password, hash)
	if err != nil {
		release()
		return err
	}
	success := found && ok
	s.accounts.settle(now, account, !success, true)
	s.addresses.settle(now, addr, !success, false)
	if !success {
		if err := audit(r.Context(), s.db, now, email, "signin.fail", "", "from "+clientIP(r)); err != nil {
			return err
		}
		s.render(w, r, rq, http.StatusUnauthorized, "signin.html", "Sign in",
			s.signinData(w, r, map[string]any{"Error": errSignin, "Email": email}))
		return nil
	}
	// The session and its audit row commit together, before the cookie.
	var id string
	err = inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		var err error
		if id, err = s.storeSession(r.Context(), tx, u); err != nil {
			return err
		}
		return audit(r.Context(), tx, now, u.Email, "signin.ok", "", "from "+clientIP(r))
	})
	if err != nil {
		return err
	}
	setSessionCookie(w, id)
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

// throttled answers a sign-in (password or OIDC callback) that the
// limiter refused for wait, auditing it when it is the first refusal of
// its lock window.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request, now time.Time, email string, wait time.Duration, first bool) error {
	secs := int((wait + time.Second - 1) / time.Second)
	if first {
		if err := audit(r.Context(), s.db, now, email, "signin.throttled", "", fmt.Sprintf("from %s, for %d s", clientIP(r), secs)); err != nil {
			return err
		}
	}
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	return &httpError{status: http.StatusTooManyRequests,
		msg: fmt.Sprintf("too many failed sign-ins for this account or from this address: try again in %d s", secs)}
}

// signinData is the sign-in page's data: the form token, the OIDC
// provider's issuer where one is configured, and extra.
func (s *Server) signinData(w http.ResponseWriter, r *http.Request, extra map[string]any) map[string]any {
	d := map[string]any{"Form": formToken(w, r)}
	if s.oidc != nil {
		d["OIDC"] = s.oidc.cfg.Issuer
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// maxHashWaiting bounds the requests waiting for a hash slot; beyond it
// they are answered 503 at once.
const maxHashWaiting = 32

var errHashBusy = &httpError{status: http.StatusServiceUnavailable, msg: "too many sign-ins at once: try again in a moment"}

// hashSlot waits, while ctx lasts, for one of the two hash slots (each
// hash takes HashParams.Memory) and returns its release.
func (s *Server) hashSlot(ctx context.Context) (func(), error) {
	if s.hashWaiting.Add(1) > maxHashWaiting {
		s.hashWaiting.Add(-1)
		return nil, errHashBusy
	}
	defer s.hashWaiting.Add(-1)
	select {
	case s.hashSlots <- struct{}{}:
		return func() { <-s.hashSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// checkPassword verifies password against hash in a hash slot.
func (s *Server) checkPassword(ctx context.Context, password, hash string) (bool, error) {
	if len(password) > maxPasswordLength {
		return false, nil
	}
	done, err := s.hashSlot(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	verify := s.verify
	if verify == nil {
		verify = checkPassword
	}
	ok, err := verify(password, hash)
	return ok && err == nil, nil
}

func (s *Server) hashNewPassword(ctx context.Context, password string) (string, error) {
	done, err := s.hashSlot(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	return hashPassword(password, s.cfg.HashParams)
}

func (s *Server) userByEmail(ctx context.Context, email string) (*User, string, error) {
	var u User
	var role, hash string
	err := s.db.QueryRowContext(ctx, `SELECT id, email, org, role, password_hash, disabled FROM users WHERE email = ?`, email).
		Scan(&u.ID, &u.Email, &u.Org, &role, &hash, &u.Disabled)
	if err != nil {
		return nil, "", err
	}
	u.Role = pki.Role(role)
	return &u, hash, nil
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := s.endSession(r.Context(), w, rq.sess); err != nil {
		return err
	}
	if err := audit(r.Context(), s.db, s.now(), rq.user.Email, "signout", "", ""); err != nil {
		return err
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
	return nil
}

// setupValid reports whether token is the current setup token.
func (s *Server) setupValid(token string) bool {
	return s.setupToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.setupToken)) == 1
}

var errSetupGone = &httpError{status: http.StatusNotFound,
	msg: "this setup link is not valid: it works once, until the project admin's password is set"}

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	s.setupMu.Lock()
	valid := s.setupValid(r.PathValue("token"))
	s.setupMu.Unlock()
	if !valid {
		return errSetupGone
	}
	s.render(w, r, rq, http.StatusOK, "setup.html", "Set up the project admin", map[string]any{"Form": formToken(w, r),
		"NewProject": !s.hasProject(), "LeafPort": DefaultLeafPort, "ClientPort": DefaultClientPort})
	return nil
}

func (s *Server) setup(w http.ResponseWriter, r *http.Request, rq *request) error {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	if !s.setupValid(r.PathValue("token")) {
		return errSetupGone
	}
	email := strings.TrimSpace(r.PostFormValue("email"))
	org := strings.TrimSpace(r.PostFormValue("org"))
	password := r.PostFormValue("password")
	if err := checkAccount(email, org); err != nil {
		return err
	}
	if err := checkNewPassword(password, r.PostFormValue("confirm")); err != nil {
		return badRequest("%v", err)
	}
	var p *provision.Project // the project to create, in an empty workspace
	if !s.hasProject() {
		var err error
		if p, err = newProjectForm(r, org); err != nil {
			return err
		}
	}
	hash, err := s.hashNewPassword(r.Context(), password)
	if err != nil {
		return err
	}
	if p != nil {
		if err := s.createProject(p); err != nil {
			return err
		}
	}
	now := s.now()
	var u *User
	err = inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		var err error
		u, err = insertUser(r.Context(), tx, email, org, pki.RoleProjectAdmin, hash, now)
		if err != nil {
			return err
		}
		if p != nil {
			if err := audit(r.Context(), tx, now, email, "project.create", p.Name, serverDetail(p.Server)); err != nil {
				return err
			}
		}
		return audit(r.Context(), tx, now, email, "setup", email, "project admin of org "+org)
	})
	if err != nil {
		return err
	}
	s.setupToken = ""
	if err := s.newSession(r.Context(), w, u); err != nil {
		return err
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

// checkAccount checks an account's e-mail and org: both become names in
// the project (an admin's certificate is named by its e-mail).
func checkAccount(email, org string) error {
	if err := pki.ValidName(email); err != nil || !strings.Contains(email, "@") {
		return badRequest("e-mail %q: an address like admin@hospital.org (letters, digits, '.', '_', '-', one '@'; it names the admin's certificate)", bounded(email))
	}
	if err := pki.ValidName(org); err != nil {
		return badRequest("org: %v", err)
	}
	return nil
}

func insertUser(ctx context.Context, tx *sql.Tx, email, org string, role pki.Role, hash string, now time.Time) (*User, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO users (email, org, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		email, org, string(role), hash, now.Unix())
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return nil, conflict("an account for %s already exists: sign in instead", email)
		}
		return nil, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, err
	}
	return &User{ID: id, Email: email, Org: org, Role: role}, nil
}

// invitation is a row of invitations.
type invitation struct {
	ID        int64
	Email     string
	Role      pki.Role
	Org       string
	CreatedBy string
	Created   time.Time
	Expires   time.Time
	Used      *time.Time
}

// Status says where the invitation stands at now.
func (iv invitation) Status(now time.Time) string {
	switch {
	case iv.Used != nil:
		return "accepted " + iv.Used.UTC().Format("2006-01-02 15:04 UTC")
	case !now.Before(iv.Expires):
		return "expired"
	}
	return "open until " + iv.Expires.UTC().Format("2006-01-02 15:04 UTC")
}

func (s *Server) invitationsData(ctx context.Context) ([]map[string]any, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT i.id, i.email, i.role, i.org, u.email, i.created_at, i.expires_at, i.used_at
		FROM invitations i JOIN users u ON u.id = i.created_by ORDER BY i.id DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []map[string]any
	now := s.now()
	for rows.Next() {
		var iv invitation
		var role string
		var created, expires int64
		var used sql.NullInt64
		if err := rows.Scan(&iv.ID, &iv.Email, &role, &iv.Org, &iv.CreatedBy, &created, &expires, &used); err != nil {
			return nil, err
		}
		iv.Role, iv.Created, iv.Expires = pki.Role(role), time.Unix(created, 0), time.Unix(expires, 0)
		if used.Valid {
			t := time.Unix(used.Int64, 0)
			iv.Used = &t
		}
		out = append(out, map[string]any{"Email": iv.Email, "Role": iv.Role, "Org": iv.Org, "By": iv.CreatedBy, "Status": iv.Status(now)})
	}
	return out, rows.Err()
}

func (s *Server) invitations(w http.ResponseWriter, r *http.Request, rq *request) error {
	list, err := s.invitationsData(r.Context())
	if err != nil {
		return err
	}
	s.render(w, r, rq, http.StatusOK, "invitations.html", "Invitations", map[string]any{"List": list, "TTL": s.cfg.InviteTTL})
	return nil
}

func (s *Server) invite(w http.ResponseWriter, r *http.Request, rq *request) error {
	email := strings.TrimSpace(r.PostFormValue("email"))
	org := strings.TrimSpace(r.PostFormValue("org"))
	role := pki.Role(r.PostFormValue("role"))
	if err := checkAccount(email, org); err != nil {
		return err
	}
	if !role.Valid() {
		return badRequest("role %q: want org_admin, lead, member or project_admin", bounded(string(role)))
	}
	if _, _, err := s.userByEmail(r.Context(), email); err == nil {
		return conflict("%s already has an account", email)
	} else if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	// The account's certificate will be named by its e-mail: no site or
	// participant of the project may hold that name.
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return err
	}
	var site bool
	if err := s.db.QueryRowContext(r.Context(), `SELECT EXISTS (SELECT 1 FROM sites WHERE name = ?)`, email).Scan(&site); err != nil {
		return err
	}
	if site || nameTaken(p, email) {
		return conflict("%s is already the name of a site or a participant of project %s", email, p.Name)
	}
	token := randomToken()
	now := s.now()
	expires := now.Add(s.cfg.InviteTTL)
	err = inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(r.Context(), `INSERT INTO invitations (token_hash, email, role, org, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			tokenHash(token), email, string(role), org, rq.user.ID, now.Unix(), expires.Unix()); err != nil {
			return err
		}
		return audit(r.Context(), tx, now, rq.user.Email, "invite.create", email, fmt.Sprintf("%s of org %s, expires %s", role, org, expires.UTC().Format(time.RFC3339)))
	})
	if err != nil {
		return err
	}
	list, err := s.invitationsData(r.Context())
	if err != nil {
		return err
	}
	link := "https://" + r.Host + "/invite/" + token
	s.render(w, r, rq, http.StatusOK, "invitations.html", "Invitations", map[string]any{
		"List": list, "TTL": s.cfg.InviteTTL, "Link": link, "Invited": email, "Expires": expires})
	return nil
}

// openInvitation finds the invitation of token that may still be
// accepted, or says why not.
func (s *Server) openInvitation(ctx context.Context, q execer, token string) (*invitation, error) {
	var iv invitation
	var role string
	var created, expires int64
	var used sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT id, email, role, org, created_at, expires_at, used_at FROM invitations WHERE token_hash = ?`,
		tokenHash(token)).Scan(&iv.ID, &iv.Email, &role, &iv.Org, &created, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &httpError{status: http.StatusNotFound, msg: "this invitation link is not valid: check that it was copied whole"}
	}
	if err != nil {
		return nil, err
	}
	iv.Role, iv.Created, iv.Expires = pki.Role(role), time.Unix(created, 0), time.Unix(expires, 0)
	switch {
	case used.Valid:
		return nil, &httpError{status: http.StatusGone, msg: fmt.Sprintf("this invitation was already used (%s): an invitation works once; sign in instead",
			time.Unix(used.Int64, 0).UTC().Format("2006-01-02 15:04 UTC"))}
	case !s.now().Before(iv.Expires):
		return nil, &httpError{status: http.StatusGone, msg: fmt.Sprintf("this invitation expired on %s: ask the project admin for a new one",
			iv.Expires.UTC().Format("2006-01-02 15:04 UTC"))}
	}
	return &iv, nil
}

func (s *Server) invitePage(w http.ResponseWriter, r *http.Request, rq *request) error {
	iv, err := s.openInvitation(r.Context(), s.db, r.PathValue("token"))
	if err != nil {
		return err
	}
	s.render(w, r, rq, http.StatusOK, "invite.html", "Accept your invitation", map[string]any{"Form": formToken(w, r), "Invitation": iv})
	return nil
}

func (s *Server) acceptInvite(w http.ResponseWriter, r *http.Request, rq *request) error {
	token := r.PathValue("token")
	if _, err := s.openInvitation(r.Context(), s.db, token); err != nil {
		return err
	}
	password := r.PostFormValue("password")
	if err := checkNewPassword(password, r.PostFormValue("confirm")); err != nil {
		return badRequest("%v", err)
	}
	hash, err := s.hashNewPassword(r.Context(), password)
	if err != nil {
		return err
	}
	now := s.now()
	var u *User
	err = inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		iv, err := s.openInvitation(r.Context(), tx, token) // again, inside the transaction
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(r.Context(), `UPDATE invitations SET used_at = ? WHERE id = ? AND used_at IS NULL`, now.Unix(), iv.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(&httpError{status: http.StatusGone, msg: "this invitation was already used"}, err)
		}
		if u, err = insertUser(r.Context(), tx, iv.Email, iv.Org, iv.Role, hash, now); err != nil {
			return err
		}
		return audit(r.Context(), tx, now, iv.Email, "invite.accept", iv.Email, fmt.Sprintf("%s of org %s", iv.Role, iv.Org))
	})
	if err != nil {
		return err
	}
	if err := s.newSession(r.Context(), w, u); err != nil {
		return err
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}
