package dashboard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/policies/resources"
)

// Site is a site registered by its org admin: what its kit and the
// project need to know of it.
type Site struct {
	ID           int64
	Name         string
	Org          string
	GPUs         int
	GPUMemoryGiB int
	Aggregates   bool // the site may aggregate (swarm rounds)
	Websocket    bool // dial the hub over wss
	Proxy        string
	CreatedBy    string
	Created      time.Time
}

// siteForm reads and checks a site's fields from a form against the
// project's server (websocket needs its websocket port).
func (s *Server) siteForm(r *http.Request, site *Site) error {
	var errs []string
	num := func(field string, most int) int {
		v := strings.TrimSpace(r.PostFormValue(field))
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > most {
			errs = append(errs, fmt.Sprintf("%s: %q is not a number in 0..%d", field, bounded(v), most))
		}
		return n
	}
	site.GPUs = num("gpus", resources.MaxGPUs) // the bounds of the site's resources.json
	site.GPUMemoryGiB = num("gpu_memory_gib", resources.MaxGPUMemory)
	site.Aggregates = r.PostFormValue("aggregates") != ""
	site.Websocket = r.PostFormValue("websocket") != ""
	site.Proxy = strings.TrimSpace(r.PostFormValue("proxy"))
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return err
	}
	server := kit.ServerConfig{Name: p.Server.Name, Hosts: p.Server.Hosts, LeafPort: p.Server.LeafPort,
		ClientPort: p.Server.ClientPort, WebsocketPort: p.Server.WebsocketPort}
	if err := (kit.LeafConfig{Websocket: site.Websocket, Proxy: site.Proxy}).Validate(server); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return badRequest("site %s: %s", site.Name, strings.Join(errs, "; "))
	}
	return nil
}

// nameTaken says whether name is already a participant of the project
// (ignoring case, as project files do).
func nameTaken(p *provision.Project, name string) bool {
	names := []string{p.Server.Name}
	for _, x := range p.Sites {
		names = append(names, x.Name)
	}
	for _, x := range p.Admins {
		names = append(names, x.Name)
	}
	for _, x := range p.Aggregators {
		names = append(names, x.Name)
	}
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// nameInUse says whether name is already the dashboard's: an account's
// e-mail, an open invitation's or a site's (ignoring case, the columns'
// collation). A site may not take a name an account's certificate will
// carry.
func (s *Server) nameInUse(ctx context.Context, name string) (bool, error) {
	var used bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE email = ?1)
		OR EXISTS (SELECT 1 FROM invitations WHERE email = ?1 AND used_at IS NULL AND expires_at > ?2)
		OR EXISTS (SELECT 1 FROM sites WHERE name = ?1)`, name, s.now().Unix()).Scan(&used)
	return used, err
}

const siteColumns = `s.id, s.name, s.org, s.gpus, s.gpu_memory_gib, s.aggregates, s.websocket, s.proxy, u.email, s.created_at`

func scanSite(sc interface{ Scan(...any) error }) (*Site, error) {
	var st Site
	var created int64
	if err := sc.Scan(&st.ID, &st.Name, &st.Org, &st.GPUs, &st.GPUMemoryGiB, &st.Aggregates, &st.Websocket, &st.Proxy, &st.CreatedBy, &created); err != nil {
		return nil, err
	}
	st.Created = time.Unix(created, 0)
	return &st, nil
}

// siteFor loads the site of the path's id and checks that u may do a to
// it; a site u may not even see is "not found", like one that does not
// exist.
func (s *Server) siteFor(ctx context.Context, r *http.Request, u *User, a Action) (*Site, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, notFound("site")
	}
	st, err := scanSite(s.db.QueryRowContext(ctx, `SELECT `+siteColumns+` FROM sites s JOIN users u ON u.id = s.created_by WHERE s.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("site")
	}
	if err != nil {
		return nil, err
	}
	t := &Target{Org: st.Org}
	if !authorize(ActViewSite, u, t).Allow {
		return nil, notFound("site")
	}
	if d := authorize(a, u, t); !d.Allow {
		return nil, forbidden("not allowed: " + d.Reason)
	}
	return st, nil
}

