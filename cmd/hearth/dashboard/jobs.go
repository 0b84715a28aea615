package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hearthfl/hearth/actors/coordinator"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/provision"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Console is what the dashboard reads jobs and connections through: an
// admin's console connected to the server (*coordinator.Client is one).
// Every call is a request signed with that admin's key, which the server
// authorizes exactly as it does the admin's own `hearth admin`: the
// dashboard's own authorization (jobVisible) only narrows what its users
// see of what that admin may see.
type Console interface {
	List(ctx context.Context) (*hearthv1.JobList, error)
	Status(ctx context.Context, id string) (*hearthv1.JobInfo, error)
	Connections(ctx context.Context) (*hearthv1.Connections, error)
}

// DialConsole connects a Console; closing ends its connection.
type DialConsole func(ctx context.Context) (c Console, closing func(), err error)

// redialAfter is how long the dashboard waits after a failed dial before
// it tries again (the server may not be up yet).
const redialAfter = 3 * time.Second

// consoleConn is the dashboard's one console, dialled at first use and
// again after a failure (at most every redialAfter); the connection
// itself reconnects on its own once made.
type consoleConn struct {
	dial DialConsole
	mu   sync.Mutex
	c    Console
	cl   func()
	err  error
	at   time.Time
}

// errNoConsole is what the jobs pages say without --admin-kit.
var errNoConsole = fmt.Errorf("no admin console: start the dashboard with --admin-kit KIT to follow jobs")

