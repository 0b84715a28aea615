package dashboard

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
)

// route is one page or form of the dashboard.
type route struct {
	method, pattern string
	// public routes need no session: sign-in (password or OIDC), setup,
	// invitations, the static files.
	public bool
	// action is what authorize decides before handle runs (signed-in
	// routes only); handlers decide again once they know the target.
	action Action
	handle func(http.ResponseWriter, *http.Request, *request) error
}

// request is what the wrapper found out about a request.
type request struct {
	sess *session // nil on public routes
	user *User
}

// routeTable is every route of the dashboard: the one list that the
// mux is built from and that the tests walk.
func (s *Server) routeTable() []route {
	return []route{
		{method: "GET", pattern: "/static/style.css", public: true, handle: staticFile("style.css", "text/css; charset=utf-8")},
		{method: "GET", pattern: "/static/csr.js", public: true, handle: staticFile("csr.js", "text/javascript; charset=utf-8")},
		{method: "GET", pattern: "/signin", public: true, handle: s.signinPage},
		{method: "POST", pattern: "/signin", public: true, handle: s.signin},
		{method: "GET", pattern: "/signin/oidc", public: true, handle: s.oidcStart},
		{method: "GET", pattern: oidcCallback, public: true, handle: s.oidcCallback},
		{method: "GET", pattern: "/setup/{token}", public: true, handle: s.setupPage},
		{method: "POST", pattern: "/setup/{token}", public: true, handle: s.setup},
		{method: "GET", pattern: "/invite/{token}", public: true, handle: s.invitePage},
		{method: "POST", pattern: "/invite/{token}", public: true, handle: s.acceptInvite},

		{method: "GET", pattern: "/{$}", action: ActHome, handle: s.home},
		{method: "POST", pattern: "/signout", action: ActHome, handle: s.signout},
		{method: "POST", pattern: "/me/csr", action: ActOwnRequest, handle: s.uploadOwnCSR},
		{method: "GET", pattern: "/me/kit", action: ActOwnRequest, handle: s.downloadOwnKit},
		{method: "GET", pattern: "/invitations", action: ActInvite, handle: s.invitations},
		{method: "POST", pattern: "/invitations", action: ActInvite, handle: s.invite},
		{method: "GET", pattern: "/sites", action: ActListSites, handle: s.sites},
		{method: "POST", pattern: "/sites", action: ActEditSite, handle: s.addSite},
		{method: "GET", pattern: "/sites/{id}", action: ActViewSite, handle: s.site},
		{method: "POST", pattern: "/sites/{id}", action: ActEditSite, handle: s.changeSite},
		{method: "POST", pattern: "/sites/{id}/csr", action: ActEditSite, handle: s.uploadSiteCSR},
		{method: "GET", pattern: "/sites/{id}/kit", action: ActDownloadKit, handle: s.downloadSiteKit},
		{method: "GET", pattern: "/requests", action: ActApprove, handle: s.requests},
		{method: "POST", pattern: "/requests/{id}/approve", action: ActApprove, handle: s.approve},
		{method: "POST", pattern: "/requests/{id}/refuse", action: ActApprove, handle: s.refuse},
		{method: "GET", pattern: "/participants", action: ActParticipants, handle: s.participants},
		{method: "POST", pattern: "/participants/{name}/revoke", action: ActRevoke, handle: s.revoke},
		{method: "GET", pattern: "/project", action: ActEditProject, handle: s.projectPage},
		{method: "POST", pattern: "/project", action: ActEditProject, handle: s.changeServer},
		{method: "POST", pattern: "/project/name", action: ActEditProject, handle: s.renameProject},
		{method: "POST", pattern: "/project/aggregators", action: ActEditProject, handle: s.addAggregator},
		{method: "GET", pattern: "/project/aggregators/{name}/kit", action: ActEditProject, handle: s.downloadAggregatorKit},
		{method: "GET", pattern: "/audit", action: ActAudit, handle: s.auditPage},
		{method: "GET", pattern: "/jobs", action: ActJobs, handle: s.jobs},
		{method: "GET", pattern: "/jobs/{id}", action: ActViewJob, handle: s.job},
	}
}

// maxForm bounds a request body: forms and a pasted or uploaded CSR.
const maxForm = 64 << 10

// securityHeaders sets the dashboard's security headers on every answer,
// the mux's own 404 and 405 included, before next runs.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// script-src 'self': only the dashboard's own static/csr.js (no
		// inline script, no eval); default-src 'none' leaves it no
		// connect-src, so it cannot send anything anywhere.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin") // no-referrer would make Chromium send "Origin: null" on the dashboard's own forms
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		next.ServeHTTP(w, r)
	})
}

