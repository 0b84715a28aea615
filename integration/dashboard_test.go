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
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/provision"
	"github.com/hearthfl/hearth/cmd/hearth/dashboard"
	"github.com/hearthfl/hearth/integration/cluster"
	"github.com/hearthfl/hearth/policies"
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

// browserUser is one person's browser: its own Chromium, so its own
// cookies.
type browserUser struct {
	t    *testing.T
	ctx  context.Context
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
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatal(err)
	}
	return &browserUser{t: t, ctx: ctx, base: base, shot: os.Getenv("HEARTH_SCREENSHOTS")}
}

// another is a second person in the same browser: a browser context of
// its own, so cookies of its own.
func (b *browserUser) another() *browserUser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatal(err)
	}
	return &browserUser{t: b.t, ctx: ctx, base: b.base, shot: b.shot}
}

// do runs actions within a bound.
func (b *browserUser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
		b.t.Fatalf("browser: %v\nat %s:\n%s", err, loc, body)
	}
}

// open navigates to path and waits for the page's main.
func (b *browserUser) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// submit fills the fields (CSS selector -> value), clicks button and
// waits for the page the form leads to.
func (b *browserUser) submit(fields map[string]string, button string) {
	b.t.Helper()
	var acts []chromedp.Action[chromedp.Void]
	for sel, v := range fields {
		acts = append(acts, chromedp.SetValue(chromedp.CSS(sel), v))
	}
	b.do(acts...)
	b.click(button)
}

// click clicks sel and waits for the page it leads to.
func (b *browserUser) click(sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
	b.do(chromedp.WaitReady(chromedp.CSS("main")))
}