// get is the console, dialling it when none is up.
func (cc *consoleConn) get(ctx context.Context, now time.Time) (Console, error) {
	if cc == nil || cc.dial == nil {
		return nil, errNoConsole
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.c != nil {
		return cc.c, nil
	}
	if cc.err != nil && now.Sub(cc.at) < redialAfter {
		return nil, cc.err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cc.c, cc.cl, cc.err = cc.dial(dctx)
	cc.at = now
	if cc.err != nil {
		cc.c, cc.err = nil, fmt.Errorf("admin console: %w", cc.err)
	}
	return cc.c, cc.err
}

func (cc *consoleConn) close() {
	if cc == nil {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cl != nil {
		cc.cl()
		cc.c, cc.cl = nil, nil
	}
}

// siteOrgs maps each site and aggregation host of the project to its org.
func (s *Server) siteOrgs() (map[string]string, error) {
	p, err := provision.ReadProject(s.ws)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, x := range p.Sites {
		out[x.Name] = x.Org
	}
	for _, x := range p.Aggregators {
		out[x.Name] = x.Org
	}
	return out, nil
}

// jobTarget is a job as authorize sees it: its submitter's org and the
// orgs of every site it was sent to (joined, answered or missing a round).
func jobTarget(info *hearthv1.JobInfo, orgOf map[string]string) *Target {
	t := &Target{Org: info.GetSubmitterOrg()}
	add := func(site string) {
		if o, ok := orgOf[site]; ok && !slices.Contains(t.Orgs, o) {
			t.Orgs = append(t.Orgs, o)
		}
	}
	for _, site := range info.GetSites() {
		add(site)
	}
	for _, c := range info.GetCommitments() {
		add(c.GetSite())
	}
	for _, r := range info.GetHistory() {
		for _, site := range r.GetAnswered() {
			add(site)
		}
		for _, site := range r.GetMissing() {
			add(site)
		}
	}
	return t
}

// maxChecked bounds how many jobs of other orgs a list asks the server
// about (their sites are only in a job's full status), newest first.
const maxChecked = 50

// jobRow is a job in the list.
type jobRow struct {
	Info   *hearthv1.JobInfo
	Status string
	Test   string
}

func jobStatus(s hearthv1.JobStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATUS_"))
}

func percent(m *hearthv1.Metrics) string {
	if m == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*m.GetAccuracy())
}

// jobs is the list of jobs this user may see: all for the project admin;
// for anyone else those of its org's submitters and those sent to its
// org's sites (see authorize, ActViewJob).
func (s *Server) jobs(w http.ResponseWriter, r *http.Request, rq *request) error {
	data := map[string]any{"Admin": s.cfg.ConsoleName}
	c, err := s.console.get(r.Context(), s.now())
	if err != nil {
		data["Problem"] = err.Error()
		s.render(w, r, rq, http.StatusOK, "jobs.html", "Jobs", data)
		return nil
	}
	list, err := c.List(r.Context())
	if err != nil {
		data["Problem"] = "the server: " + err.Error()
		s.render(w, r, rq, http.StatusOK, "jobs.html", "Jobs", data)
		return nil
	}
	orgOf, err := s.siteOrgs()
	if err != nil {
		return err
	}
	var rows []jobRow
	checked := 0
	for _, info := range slices.Backward(list.Jobs) { // newest first
		d := authorize(ActViewJob, rq.user, jobTarget(info, orgOf))
		if !d.Allow && checked < maxChecked {
			checked++
			if full, err := c.Status(r.Context(), info.Id); err == nil {
				d = authorize(ActViewJob, rq.user, jobTarget(full, orgOf))
			}
		}
		if d.Allow {
			rows = append(rows, jobRow{Info: info, Status: jobStatus(info.Status), Test: percent(info.Test)})
		}
	}
	data["List"] = rows
	s.render(w, r, rq, http.StatusOK, "jobs.html", "Jobs", data)
	return nil
}

// roundRow is one round on a job's page.
type roundRow struct {
	Round      int64
	Answered   []string
	Missing    []string
	TrainLoss  string
	Validation string
	Duration   string
	Aggregator string
}

// chart is the validation accuracy per round, drawn as inline SVG (the
// CSP allows no script): the x axis spans the job's planned rounds, so
// the line grows as rounds close.
type chart struct {
	W, H, Left, Right, Top, Bottom int
	Points                         string
	Dots                           []chartDot
	YTicks                         []chartTick
	XTicks                         []chartTick
}

type chartDot struct {
	X, Y  float64
	Label string
}

type chartTick struct {
	Pos   float64
	Label string
}

func accuracyChart(info *hearthv1.JobInfo) *chart {
	c := &chart{W: 640, H: 240, Left: 48, Right: 624, Top: 12, Bottom: 208}
	last := max(info.GetRounds()-1, 1)
	for _, r := range info.GetHistory() {
		last = max(last, r.GetRound())
	}
	x := func(round int64) float64 {
		return float64(c.Left) + float64(round)*float64(c.Right-c.Left)/float64(last)
	}
	y := func(acc float64) float64 { return float64(c.Bottom) - acc*float64(c.Bottom-c.Top) }
	for _, p := range []float64{0, .25, .5, .75, 1} {
		c.YTicks = append(c.YTicks, chartTick{Pos: y(p), Label: fmt.Sprintf("%.0f%%", 100*p)})
	}
	step := max(last/8, 1)
	for r := int64(0); r <= last; r += step {
		c.XTicks = append(c.XTicks, chartTick{Pos: x(r), Label: fmt.Sprint(r)})
	}
	var pts []string
	for _, r := range info.GetHistory() {
		if r.GetValidation() == nil {
			continue
		}
		acc := min(max(r.GetValidation().GetAccuracy(), 0), 1)
		d := chartDot{X: x(r.GetRound()), Y: y(acc), Label: fmt.Sprintf("round %d: %.2f%%", r.GetRound(), 100*acc)}
		c.Dots = append(c.Dots, d)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", d.X, d.Y))
	}
	c.Points = strings.Join(pts, " ")
	return c
}

// refreshRunning is how often a running job's page reloads itself.
const refreshRunning = 2

// job is one job's page: its state, the reason it ended, its rounds as
// they close (answered and missing sites, figures), a chart of the
// validation accuracy, the test figures and each joined site's
// commitment; it reloads every two seconds while the job runs. A job the
// user may not see is "not found", as one that does not exist.
func (s *Server) job(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	if !job.ValidID(id) {
		return notFound("job")
	}
	c, err := s.console.get(r.Context(), s.now())
	if err != nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: err.Error()}
	}
	info, err := c.Status(r.Context(), id)
	if err != nil {
		if strings.HasPrefix(err.Error(), "server: not_found:") {
			return notFound("job")
		}
		return &httpError{status: http.StatusBadGateway, msg: "the server: " + err.Error()}
	}
	orgOf, err := s.siteOrgs()
	if err != nil {
		return err
	}
	if d := authorize(ActViewJob, rq.user, jobTarget(info, orgOf)); !d.Allow {
		s.log.Warn("dashboard refused", "path", bounded(r.URL.Path), "user", rq.user.Email, "reason", d.Reason)
		return notFound("job")
	}
	var rounds []roundRow
	for _, h := range info.History {
		rr := roundRow{Round: h.Round, Answered: h.Answered, Missing: h.Missing, TrainLoss: fmt.Sprintf("%.4f", h.TrainLoss),
			Validation: percent(h.Validation), Duration: fmt.Sprintf("%.0f ms", float64(h.DurationMicros)/1000), Aggregator: h.Aggregator}
		rounds = append(rounds, rr)
	}
	running := !coordinator.Ended(info.Status)
	data := map[string]any{
		"Info": info, "Status": jobStatus(info.Status), "Running": running, "Rounds": rounds,
		"Chart": accuracyChart(info), "Test": percent(info.Test), "Admin": s.cfg.ConsoleName,
	}
	if running {
		data["Refresh"] = refreshRunning
	}
	s.render(w, r, rq, http.StatusOK, "job.html", "Job "+info.Name, data)
	return nil
}

// connections is which sites and aggregation hosts the server says are
// connected, and why it could not say ("" when it did).
func (s *Server) connections(ctx context.Context) (map[string]bool, string) {
	c, err := s.console.get(ctx, s.now())
	if err != nil {
		return nil, err.Error()
	}
	got, err := c.Connections(ctx)
	if err != nil {
		return nil, "the server: " + err.Error()
	}
	out := map[string]bool{}
	for _, n := range got.Connected {
		out[strings.ToLower(n)] = true
	}
	for _, n := range got.Disconnected {
		out[strings.ToLower(n)] = false
	}
	return out, ""
}
