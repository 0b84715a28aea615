package integration

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/cmd/hearth/dashboard"
	"github.com/hearthfl/hearth/integration/cluster"
)

// chromium finds the browser, or skips the test (fails it under CI=true).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("HEARTH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: CI installs Debian's chromium (.ci/run)")
	}
	t.Skip("no chromium on PATH (apt-get install chromium), or set HEARTH_CHROMIUM")
	return ""
}

// stepTimeout bounds every browser step, so that a step that hangs fails
// the test with its name instead of hanging the suite.
const stepTimeout = 20 * time.Second

// browserUser is the one headless Chromium of the test. People take turns
// in it (sign in, work, sign out), so one browser context holds one
// person's session cookie at a time.
type browserUser struct {
	t    *testing.T
	ctx  context.Context // the browser's; every step runs under a bound derived from it
	base string
	shot string // HEARTH_SCREENSHOTS, or ""
}

func newBrowser(t *testing.T, exe, base string) *browserUser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.IgnoreCertErrors, chromedp.WindowSize(1200, 800), chromedp.DisableGPU)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	// The first Do starts the browser and binds its life to ctx, so it
	// cannot run under a timeout context: a watchdog bounds it instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting chromium: %v", err)
		}
	case <-time.After(stepTimeout):
		cancel()
		t.Fatalf("starting chromium: no browser after %v", stepTimeout)
	}
	return &browserUser{t: t, ctx: ctx, base: base, shot: os.Getenv("HEARTH_SCREENSHOTS")}
}

// where is the page's address and main text, for a failure message; it
// waits at most a few seconds.
func (b *browserUser) where() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return fmt.Sprintf("at %s:\n%s", loc, body)
}

// do runs the actions of the step named step within stepTimeout.
func (b *browserUser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser, %s: %v\n%s", step, err, b.where())
	}
}

// open navigates to path and waits for the page's main.
func (b *browserUser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// submit fills the fields (CSS selector -> value), clicks button and
// waits for the page the form leads to.
func (b *browserUser) submit(fields map[string]string, button string) {
	b.t.Helper()
	var acts []chromedp.Action[chromedp.Void]
	for sel, v := range fields {
		acts = append(acts, chromedp.SetValue(chromedp.CSS(sel), v))
	}
	b.do("fill the form of "+button, acts...)
	b.click(button)
}

// click clicks sel and waits for the page it leads to.
func (b *browserUser) click(sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("browser, click %s: %v\n%s", sel, err, b.where())
	}
	b.do("the page after "+sel, chromedp.WaitReady(chromedp.CSS("main")))
}

// signin signs in as email, from wherever the browser is.
func (b *browserUser) signin(email, password string) {
	b.t.Helper()
	b.open("/signin")
	b.submit(map[string]string{"#email": email, "#password": password}, "#signin")
	if got := b.path(); got != "/" {
		b.t.Fatalf("signing in as %s led to %s\n%s", email, got, b.where())
	}
}

// signout ends the session in the browser, so that the next person can
// sign in.
func (b *browserUser) signout() {
	b.t.Helper()
	b.open("/")
	b.click("#signout")
	b.open("/sites")
	if got := b.path(); got != "/signin" {
		b.t.Fatalf("after signing out /sites led to %s, want /signin", got)
	}
}

// text is the text of the element sel.
func (b *browserUser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser, text of %s: %v\n%s", sel, err, b.where())
	}
	return strings.TrimSpace(s)
}

// count is the number of elements sel matches.
func (b *browserUser) count(ctx context.Context, sel string) (int, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
}

// want checks that main's text has each of contains.
func (b *browserUser) want(contains ...string) {
	b.t.Helper()
	body := b.text("main")
	for _, c := range contains {
		if !strings.Contains(body, c) {
			b.t.Fatalf("%s: no %q in\n%s", b.path(), c, body)
		}
	}
}

// path is the page's path.
func (b *browserUser) path() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("browser, location: %v", err)
	}
	return strings.TrimPrefix(loc, b.base)
}

// screenshot writes the viewport as DIR/name.png when HEARTH_SCREENSHOTS
// is set.
func (b *browserUser) screenshot(name string) {
	b.t.Helper()
	if b.shot == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("browser, screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(b.shot, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.shot, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// download clicks the link sel and waits for the browser to save the
// file into dir; it returns the file's path.
func (b *browserUser) download(sel, dir string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	b.do("download from "+sel, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID, EventsEnabled: &[]bool{true}[0]})
		return err
	}), chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range progress {
		if err != nil {
			b.t.Fatalf("browser, download from %s: %v", sel, err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			return filepath.Join(dir, ev.GUID)
		}
	}
	b.t.Fatalf("browser, download from %s: no download", sel)
	return ""
}