// text is the text of the element sel.
func (b *browserUser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("body")))
		b.t.Fatalf("text of %s: %v\nat %s:\n%s", sel, err, loc, body)
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
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
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
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
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
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID, EventsEnabled: &[]bool{true}[0]})
		return err
	}), chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range progress {
		if err != nil {
			b.t.Fatalf("download from %s: %v", sel, err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			return filepath.Join(dir, ev.GUID)
		}
	}
	b.t.Fatalf("no download from %s", sel)
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
// Chromium, from a workspace with only the server and the project admin:
// the project admin sets its password through the setup link and invites
// an org admin, who accepts in its own browser, adds two sites and pastes
// their CSRs (made by `hearth cert request`); the project admin approves;
// the org admin downloads the kits, which unpack, take their keys and
// load (kit.Load verifies the root-signed manifest); `hearth server` and
// two `hearth site`s start from them and show as connected on the
// participants page; a job submitted with the project admin's kit trains
// and its rounds appear on the job page while it runs, then its test
// accuracy. Refused through the browser: a page without a session, a
// forged CSRF token. With HEARTH_SCREENSHOTS=DIR it writes the main pages
// as PNGs into DIR.
//
// Work in progress: it passes the sign-in refusal, the setup and the
// invitation, then hangs starting the second person's browser context
// (chromedp v0.23's WithNewBrowserContext, or a second ExecAllocator):
// it runs only with HEARTH_BROWSER_TEST=1 until that is found.
func TestDashboardInABrowser(t *testing.T) {
	if os.Getenv("HEARTH_BROWSER_TEST") != "1" {
		t.Skip("work in progress: set HEARTH_BROWSER_TEST=1 (it hangs at the second browser context)")
	}
	exe := chromium(t)
	start := time.Now()
	ws := filepath.Join(t.TempDir(), "ws")
	ports, err := cluster.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	const adminName = "admin@hub.org"
	p := &provision.Project{APIVersion: 1, Name: "browser-demo",
		Server: provision.ServerSpec{Name: "server", Org: "hub", Hosts: []string{"localhost", "127.0.0.1"}, LeafPort: ports[0], ClientPort: ports[1]},
		Admins: []provision.AdminSpec{{Name: adminName, Org: "hub", Role: pki.RoleProjectAdmin}}}
	const pass = "browser test passphrase"
	if _, err := provision.Provision(p, ws, []byte(pass), policies.Defaults(), time.Now()); err != nil {
		t.Fatal(err)
	}
	passFile := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(passFile, []byte(pass), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := t.TempDir()
	adminKit := provision.KitDir(ws, adminName)
	proj := &project{logs: logs, sites: map[string]*cluster.Proc{}}
	listen := fmt.Sprintf("127.0.0.1:%d", ports[2])
	dash := proj.start(t, "dashboard", "dashboard", "-w", ws, "--passphrase-file", passFile, "--listen", listen, "--admin-kit", adminKit)
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
	pa := newBrowser(t, exe, base)
	pa.open("/sites")
	if got := pa.path(); got != "/signin" {
		t.Fatalf("without a session /sites led to %s, want /signin", got)
	}
	pa.screenshot("signin")

	// The project admin: setup link, then an invitation.
	const paPass, orgPass = "project admin's password", "org admin's password"
	pa.open(setup)
	pa.submit(map[string]string{"#email": adminName, "#org": "hub", "#password": paPass, "#confirm": paPass}, "#create")
	root := pa.text("#root")
	if want, _ := provision.RootFingerprint(ws); root != want.String() {
		t.Fatalf("home page shows root %s, the workspace's is %s", root, want)
	}
	pa.open("/invitations")
	pa.submit(map[string]string{"#email": "ann@clinic-a.org", "#role": "org_admin", "#org": "clinic-a"}, "#invite")
	link := pa.text("#invite-link")
	pa.screenshot("invitations")

	// The org admin, in its own browser: accept, two sites, their CSRs.
	ann := pa.another()
	ann.open(strings.TrimPrefix(link, base))
	ann.submit(map[string]string{"#password": orgPass, "#confirm": orgPass}, "#accept")
	reqs := t.TempDir()
	sitePages := map[string]string{}
	for _, site := range []string{"site-1", "site-2"} {
		ann.open("/sites")
		ann.submit(map[string]string{"#name": site, "#gpus": "1", "#gpu_memory_gib": "16"}, "#add-site")
		sitePages[site] = ann.path()
		dir := filepath.Join(reqs, site)
		hearthCmd(t, "cert", "request", "--name", site, "--org", "clinic-a", "--kind", "site", "-o", dir)
		csr, err := os.ReadFile(filepath.Join(dir, site+".csr"))
		if err != nil {
			t.Fatal(err)
		}
		ann.submit(map[string]string{"#csr": string(csr)}, "#upload-csr")
		if got := ann.text("#site-status"); got != "pending" {
			t.Fatalf("%s after its CSR: %q, want pending", site, got)
		}
	}
	// A forged CSRF token is refused, and adds no site.
	ann.open("/sites")
	ann.screenshot("sites")
	ann.do(chromedp.SetAttributeValue(chromedp.CSS(`form[action="/sites"] input[name=csrf]`), "value", "forged"))
	ann.submit(map[string]string{"#name": "site-forged"}, "#add-site")
	ann.want("Forbidden", "CSRF token")
	ann.open("/sites")
	if strings.Contains(ann.text("main"), "site-forged") {
		t.Fatal("a forged CSRF token added a site")
	}

	// The project admin approves both.
	pa.open("/requests")
	pa.want("site-1", "site-2")
	pa.screenshot("approval")
	for _, site := range []string{"site-1", "site-2"} {
		pa.open("/requests")
		pa.click("#approve-" + site)
	}

	// The org admin downloads the kits; each unpacks, takes its key, loads
	// and gets the site's data.
	kits := t.TempDir()
	downloads := t.TempDir()
	split := &cluster.Local{Workspace: t.TempDir(), Sites: []string{"site-1", "site-2"}}
	if _, err := split.PrepareData("optdigits", 0.5, 1); err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{"site-1", "site-2"} {
		ann.open(sitePages[site])
		archive := ann.download("#site-kit", downloads)
		dir := untarKit(t, archive, kits)
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
		if k.Config.Name != site || k.Config.Org != "clinic-a" {
			t.Fatalf("kit of %s (%s)", k.Config.Name, k.Config.Org)
		}
		if err := os.Symlink(filepath.Join(split.Workspace, "data", site), filepath.Join(dir, dashboard.SiteDataDir)); err != nil {
			t.Fatal(err)
		}
	}

	// The server (its kit now lists the sites) and the sites start.
	proj.server = proj.start(t, "server", "server", "-k", provision.KitDir(ws, "server"), "--listen", "127.0.0.1")
	proj.await(t, proj.server)
	for _, site := range []string{"site-1", "site-2"} {
		proj.sites[site] = proj.start(t, site, "site", "-k", filepath.Join(kits, site), "--root-fingerprint", root)
		proj.await(t, proj.sites[site])
	}
	checkFor(t, 20*time.Second, 300*time.Millisecond, func() error {
		pa.open("/participants")
		for _, site := range []string{"site-1", "site-2"} {
			if got := pa.text("#participant-" + site + " td.link"); !strings.HasPrefix(got, "connected") {
				return fmt.Errorf("%s on the participants page: %q", site, got)
			}
		}
		return nil
	})
	pa.screenshot("participants")

	// A job, submitted with the project admin's kit, followed live.
	jobDir := t.TempDir()
	manifest := `name: browser-job
workflow: fedavg
rounds: 12
sites: ["@all"]
min_sites: 2
round_timeout: 60s
dataset: optdigits
trainer: {kind: mlp, hidden: [32], learning_rate: 0.05, epochs: 2, batch_size: 32, seed: 1}
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
	pa.open("/jobs")
	pa.want(accepted.JobID, "browser-job")
	pa.open("/jobs/" + accepted.JobID)
	var liveRounds int // round rows seen on the page while the job ran
	checkFor(t, 90*time.Second, 200*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(pa.ctx, 5*time.Second)
		defer cancel()
		// The page reloads itself every 2 s: read it between reloads.
		status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#job-status")))
		if err != nil {
			return err
		}
		rows, err := pa.count(ctx, "tr.round")
		if err != nil {
			return err
		}
		if status == "running" && rows > 0 {
			if rows > liveRounds && liveRounds == 0 {
				pa.screenshot("job-running")
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
	pa.open("/jobs/" + accepted.JobID)
	acc := pa.text("#test-accuracy")
	rows, err := pa.count(pa.ctx, "tr.round")
	if err != nil {
		t.Fatal(err)
	}
	if rows != 12 || !strings.HasSuffix(acc, "%") {
		t.Fatalf("finished job page: %d round rows, test accuracy %q", rows, acc)
	}
	pa.screenshot("job")
	t.Logf("browser flow: %d round rows seen while running, test accuracy %s; %v in all", liveRounds, acc, time.Since(start).Round(100*time.Millisecond))
}