// wrap applies the dashboard's checks, in order (the security headers are
// set around the whole mux, securityHeaders): for POST a bounded body and
// the same-origin check; then either the pre-session form token (public
// routes) or a current session, its CSRF token (POST) and
// authorize(action) before the handler.
func (s *Server) wrap(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rq := &request{}
		post := r.Method == http.MethodPost
		if post {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := sameOrigin(r); err != nil {
				s.fail(w, r, rq, forbidden(err.Error()))
				return
			}
		}
		if rt.public {
			if post {
				if err := checkFormToken(r); err != nil {
					s.fail(w, r, rq, forbidden(err.Error()))
					return
				}
			}
		} else {
			sess, err := s.session(r)
			switch {
			case errors.Is(err, errNoSession) && !post:
				http.Redirect(w, r, "/signin", http.StatusSeeOther)
				return
			case errors.Is(err, errNoSession):
				s.fail(w, r, rq, &httpError{status: http.StatusUnauthorized, msg: "no session: sign in first"})
				return
			case err != nil:
				s.fail(w, r, rq, err)
				return
			}
			rq.sess, rq.user = sess, sess.user
			if post {
				if err := checkCSRF(r, sess.csrf); err != nil {
					s.fail(w, r, rq, forbidden(err.Error()))
					return
				}
			}
			if d := authorize(rt.action, rq.user, nil); !d.Allow {
				s.fail(w, r, rq, forbidden("not allowed: "+d.Reason))
				return
			}
		}
		if err := rt.handle(w, r, rq); err != nil {
			s.fail(w, r, rq, err)
		}
	}
}

// httpError is a refusal shown to the user with its status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func forbidden(msg string) error { return &httpError{status: http.StatusForbidden, msg: msg} }
func badRequest(format string, a ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}
func notFound(what string) error {
	return &httpError{status: http.StatusNotFound, msg: what + " not found"}
}
func conflict(format string, a ...any) error {
	return &httpError{status: http.StatusConflict, msg: fmt.Sprintf(format, a...)}
}

// fail renders err: an httpError with its status and message, anything
// else as 500 with the details only in the log.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		s.log.Error("dashboard request failed", "method", r.Method, "path", logPath(r), "err", err)
		he = &httpError{status: http.StatusInternalServerError, msg: "internal error (see the dashboard's log)"}
	} else if he.status == http.StatusForbidden || he.status == http.StatusUnauthorized {
		user := ""
		if rq.user != nil {
			user = rq.user.Email
		}
		s.log.Warn("dashboard refused", "method", r.Method, "path", logPath(r), "user", user, "reason", he.msg)
	}
	s.render(w, r, rq, he.status, "error.html", "Refused", map[string]any{"Status": he.status, "StatusText": http.StatusText(he.status), "Message": he.msg})
}

// logPath is the request's path as logged: its route's pattern, which
// shows /invite/{token} and /setup/{token} without the secret; a path that
// matched no route only as its first segment.
func logPath(r *http.Request) string {
	if r.Pattern != "" && r.Pattern != "/" {
		return r.Pattern
	}
	parts := strings.SplitN(r.URL.Path, "/", 3)
	if len(parts) > 2 {
		parts[2] = "..."
	}
	return bounded(strings.Join(parts, "/"))
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	// Unknown paths are answered the same with or without a session, so
	// the route list cannot be probed for what lies behind sign-in.
	s.fail(w, r, &request{}, notFound("page"))
}

// pageData is what every template gets.
type pageData struct {
	Title   string
	Project string
	Root    string
	User    *User
	CSRF    string
	IsPA    bool
	Refresh int // seconds; 0: the page does not reload itself
	Data    any
}

// render executes page inside the layout.
func (s *Server) render(w http.ResponseWriter, r *http.Request, rq *request, status int, page, title string, data any) {
	t, ok := s.pages[page]
	if !ok {
		http.Error(w, "no page "+page, http.StatusInternalServerError)
		return
	}
	pd := pageData{Title: title, Project: s.projectName(), Root: s.rootFingerprint().String(), Data: data}
	if m, ok := data.(map[string]any); ok {
		pd.Refresh, _ = m["Refresh"].(int)
	}
	if rq != nil && rq.sess != nil {
		pd.User, pd.CSRF = rq.user, rq.sess.csrf
		pd.IsPA = authorize(ActApprove, rq.user, nil).Allow
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", pd); err != nil {
		s.log.Error("render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// partialSuffix names a template file that is no page but a piece pages
// share (templates/NAME.partial.html, which defines its templates).
const partialSuffix = ".partial.html"

// parsePages parses every page with the layout and the partials.
func parsePages() (map[string]*template.Template, error) {
	names, err := templateFS.ReadDir("templates")
	if err != nil {
		return nil, err
	}
	funcs := template.FuncMap{
		"date": func(v any) string {
			switch t := v.(type) {
			case interface{ Format(string) string }:
				return t.Format("2006-01-02 15:04 UTC")
			}
			return fmt.Sprint(v)
		},
		// dict makes a partial's argument from key, value pairs.
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, fmt.Errorf("dict: %d arguments, want key, value pairs", len(kv))
			}
			m := map[string]any{}
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		if n.Name() == "layout.html" || strings.HasSuffix(n.Name(), partialSuffix) {
			continue
		}
		t, err := template.New(n.Name()).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/*"+partialSuffix, "templates/"+n.Name())
		if err != nil {
			return nil, fmt.Errorf("dashboard templates: %w", err)
		}
		pages[n.Name()] = t
	}
	return pages, nil
}

// staticFile serves static/name, which the binary embeds, as
// contentType.
func staticFile(name, contentType string) func(http.ResponseWriter, *http.Request, *request) error {
	return func(w http.ResponseWriter, r *http.Request, _ *request) error {
		data, err := staticFS.ReadFile("static/" + name)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "max-age=3600")
		_, err = w.Write(data)
		return err
	}
}
