package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/hearthfl/hearth/bus/pki"
)

// Session lifetimes.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
)

// Cookie names. The __Host- prefix makes browsers refuse them unless Secure,
// without Domain and with Path=/, so no other host or path can set them.
const (
	sessionCookie = "__Host-hearth-session"
	formCookie    = "__Host-hearth-form" // double-submit token of the forms shown before a session
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
)

// User is a dashboard account.
type User struct {
	ID    int64
	Email string
	Org   string
	Role  pki.Role
	// Disabled accounts (their certificate was revoked) cannot sign in.
	Disabled bool
}

// session is a signed-in request's session.
type session struct {
	idHash []byte
	user   *User
	csrf   string
}

// randomToken is 32 random bytes, base64url without padding.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error()) // never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// newSession stores a new session for u and sets its cookie.
func (s *Server) newSession(ctx context.Context, w http.ResponseWriter, u *User) error {
	id, err := s.storeSession(ctx, s.db, u)
	if err != nil {
		return err
	}
	setSessionCookie(w, id)
	return nil
}

// storeSession stores a new session for u through q and returns its id
// (the cookie's value).
func (s *Server) storeSession(ctx context.Context, q execer, u *User) (string, error) {
	id := randomToken()
	now := s.now().Unix()
	if _, err := q.ExecContext(ctx, `INSERT INTO sessions (id_hash, user_id, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)`,
		tokenHash(id), u.ID, randomToken(), now, now); err != nil {
		return "", err
	}
	return id, nil
}

// setSessionCookie sets the session cookie to id.
func setSessionCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(AbsoluteTimeout / time.Second)})
}

// errNoSession is a request without a current session.
var errNoSession = errors.New("no session")

// session finds the request's current session, refreshing its idle time;
// an expired one is deleted.
func (s *Server) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, errNoSession
	}
	h := tokenHash(c.Value)
	var (
		u                 User
		role              string
		created, lastSeen int64
		csrf              string
	)
	err = s.db.QueryRowContext(r.Context(), `SELECT u.id, u.email, u.org, u.role, s.csrf, s.created_at, s.last_seen
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ? AND NOT u.disabled`, h).
		Scan(&u.ID, &u.Email, &u.Org, &role, &csrf, &created, &lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	u.Role = pki.Role(role)
	now := s.now()
	if now.Sub(time.Unix(created, 0)) > AbsoluteTimeout || now.Sub(time.Unix(lastSeen, 0)) > IdleTimeout {
		_, err := s.db.ExecContext(r.Context(), `DELETE FROM sessions WHERE id_hash = ?`, h)
		return nil, errors.Join(errNoSession, err)
	}
	if _, err := s.db.ExecContext(r.Context(), `UPDATE sessions SET last_seen = ? WHERE id_hash = ?`, now.Unix(), h); err != nil {
		return nil, err
	}
	return &session{idHash: h, user: &u, csrf: csrf}, nil
}

// endSession deletes the session and clears its cookie.
func (s *Server) endSession(ctx context.Context, w http.ResponseWriter, sess *session) error {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	_, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = ?`, sess.idHash)
	return err
}

// sameOrigin refuses a state-changing request that a browser says came
// from elsewhere: Sec-Fetch-Site other than same-origin or none, or an
// Origin other than this server's. Clients that send neither (curl, the
// Go tests' http.Client) pass; the CSRF token still binds them.
func sameOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return errors.New("cross-site request (Sec-Fetch-Site: " + bounded(r.Header.Get("Sec-Fetch-Site")) + ")")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Scheme != "https" || u.Host != r.Host {
			return errors.New("request from another origin (" + bounded(o) + ")")
		}
	}
	return nil
}

// checkCSRF compares the request's token (form field or header) with want
// in constant time.
func checkCSRF(r *http.Request, want string) error {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errors.New("missing or wrong CSRF token: reload the page and try again")
	}
	return nil
}

// formToken is the double-submit token of a form shown before a session
// (sign-in, setup, invitation): the cookie's value, set when missing.
func formToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(formCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	t := randomToken()
	http.SetCookie(w, &http.Cookie{Name: formCookie, Value: t, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	return t
}

// checkFormToken checks a pre-session form's double-submit token.
func checkFormToken(r *http.Request) error {
	c, err := r.Cookie(formCookie)
	if err != nil {
		return errors.New("missing or wrong CSRF token: reload the page and try again")
	}
	return checkCSRF(r, c.Value)
}

// bounded shortens an attacker-chosen string before it is shown or logged.
func bounded(s string) string {
	const n = 80
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
