package dashboard

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
)

// errSignin is the one answer to a wrong password and an unknown account.
const errSignin = "wrong e-mail or password"

func (s *Server) signinPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	s.render(w, r, rq, http.StatusOK, "signin.html", "Sign in", map[string]any{"Form": formToken(w, r)})
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

func (s *Server) signin(w http.ResponseWriter, r *http.Request, rq *request) error {
	email := strings.TrimSpace(r.PostFormValue("email"))
	password := r.PostFormValue("password")
	now := s.now()
	account, addr := strings.ToLower(bounded(email)), clientIP(r)
	if d := max(s.accounts.wait(now, account), s.addresses.wait(now, addr)); d > 0 {
		secs := int((d + time.Second - 1) / time.Second)
		if err := audit(r.Context(), s.db, now, email, "signin.throttled", "", "from "+clientIP(r)); err != nil {
			return err
		}
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		return &httpError{status: http.StatusTooManyRequests,
			msg: fmt.Sprintf("too many failed sign-ins for this account or from this address: try again in %d s", secs)}
	}
	u, hash, err := s.userByEmail(r.Context(), email)
	found := err == nil
	if errors.Is(err, sql.ErrNoRows) {
		hash = s.dummyHash // the same work as a real account
	} else if err != nil {
		return err
	}
	ok := s.checkPassword(password, hash)
	if !found || !ok {
		s.accounts.fail(now, account)
		s.addresses.fail(now, addr)
		if err := audit(r.Context(), s.db, now, email, "signin.fail", "", "from "+clientIP(r)); err != nil {
			return err
		}
		s.render(w, r, rq, http.StatusUnauthorized, "signin.html", "Sign in",
			map[string]any{"Form": formToken(w, r), "Error": errSignin, "Email": email})
		return nil
	}
	s.accounts.succeed(account)
	if err := s.newSession(r.Context(), w, u); err != nil {
		return err
	}
	if err := audit(r.Context(), s.db, now, u.Email, "signin.ok", "", "from "+clientIP(r)); err != nil {
		return err
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

// checkPassword verifies password against hash, at most two at a time
// (each takes HashParams.Memory).
func (s *Server) checkPassword(password, hash string) bool {
	if len(password) > maxPasswordLength {
		return false
	}
	s.hashSlots <- struct{}{}
	defer func() { <-s.hashSlots }()
	ok, err := checkPassword(password, hash)
	return ok && err == nil
}

func (s *Server) hashNewPassword(password string) (string, error) {
	s.hashSlots <- struct{}{}
	defer func() { <-s.hashSlots }()
	return hashPassword(password, s.cfg.HashParams)
}

func (s *Server) userByEmail(ctx context.Context, email string) (*User, string, error) {
	var u User
	var role, hash string
	err := s.db.QueryRowContext(ctx, `SELECT id, email, org, role, password_hash FROM users WHERE email = ?`, email).
		Scan(&u.ID, &u.Email, &u.Org, &role, &hash)
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
	s.render(w, r, rq, http.StatusOK, "setup.html", "Set up the project admin", map[string]any{"Form": formToken(w, r)})
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
	hash, err := s.hashNewPassword(password)
	if err != nil {
		return err
	}
	now := s.now()
	var u *User
	err = inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		var err error
		u, err = insertUser(r.Context(), tx, email, org, pki.RoleProjectAdmin, hash, now)
		if err != nil {
			return err
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

// invitableRoles are the roles an invitation may carry.
var invitableRoles = []pki.Role{pki.RoleOrgAdmin, pki.RoleLead, pki.RoleMember, pki.RoleProjectAdmin}

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
	token := randomToken()
	now := s.now()
	expires := now.Add(s.cfg.InviteTTL)
	err := inTx(r.Context(), s.db, func(tx *sql.Tx) error {
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
	hash, err := s.hashNewPassword(password)
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
