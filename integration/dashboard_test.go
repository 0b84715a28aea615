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
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
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

// result runs the action a of the step named step within stepTimeout
// and returns its value.
func result[T any](b *browserUser, step string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser, %s: %v\n%s", step, err, b.where())
	}
	return v
}

// refused checks that the page is the dashboard's refusal with status
// text (its h1, such as "Not Found") and a message with each of contains.
func (b *browserUser) refused(status string, contains ...string) {
	b.t.Helper()
	if got := b.text("h1"); got != status {
		b.t.Fatalf("%s: %q, want the refusal %q\n%s", b.path(), got, status, b.where())
	}
	msg := b.text("#error")
	for _, c := range contains {
		if !strings.Contains(msg, c) {
			b.t.Fatalf("%s: refusal %q lacks %q", b.path(), msg, c)
		}
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
	b.capture(name, chromedp.CaptureScreenshot())
}

// screenshotPage is screenshot of the whole page, beyond the viewport.
func (b *browserUser) screenshotPage(name string) {
	b.t.Helper()
	b.capture(name, chromedp.FullScreenshot(100))
}

func (b *browserUser) capture(name string, shot chromedp.Action[[]byte]) {
	b.t.Helper()
	if b.shot == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, shot)
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

// makeKeyInBrowser has the open page (a site's, or the home page) make
// id's key and request with static/csr.js, saves key.pem into dir (the
// browser's download) and returns the request from the CSR field and the
// key's path. The request must be, byte for byte, the one pki.NewCSR makes
// with that key (Ed25519 signs deterministically); the upload button
// waits until the key is saved. It leaves the page with the field filled.
func makeKeyInBrowser(b *browserUser, id pki.Identity, upload, dir string) (csr []byte, keyFile string) {
	b.t.Helper()
	b.do("make a key in the browser", chromedp.WaitVisible(chromedp.CSS("#make-key")), chromedp.Click(chromedp.CSS("#make-key")))
	result(b, "wait for the browser's request", chromedp.Poll[bool](`document.querySelector("#csr").value.startsWith("-----BEGIN CERTIFICATE REQUEST-----")`))
	disabled := fmt.Sprintf("document.querySelector(%q).disabled", upload)
	if !result(b, "the upload button before the key is saved", chromedp.Evaluate[bool](disabled)) {
		b.t.Fatalf("%s is enabled before key.pem was saved", upload)
	}
	keyFile = b.download("#key-download", dir)
	if result(b, "the upload button once the key is saved", chromedp.Evaluate[bool](disabled)) {
		b.t.Fatalf("%s stays disabled after key.pem was saved", upload)
	}
	csr = []byte(result(b, "read the browser's request", chromedp.Value(chromedp.CSS("#csr"))))
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		b.t.Fatal(err)
	}
	key, err := pki.ParseKeyPEM(keyPEM)
	if err != nil {
		b.t.Fatalf("key.pem saved from the browser: %v", err)
	}
	want, err := pki.NewCSR(id, key, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	if string(csr) != string(want) {
		b.t.Fatalf("the browser's request for %v:\n%s\nis not pki.NewCSR's with the same key:\n%s", id, csr, want)
	}
	req, err := pki.ParseCSR(csr)
	if err != nil || req.Identity != id || !req.PublicKey.Equal(key.Public()) {
		b.t.Fatalf("the browser's request parses as %+v (%v), want %v with key.pem's public key", req, err, id)
	}
	return csr, keyFile
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

// putKey copies the private key made with a request into the kit's
// folder, as the dashboard's download page tells its user to.
func putKey(t *testing.T, keyFile, kitDir string) {
	t.Helper()
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kitDir, "key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
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
// its admin kit through its own CSR, key and request made in the browser
// by static/csr.js (the dashboard restarts with it as --admin-kit), and
// invites an org admin, who accepts, adds two sites and uploads their CSRs
// (site-1's made by `hearth cert request`, site-2's key and request made
// in the browser, key.pem saved through Chromium's download); the project
// admin approves and adds an aggregation host from its CSR on the project
// page; the org admin downloads the kits, which unpack, take their keys
// and load (kit.Load verifies the root-signed manifest); `hearth server`
// and two `hearth site`s start from them and show as connected on the
// participants page; a job submitted with the project admin's kit trains
// on both and its rounds appear on the job page while it runs, then its
// test accuracy.
//
// Refused through the browser: a page without a session, a forged or
// missing CSRF token, a browser-made request altered after signing, a
// reused invitation link, an org admin opening another org's site, a
// member opening the requests and posting an approval, and wrong
// passwords until the account is throttled. With HEARTH_SCREENSHOTS=DIR
// it writes the main pages as PNGs into DIR.
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
	const orgAdmin, member = "ann@clinic-a.org", "carol@clinic-a.org"
	const paPass, orgPass, memberPass = "project admin's password", "org admin's password", "member's password"
	const browserSite = "site-2" // its key and request are made in the browser
	b.open(setup)
	b.screenshotPage("setup")
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
	// with its key and request made in the browser (`hearth admin submit`
	// needs the kit); then the dashboard restarts with it as --admin-kit
	// for the jobs pages. The session survives.
	b.open("/")
	_, adminKey := makeKeyInBrowser(b, pki.Identity{Name: adminName, Org: "hub", Kind: pki.KindAdmin, Role: pki.RoleProjectAdmin}, "#upload-own", t.TempDir())
	b.click("#upload-own")
	if got := b.text("#own-status"); got != "pending" {
		t.Fatalf("the project admin's own request: %q, want pending", got)
	}
	b.open("/requests")
	b.click(`button[id="approve-` + adminName + `"]`)
	b.open("/")
	adminKit := untarKit(t, b.download("#own-kit", t.TempDir()), t.TempDir())
	putKey(t, adminKey, adminKit)
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
	link := strings.TrimPrefix(b.text("#invite-link"), base)
	b.screenshot("invitations")
	b.submit(map[string]string{"#email": member, "#role": "member", "#org": "clinic-a"}, "#invite")
	memberLink := strings.TrimPrefix(b.text("#invite-link"), base)
	// A site of another org, which the org admin must not see.
	b.open("/sites")
	b.submit(map[string]string{"#name": "site-b", "#org": "clinic-b"}, "#add-site")
	otherOrgSite := b.path()
	b.signout()

	// The org admin, through the link: accept (the link then works no
	// more), two sites and their CSRs: site-1's made by `hearth cert
	// request`, site-2's key and request made in the browser.
	b.open(link)
	b.submit(map[string]string{"#password": orgPass, "#confirm": orgPass}, "#accept")
	b.open(link)
	b.refused("Gone", "already used")
	reqs := t.TempDir()
	sitePages := map[string]string{}
	for _, site := range []string{"site-1", browserSite} {
		b.open("/sites")
		b.submit(map[string]string{"#name": site, "#gpus": "1", "#gpu_memory_gib": "16"}, "#add-site")
		sitePages[site] = b.path()
		dir := filepath.Join(reqs, site)
		var csr []byte
		if site == browserSite {
			// The browser's key goes where `hearth cert request` puts it.
			var keyFile string
			csr, keyFile = makeKeyInBrowser(b, pki.Identity{Name: site, Org: "clinic-a", Kind: pki.KindSite}, "#upload-csr", t.TempDir())
			b.do("scroll to the browser's key", chromedp.Evaluate[chromedp.Void](`document.querySelector(".webcrypto-csr").scrollIntoView({block: "start"})`))
			b.screenshot("browser-key")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(keyFile, filepath.Join(dir, "key.pem")); err != nil {
				t.Fatal(err)
			}
			// The same request with its org changed after signing is
			// refused (its signature), and records nothing.
			b.do("alter the browser's request", chromedp.SetValue(chromedp.CSS("#csr"), string(pkitest.AlterSignedCSR(t, csr, "clinic-a", "clinic-b"))))
			b.click("#upload-csr")
			b.refused("Bad Request", "certificate request signature")
			b.open(sitePages[site])
			if got := b.text("#site-status"); got != "no request" {
				t.Fatalf("%s after a tampered CSR: %q, want no request", site, got)
			}
		} else {
			hearthCmd(t, "cert", "request", "--name", site, "--org", "clinic-a", "--kind", "site", "-o", dir)
			var err error
			if csr, err = os.ReadFile(filepath.Join(dir, site+".csr")); err != nil {
				t.Fatal(err)
			}
		}
		b.submit(map[string]string{"#csr": string(csr)}, "#upload-csr")
		if got := b.text("#site-status"); got != "pending" {
			t.Fatalf("%s after its CSR: %q, want pending", site, got)
		}
	}
	b.open("/sites")
	b.screenshot("sites")
	if body := b.text("main"); strings.Contains(body, "site-b") {
		t.Fatalf("the org admin of clinic-a sees clinic-b's site:\n%s", body)
	}
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
	// Another org's site is "not found", as one that does not exist.
	b.open(otherOrgSite)
	b.refused("Not Found", "site not found")
	b.signout()

	// The project admin looks at the requests; a member (with a session
	// and its CSRF token) may neither see nor approve them.
	b.signin(adminName, paPass)
	b.open("/requests")
	b.want("site-1", browserSite)
	b.screenshot("approval")
	approveSite1 := result(b, "the approve form of site-1", chromedp.Evaluate[string](`document.querySelector("#approve-site-1").form.getAttribute("action")`))
	b.signout()
	b.open(memberLink)
	b.submit(map[string]string{"#password": memberPass, "#confirm": memberPass}, "#accept")
	b.open("/requests")
	b.refused("Forbidden", "only the project admin may approve")
	b.open("/")
	b.do("forge an approve form", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const f = document.createElement("form");
		f.method = "post";
		f.action = %q;
		const csrf = document.createElement("input");
		csrf.type = "hidden";
		csrf.name = "csrf";
		csrf.value = document.querySelector("input[name=csrf]").value;
		const button = document.createElement("button");
		button.id = "forged-approve";
		f.append(csrf, button);
		document.querySelector("main").append(f);
	})()`, approveSite1)))
	b.click("#forged-approve")
	b.refused("Forbidden", "only the project admin may approve")
	b.signout()

	// Wrong passwords for the member's account: after limiter.go's five
	// failures even the right one is throttled (the lock is the
	// account's, 30 s; nobody signs in as the member again).
	for i := range 5 {
		b.open("/signin")
		b.submit(map[string]string{"#email": member, "#password": fmt.Sprintf("wrong password %d", i)}, "#signin")
		if got := b.text("#error"); got != "wrong e-mail or password" {
			t.Fatalf("wrong password %d: %q", i, got)
		}
	}
	b.open("/signin")
	b.submit(map[string]string{"#email": member, "#password": memberPass}, "#signin")
	b.refused("Too Many Requests", "too many failed sign-ins", "try again in")

	// The project admin approves both sites (site-1's request is still
	// pending), and adds an aggregation host from its CSR.
	b.signin(adminName, paPass)
	for _, site := range []string{"site-1", browserSite} {
		b.open("/requests")
		b.click("#approve-" + site)
	}
	aggReq := filepath.Join(t.TempDir(), "agg")
	hearthCmd(t, "cert", "request", "--name", "agg-1", "--org", "hub", "--kind", "aggregator", "-o", aggReq)
	aggCSR, err := os.ReadFile(filepath.Join(aggReq, "agg-1.csr"))
	if err != nil {
		t.Fatal(err)
	}
	b.open("/project")
	b.submit(map[string]string{"#aggregator_csr": string(aggCSR)}, "#add-aggregator")
	b.open("/project")
	b.screenshotPage("project")
	aggKit := untarKit(t, b.download("#aggregator-agg-1 a", t.TempDir()), t.TempDir())
	putKey(t, filepath.Join(aggReq, "key.pem"), aggKit)
	if k, err := kit.Load(aggKit); err != nil || k.Config.Name != "agg-1" || k.Config.Kind != pki.KindAggregator {
		t.Fatalf("the aggregation host's kit: %v", err)
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
		putKey(t, filepath.Join(reqs, site, "key.pem"), dir)
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
	const rounds = 10 // enough for the page to be seen with rounds while the job runs
	manifest := fmt.Sprintf(`name: browser-job
workflow: fedavg
rounds: %d
sites: ["@all"]
min_sites: 2
round_timeout: 60s
dataset: optdigits
trainer: {kind: logreg, learning_rate: 0.1, epochs: 2, batch_size: 16, seed: 1}
evaluation: {validation: true, test: true}
`, rounds)
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
	// A round takes about 100 ms here, faster than the page's own reload
	// (every 2 s, which a running job's page must ask for): the test
	// reloads it itself, so that it sees rounds while the job runs.
	var liveRounds int // round rows seen on the page while the job ran
	checkFor(t, 90*time.Second, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate(b.base+"/jobs/"+accepted.JobID), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
			return err
		}
		status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#job-status")))
		if err != nil {
			return err
		}
		rows, err := b.count(ctx, "tr.round")
		if err != nil {
			return err
		}
		if status == "running" && rows > 0 {
			refresh, err := b.count(ctx, `meta[http-equiv="refresh"]`)
			if err != nil {
				return err
			}
			if refresh != 1 {
				t.Fatalf("a running job's page has %d refresh tags, want 1", refresh)
			}
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
	if rows != rounds || !strings.HasSuffix(acc, "%") {
		t.Fatalf("finished job page: %d round rows, test accuracy %q", rows, acc)
	}
	b.screenshot("job")
	t.Logf("browser flow: %d round rows seen while running, test accuracy %s; %v in all", liveRounds, acc, time.Since(start).Round(100*time.Millisecond))
}