func (s *Server) sites(w http.ResponseWriter, r *http.Request, rq *request) error {
	rows, err := s.db.QueryContext(r.Context(), `SELECT `+siteColumns+` FROM sites s JOIN users u ON u.id = s.created_by ORDER BY s.org, s.name`)
	if err != nil {
		return err
	}
	// Read every row and close them before looking up requests: the
	// database has one connection, which open rows hold.
	var visible []*Site
	for rows.Next() {
		st, err := scanSite(rows)
		if err != nil {
			rows.Close()
			return err
		}
		if authorize(ActViewSite, rq.user, &Target{Org: st.Org}).Allow {
			visible = append(visible, st)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	var list []map[string]any
	for _, st := range visible {
		req, err := s.latestRequest(r.Context(), "site_id", st.ID)
		if err != nil {
			return err
		}
		list = append(list, map[string]any{"Site": st, "Request": req})
	}
	s.render(w, r, rq, http.StatusOK, "sites.html", "Sites", map[string]any{
		"List": list, "CanAdd": authorize(ActEditSite, rq.user, nil).Allow, "OrgFixed": rq.user.Role != pki.RoleProjectAdmin})
	return nil
}

func (s *Server) addSite(w http.ResponseWriter, r *http.Request, rq *request) error {
	st := &Site{Name: strings.TrimSpace(r.PostFormValue("name")), Org: rq.user.Org}
	if o := strings.TrimSpace(r.PostFormValue("org")); o != "" {
		st.Org = o
	}
	if d := authorize(ActEditSite, rq.user, &Target{Org: st.Org}); !d.Allow {
		return forbidden("not allowed: " + d.Reason)
	}
	if err := pki.ValidName(st.Name); err != nil {
		return badRequest("site name: %v", err)
	}
	if err := pki.ValidName(st.Org); err != nil {
		return badRequest("org: %v", err)
	}
	if err := s.siteForm(r, st); err != nil {
		return err
	}
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return err
	}
	if nameTaken(p, st.Name) {
		return conflict("%s is already a participant of project %s (names are never reused)", st.Name, p.Name)
	}
	if used, err := s.nameInUse(r.Context(), st.Name); err != nil {
		return err
	} else if used {
		return conflict("%s is already the name of an account, an open invitation or a site", st.Name)
	}
	now := s.now()
	var id int64
	err = inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(r.Context(), `INSERT INTO sites (name, org, gpus, gpu_memory_gib, aggregates, websocket, proxy, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, st.Name, st.Org, st.GPUs, st.GPUMemoryGiB, st.Aggregates, st.Websocket, st.Proxy, rq.user.ID, now.Unix())
		if err != nil {
			if strings.Contains(err.Error(), "UNIQUE") {
				return conflict("a site named %s is already registered", st.Name)
			}
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		return audit(r.Context(), tx, now, rq.user.Email, "site.add", st.Name, siteDetail(st))
	})
	if err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("/sites/%d", id), http.StatusSeeOther)
	return nil
}

func siteDetail(st *Site) string {
	return fmt.Sprintf("org %s, %d GPUs, %d GiB GPU memory, aggregates %t, websocket %t, proxy %q",
		st.Org, st.GPUs, st.GPUMemoryGiB, st.Aggregates, st.Websocket, st.Proxy)
}

func (s *Server) site(w http.ResponseWriter, r *http.Request, rq *request) error {
	st, err := s.siteFor(r.Context(), r, rq.user, ActViewSite)
	if err != nil {
		return err
	}
	req, err := s.latestRequest(r.Context(), "site_id", st.ID)
	if err != nil {
		return err
	}
	t := &Target{Org: st.Org}
	s.render(w, r, rq, http.StatusOK, "site.html", "Site "+st.Name, map[string]any{
		"Site": st, "Request": req,
		"CanEdit":     authorize(ActEditSite, rq.user, t).Allow && (req == nil || req.Status != statusApproved),
		"CanDownload": authorize(ActDownloadKit, rq.user, t).Allow && req != nil && req.Status == statusApproved,
	})
	return nil
}

func (s *Server) changeSite(w http.ResponseWriter, r *http.Request, rq *request) error {
	st, err := s.siteFor(r.Context(), r, rq.user, ActEditSite)
	if err != nil {
		return err
	}
	if req, err := s.latestRequest(r.Context(), "site_id", st.ID); err != nil {
		return err
	} else if req != nil && req.Status == statusApproved {
		return conflict("site %s already has its kit: its settings are in it, signed (revoke it and register a new site to change them)", st.Name)
	}
	if err := s.siteForm(r, st); err != nil {
		return err
	}
	now := s.now()
	err = inTx(r.Context(), s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(r.Context(), `UPDATE sites SET gpus = ?, gpu_memory_gib = ?, aggregates = ?, websocket = ?, proxy = ? WHERE id = ?`,
			st.GPUs, st.GPUMemoryGiB, st.Aggregates, st.Websocket, st.Proxy, st.ID); err != nil {
			return err
		}
		return audit(r.Context(), tx, now, rq.user.Email, "site.change", st.Name, siteDetail(st))
	})
	if err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("/sites/%d", st.ID), http.StatusSeeOther)
	return nil
}

// SiteDataDir is the data folder of a site whose kit the dashboard
// issues, relative to its kit: beside the kit's folder, since a kit holds
// nothing its signed manifest does not list (but key.pem, crl.pem and
// state/). The site keeps its data in ../data/<dataset>/{train,val,test}.bin.
const SiteDataDir = "../data"