// hearthCmd runs the hearth binary and returns its standard output.
func hearthCmd(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(hearthBin, args...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("hearth %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// untarKit unpacks a downloaded kit archive into dir (its top folder is
// the participant's name) and returns the kit's folder.
func untarKit(t *testing.T, archive, dir string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	top := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || strings.HasPrefix(name, "..") {
			t.Fatalf("kit archive entry %q leaves its folder", h.Name)
		}
		if top == "" {
			top = strings.SplitN(name, string(filepath.Separator), 2)[0]
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, os.FileMode(h.Mode)&0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	return filepath.Join(dir, top)
}

// checkFor polls cond every `every` until it returns nil, failing the test
// with cond's last error after total.
func checkFor(t *testing.T, total, every time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", total, err)
		}
		time.Sleep(every)
	}
}

var setupLinkRE = regexp.MustCompile(`https://\S+(/setup/[A-Za-z0-9_-]+)`)

// TestDashboardInABrowser is the dashboard's whole flow in headless
// Chromium, from an empty workspace: the project admin creates the project
// (its CA and server kit) and its own account through the setup link, gets
// its admin kit through its own CSR (the dashboard restarts with it as
// --admin-kit) and invites
// an org admin, who accepts, adds two sites and pastes their CSRs (made by
// `hearth cert request`); the project admin approves; the org admin
// downloads the kits, which unpack, take their keys and
// load (kit.Load verifies the root-signed manifest); `hearth server` and
// two `hearth site`s start from them and show as connected on the
// participants page; a job submitted with the project admin's kit trains
// and its rounds appear on the job page while it runs, then its test
// accuracy. Refused through the browser: a page without a session, a
// forged CSRF token. With HEARTH_SCREENSHOTS=DIR it writes the main pages
// as PNGs into DIR.
//
// One browser, people taking turns in it (sign in, sign out): each step
// is bounded (stepTimeout) and fails with its name. It skips without
// chromium, and fails without it under CI=true.
func TestDashboardInABrowser(t *testing.T) {
	exe := chromium(t)
	start := time.Now()
	ws := filepath.Join(t.TempDir(), "ws")
	ports, err := cluster.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	const adminName = "admin@hub.org"
	const pass = "browser test passphrase"
	passFile := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(passFile, []byte(pass), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := t.TempDir()
	proj := &project{logs: logs, sites: map[string]*cluster.Proc{}}
	listen := fmt.Sprintf("127.0.0.1:%d", ports[2])
	// An empty workspace: the setup link creates the project. No admin
	// kit yet, so no --admin-kit until the project admin has one.
	dash := proj.start(t, "dashboard", "dashboard", "-w", ws, "--passphrase-file", passFile, "--listen", listen)
	awaitLog(t, dash, "listening", func(r cluster.Record) bool { return r.Msg() == "dashboard listening" })
	var setup string
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		data, _ := os.ReadFile(filepath.Join(logs, "dashboard.log"))
		m := setupLinkRE.FindStringSubmatch(string(data))
		if m == nil {
			return fmt.Errorf("no setup link in the dashboard's output yet")
		}
		setup = m[1]
		return nil
	})
	base := "https://" + listen

	// No session: every page sends a browser to sign in.
	b := newBrowser(t, exe, base)
	b.open("/sites")
	if got := b.path(); got != "/signin" {
		t.Fatalf("without a session /sites led to %s, want /signin", got)
	}
	b.screenshot("signin")

	// The project admin: setup link, then an invitation.
	const orgAdmin = "ann@clinic-a.org"
	const paPass, orgPass = "project admin's password", "org admin's password"
	b.open(setup)
	b.submit(map[string]string{"#project": "browser-demo", "#hosts": "localhost, 127.0.0.1",
		"#leaf_port": strconv.Itoa(ports[0]), "#client_port": strconv.Itoa(ports[1]),
		"#email": adminName, "#org": "hub", "#password": paPass, "#confirm": paPass}, "#create")
	root := b.text("#root")
	if want, _ := provision.RootFingerprint(ws); root != want.String() {
		t.Fatalf("home page shows root %s, the workspace's is %s", root, want)
	}
	if _, err := kit.Load(provision.KitDir(ws, "server")); err != nil {
		t.Fatalf("the server kit the setup page made: %v", err)
	}

	// The project admin's own admin kit, through the dashboard's CSR flow
	// (`hearth admin submit` needs one); then the dashboard restarts with
	// it as --admin-kit for the jobs pages. The session survives.
	adminReq := filepath.Join(t.TempDir(), "admin")
	hearthCmd(t, "cert", "request", "--name", adminName, "--org", "hub", "--kind", "admin", "--role", "project_admin", "-o", adminReq)
	adminCSR, err := os.ReadFile(filepath.Join(adminReq, adminName+".csr"))
	if err != nil {
		t.Fatal(err)
	}
	b.open("/")
	b.submit(map[string]string{"#csr": string(adminCSR)}, "#upload-own")
	b.open("/requests")
	b.click(`button[id="approve-` + adminName + `"]`)
	b.open("/")
	adminKit := untarKit(t, b.download("#own-kit", t.TempDir()), t.TempDir())
	key, err := os.ReadFile(filepath.Join(adminReq, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(adminKit, "key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := kit.Load(adminKit); err != nil {
		t.Fatalf("the project admin's kit: %v", err)
	}
	if err := dash.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	dash = proj.start(t, "dashboard-2", "dashboard", "-w", ws, "--passphrase-file", passFile, "--listen", listen, "--admin-kit", adminKit)
	awaitLog(t, dash, "listening", func(r cluster.Record) bool { return r.Msg() == "dashboard listening" })
	b.open("/")
	if got := b.text("#root"); got != root {
		t.Fatalf("after the restart the home page shows root %q", got)
	}
	b.open("/invitations")
	b.submit(map[string]string{"#email": orgAdmin, "#role": "org_admin", "#org": "clinic-a"}, "#invite")
	link := b.text("#invite-link")
	b.screenshot("invitations")
	b.signout()

	// The org admin, through the link: accept, two sites, their CSRs.
	b.open(strings.TrimPrefix(link, base))
	b.submit(map[string]string{"#password": orgPass, "#confirm": orgPass}, "#accept")
	reqs := t.TempDir()
	sitePages := map[string]string{}
	for _, site := range []string{"site-1", "site-2"} {
		b.open("/sites")
		b.submit(map[string]string{"#name": site, "#gpus": "1", "#gpu_memory_gib": "16"}, "#add-site")
		sitePages[site] = b.path()
		dir := filepath.Join(reqs, site)
		hearthCmd(t, "cert", "request", "--name", site, "--org", "clinic-a", "--kind", "site", "-o", dir)
		csr, err := os.ReadFile(filepath.Join(dir, site+".csr"))
		if err != nil {
			t.Fatal(err)
		}
		b.submit(map[string]string{"#csr": string(csr)}, "#upload-csr")
		if got := b.text("#site-status"); got != "pending" {
			t.Fatalf("%s after its CSR: %q, want pending", site, got)
		}
	}
	b.open("/sites")
	b.screenshot("sites")
	// A forged CSRF token is refused, and adds no site.
	b.do("forge the CSRF token", chromedp.SetAttributeValue(chromedp.CSS(`form[action="/sites"] input[name=csrf]`), "value", "forged"))
	b.submit(map[string]string{"#name": "site-forged"}, "#add-site")
	b.want("Forbidden", "CSRF token")
	// So is the form without its token field. (A fetch from the page is
	// refused before it leaves: the CSP's default-src 'none' covers
	// connect-src.)
	b.open("/sites")
	b.do("remove the CSRF field", chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action="/sites"] input[name=csrf]').remove()`))
	b.submit(map[string]string{"#name": "site-tokenless"}, "#add-site")
	b.want("Forbidden", "CSRF token")
	b.open("/sites")
	if body := b.text("main"); strings.Contains(body, "site-forged") || strings.Contains(body, "site-tokenless") {
		t.Fatalf("a form with a forged or no CSRF token added a site:\n%s", body)
	}
	b.signout()

	// The project admin approves both.
	b.signin(adminName, paPass)
	b.open("/requests")
	b.want("site-1", "site-2")
	b.screenshot("approval")
	for _, site := range []string{"site-1", "site-2"} {
		b.open("/requests")
		b.click("#approve-" + site)
	}
	b.signout()

	// The org admin downloads the kits; each unpacks (a folder of its own
	// per site, since the kit's data folder lies beside it), takes its key,
	// loads and gets the site's data.
	b.signin(orgAdmin, orgPass)
	kits := t.TempDir()
	downloads := t.TempDir()
	split := &cluster.Local{Workspace: t.TempDir(), Sites: []string{"site-1", "site-2"}}
	if _, err := split.PrepareData("optdigits", 0.5, 1); err != nil {
		t.Fatal(err)
	}
	siteKits := map[string]string{}
	for _, site := range []string{"site-1", "site-2"} {
		b.open(sitePages[site])
		archive := b.download("#site-kit", downloads)
		home := filepath.Join(kits, site)
		dir := untarKit(t, archive, home)
		if filepath.Base(dir) != site {
			t.Fatalf("kit archive's folder %s, want %s", filepath.Base(dir), site)
		}
		if _, err := kit.Load(dir); err == nil {
			t.Fatalf("%s's kit loads without its key", site)
		}
		key, err := os.ReadFile(filepath.Join(reqs, site, "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "key.pem"), key, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := kit.Load(dir)
		if err != nil {
			t.Fatalf("%s's kit: %v", site, err)
		}
		if k.Config.Name != site || k.Config.Org != "clinic-a" || k.Config.Leaf == nil || k.Config.Leaf.DataDir != dashboard.SiteDataDir {
			t.Fatalf("kit of %s (%s), leaf %+v", k.Config.Name, k.Config.Org, k.Config.Leaf)
		}
		if err := os.Symlink(filepath.Join(split.Workspace, "data", site), k.DataDir()); err != nil {
			t.Fatal(err)
		}
		if _, err := kit.Load(dir); err != nil {
			t.Fatalf("%s's kit with its data beside it: %v", site, err)
		}
		// The GPUs and memory given on the site's page are in its kit.
		if out := hearthCmd(t, "policy", "lint", k.PolicyPath("resources.json")); !strings.Contains(out, "ok: 1 GPUs of 16 GiB") {
			t.Fatalf("%s's resources.json: %s", site, out)
		}
		siteKits[site] = dir
	}
	b.signout()
	b.signin(adminName, paPass)

	// The server (its kit now lists the sites) and the sites start.
	proj.server = proj.start(t, "server", "server", "-k", provision.KitDir(ws, "server"), "--listen", "127.0.0.1")
	proj.await(t, proj.server)
	for _, site := range []string{"site-1", "site-2"} {
		proj.sites[site] = proj.start(t, site, "site", "-k", siteKits[site], "--root-fingerprint", root)
		proj.await(t, proj.sites[site])
	}
	checkFor(t, 20*time.Second, 300*time.Millisecond, func() error {
		b.open("/participants")
		for _, site := range []string{"site-1", "site-2"} {
			if got := b.text("#participant-" + site + " td.link"); !strings.HasPrefix(got, "connected") {
				return fmt.Errorf("%s on the participants page: %q", site, got)
			}
		}
		return nil
	})
	b.screenshot("participants")

	// A job, submitted with the project admin's kit, followed live.
	jobDir := t.TempDir()
	manifest := `name: browser-job
workflow: fedavg
rounds: 3
sites: ["@all"]
min_sites: 2
round_timeout: 60s
dataset: optdigits
trainer: {kind: logreg, learning_rate: 0.1, epochs: 2, batch_size: 16, seed: 1}
evaluation: {validation: true, test: true}
`
	if err := os.WriteFile(filepath.Join(jobDir, "manifest.yml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	var accepted struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal([]byte(hearthCmd(t, "admin", "-k", adminKit, "--json", "submit", jobDir)), &accepted); err != nil || accepted.JobID == "" {
		t.Fatalf("submit: %v (%q)", err, accepted.JobID)
	}
	b.open("/jobs")
	b.want(accepted.JobID, "browser-job")
	b.open("/jobs/" + accepted.JobID)
	var liveRounds int // round rows seen on the page while the job ran
	checkFor(t, 90*time.Second, 200*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		// The page reloads itself every 2 s: read it between reloads.
		status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#job-status")))
		if err != nil {
			return err
		}
		rows, err := b.count(ctx, "tr.round")
		if err != nil {
			return err
		}
		if status == "running" && rows > 0 {
			if rows > liveRounds && liveRounds == 0 {
				b.screenshot("job-running")
			}
			liveRounds = max(liveRounds, rows)
		}
		if status != "finished" {
			return fmt.Errorf("job %s, %d round rows", status, rows)
		}
		return nil
	})
	if liveRounds == 0 {
		t.Fatal("no round row appeared on the job page while the job ran")
	}
	b.open("/jobs/" + accepted.JobID)
	acc := b.text("#test-accuracy")
	rows, err := b.count(b.ctx, "tr.round")
	if err != nil {
		t.Fatal(err)
	}
	if rows != 3 || !strings.HasSuffix(acc, "%") {
		t.Fatalf("finished job page: %d round rows, test accuracy %q", rows, acc)
	}
	b.screenshot("job")
	t.Logf("browser flow: %d round rows seen while running, test accuracy %s; %v in all", liveRounds, acc, time.Since(start).Round(100*time.Millisecond))
}
