// Package authntest is test support for authenticators: a real OpenLDAP
// directory server (slapd) on loopback, owned by the test that starts it.
//
// StartSlapd runs Debian's /usr/sbin/slapd in the foreground with a
// private configuration in t.TempDir() (slapd.conf, mdb backend), on free
// loopback ports, waits until it answers, loads a Directory through
// go-ldap as the root DN, and kills the process at the test's cleanup.
// The directory's tree is fixed:
//
//	dc=example,dc=org                 BaseDN
//	  ou=people,dc=example,dc=org     people: inetOrgPerson, uid=UID (PeopleDN)
//	  ou=groups,dc=example,dc=org     groups: groupOfNames, cn=NAME (GroupDN),
//	                                  member = the members' PeopleDN
//
// Passwords are readable by no one (a user may bind with theirs, as in a
// real directory); everything else is readable by anyone bound or not.
// With Directory.TLS, slapd gets a server certificate from a fresh test
// CA (bus/pki/pkitest) for 127.0.0.1 and localhost, offers StartTLS on URL
// and serves ldaps:// on LDAPSURL; CA and CAPEM hold that CA.
//
// Where slapd is not installed the test is skipped with a message naming
// the packages to install; under CI=true it fails instead (.ci/run
// installs them).
//
// Only _test.go files import this package.
package authntest

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/hearthfl/hearth/bus/bustest"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

// Person is a user entry under ou=people: an inetOrgPerson named uid=UID.
type Person struct {
	UID      string
	Password string // userPassword; a person without one cannot bind
	Name     string // cn (and sn); UID when empty
	Email    string // mail; no mail attribute when empty
}

// Group is a groupOfNames under ou=groups named cn=Name. groupOfNames
// needs at least one member.
type Group struct {
	Name    string
	Members []string // UIDs of the Directory's People
}

// Directory is what StartSlapd loads.
type Directory struct {
	People []Person
	Groups []Group
	// TLS gives slapd a certificate from a test CA: StartTLS on URL and
	// ldaps:// on LDAPSURL.
	TLS bool
}

// Slapd is a running directory server. Its fields are set once by
// StartSlapd and never change.
type Slapd struct {
	URL      string // ldap://127.0.0.1:PORT (StartTLS offered when TLS)
	LDAPSURL string // ldaps://127.0.0.1:PORT; empty without TLS
	BaseDN   string // dc=example,dc=org

	// RootDN and RootPassword bind as the directory's administrator.
	RootDN       string
	RootPassword string

	// CA and CAPEM are the CA that issued slapd's certificate (nil
	// without TLS): trust them to verify the directory.
	CA    *x509.CertPool
	CAPEM []byte

	proc *process
}

// process is one run of slapd.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	stderr *tailBuffer   // the last of what it printed (errors only)
	stop   sync.Once
}

// kill kills the process and waits until it has exited; safe to call
// more than once.
func (p *process) kill() {
	p.stop.Do(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
}

// The tree's fixed names.
const (
	baseDN   = "dc=example,dc=org"
	rootDN   = "cn=admin," + baseDN
	peopleOU = "ou=people," + baseDN
	groupsOU = "ou=groups," + baseDN
)

// PeopleDN is the DN of the person with uid: uid=UID,ou=people,BaseDN.
func (s *Slapd) PeopleDN(uid string) string { return "uid=" + ldap.EscapeDN(uid) + "," + peopleOU }

// GroupDN is the DN of the group name: cn=NAME,ou=groups,BaseDN.
func (s *Slapd) GroupDN(name string) string { return "cn=" + ldap.EscapeDN(name) + "," + groupsOU }

// PeopleBase is the DN under which the people lie (ou=people,BaseDN).
func (s *Slapd) PeopleBase() string { return peopleOU }

// GroupBase is the DN under which the groups lie (ou=groups,BaseDN).
func (s *Slapd) GroupBase() string { return groupsOU }

// Stop kills slapd and waits for it to exit, so that its ports refuse
// connections: a directory that is down. It is safe to call more than
// once; the test's cleanup calls it too.
func (s *Slapd) Stop() { s.proc.kill() }

// startTimeout bounds how long slapd may take to answer (it starts in
// about 0.1 s).
const startTimeout = 15 * time.Second

// StartSlapd starts a private slapd loaded with d, or skips t where slapd
// is not installed (fails it under CI=true). The server is stopped at
// t's cleanup.
func StartSlapd(t testing.TB, d Directory) *Slapd {
	t.Helper()
	bin := findSlapd()
	if bin == "" {
		const msg = "slapd not installed: apt-get install slapd ldap-utils (preseed slapd/no_configuration true; see .ci/run)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	s := &Slapd{BaseDN: baseDN, RootDN: rootDN, RootPassword: randomHex(t)}
	var tlsConf string
	if d.TLS {
		tlsConf = writeCertificate(t, s, dir)
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(conf, []byte(slapdConf(dir, s.RootPassword, tlsConf)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A port found free can be taken before slapd binds it: try again
	// with others when that happens.
	for attempt := 1; ; attempt++ {
		err := s.start(t, bin, conf, d.TLS)
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.Stop)
	if err := s.load(d); err != nil {
		t.Fatalf("authntest: load the directory: %v", err)
	}
	return s
}

// errPortTaken is slapd exiting because its port was taken.
var errPortTaken = errors.New("slapd's port was taken")

// start runs slapd on fresh ports and waits until it answers a bind as
// the root DN. When it fails, no slapd is left running.
func (s *Slapd) start(t testing.TB, bin, conf string, withTLS bool) error {
	t.Helper()
	s.URL = "ldap://" + freeAddr(t)
	urls := s.URL + "/"
	if withTLS {
		s.LDAPSURL = "ldaps://" + freeAddr(t)
		urls += " " + s.LDAPSURL + "/"
	}
	// "-d none": stay in the foreground (the test owns the process) and
	// print only errors, to stderr.
	p := &process{cmd: exec.Command(bin, "-f", conf, "-h", urls, "-d", "none"), exited: make(chan struct{}), stderr: &tailBuffer{max: 16 << 10}}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("authntest: start %s: %w", bin, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()

	early := false
	err := bustest.Poll(startTimeout, 10*time.Millisecond, func() error {
		select {
		case <-p.exited:
			early = true
			return nil
		default:
		}
		conn, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
		if err != nil {
			return fmt.Errorf("slapd at %s does not answer: %w", s.URL, err)
		}
		defer conn.Close()
		if err := conn.Bind(s.RootDN, s.RootPassword); err != nil {
			return fmt.Errorf("slapd at %s answers but refuses the root DN: %w", s.URL, err)
		}
		return nil
	})
	switch {
	case early:
		out := p.stderr.String()
		if strings.Contains(out, "Address already in use") {
			return fmt.Errorf("%w: %s", errPortTaken, out)
		}
		return fmt.Errorf("authntest: slapd exited at start (%v):\n%s", p.cmd.ProcessState, out)
	case err != nil:
		p.kill()
		return fmt.Errorf("authntest: after %v: %w\nslapd's errors:\n%s", startTimeout, err, p.stderr.String())
	}
	s.proc = p
	return nil
}

// load adds the tree and d's entries as the root DN.
func (s *Slapd) load(d Directory) error {
	conn, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetTimeout(10 * time.Second)
	if err := conn.Bind(s.RootDN, s.RootPassword); err != nil {
		return err
	}
	add := func(dn string, attrs map[string][]string) error {
		req := ldap.NewAddRequest(dn, nil)
		for _, name := range []string{"objectClass", "dc", "o", "ou", "uid", "cn", "sn", "mail", "userPassword", "member"} {
			if v, ok := attrs[name]; ok {
				req.Attribute(name, v)
			}
		}
		if err := conn.Add(req); err != nil {
			return fmt.Errorf("add %s: %w", dn, err)
		}
		return nil
	}
	if err := add(baseDN, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"Example"}}); err != nil {
		return err
	}
	for _, ou := range []string{"people", "groups"} {
		if err := add("ou="+ou+","+baseDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {ou}}); err != nil {
			return err
		}
	}
	people := map[string]bool{}
	for _, p := range d.People {
		name := p.Name
		if name == "" {
			name = p.UID
		}
		attrs := map[string][]string{"objectClass": {"inetOrgPerson"}, "uid": {p.UID}, "cn": {name}, "sn": {name}}
		if p.Password != "" {
			attrs["userPassword"] = []string{p.Password}
		}
		if p.Email != "" {
			attrs["mail"] = []string{p.Email}
		}
		if err := add(s.PeopleDN(p.UID), attrs); err != nil {
			return err
		}
		people[p.UID] = true
	}
	for _, g := range d.Groups {
		if len(g.Members) == 0 {
			return fmt.Errorf("group %q has no member (groupOfNames needs one)", g.Name)
		}
		var members []string
		for _, uid := range g.Members {
			if !people[uid] {
				return fmt.Errorf("group %q: member %q is not one of the Directory's People", g.Name, uid)
			}
			members = append(members, s.PeopleDN(uid))
		}
		if err := add(s.GroupDN(g.Name), map[string][]string{"objectClass": {"groupOfNames"}, "cn": {g.Name}, "member": members}); err != nil {
			return err
		}
	}
	return nil
}

// writeCertificate issues slapd's certificate from a fresh test CA,
// writes it and its key into dir, sets s.CA and s.CAPEM and returns the
// configuration lines that use them.
func writeCertificate(t testing.TB, s *Slapd, dir string) string {
	t.Helper()
	project := pkitest.New(t)
	server := project.Issue(t, "directory", "example", pki.KindServer)
	certFile, keyFile := filepath.Join(dir, "slapd.crt"), filepath.Join(dir, "slapd.key")
	if err := os.WriteFile(certFile, pki.EncodeCert(server.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pki.EncodeKey(server.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	s.CA = project.Trust.Pool()
	s.CAPEM = pki.EncodeCert(project.CA.Cert)
	return fmt.Sprintf("TLSCertificateFile %s\nTLSCertificateKeyFile %s\n", certFile, keyFile)
}

// slapdConf is a minimal slapd.conf: the schemas people and groups need,
// the mdb database under dir/db, and access rules under which a password
// serves only to bind.
func slapdConf(dir, rootPassword, tlsConf string) string {
	schema := findSchemaDir()
	var b strings.Builder
	for _, f := range []string{"core", "cosine", "inetorgperson"} {
		fmt.Fprintf(&b, "include %s\n", filepath.Join(schema, f+".schema"))
	}
	fmt.Fprintf(&b, "pidfile %s\nargsfile %s\n", filepath.Join(dir, "slapd.pid"), filepath.Join(dir, "slapd.args"))
	// Debian builds the backends as modules; other builds link them in.
	for _, modDir := range []string{"/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap"} {
		if _, err := os.Stat(filepath.Join(modDir, "back_mdb.la")); err == nil {
			fmt.Fprintf(&b, "modulepath %s\nmoduleload back_mdb\n", modDir)
			break
		}
	}
	b.WriteString(tlsConf)
	fmt.Fprintf(&b, "database mdb\nmaxsize 16777216\nsuffix %q\nrootdn %q\nrootpw %s\ndirectory %s\n",
		baseDN, rootDN, rootPassword, filepath.Join(dir, "db"))
	b.WriteString("access to attrs=userPassword by anonymous auth by * none\naccess to * by * read\n")
	return b.String()
}

// findSlapd returns slapd's path, or "" where it is not installed. PATH
// often lacks /usr/sbin.
func findSlapd() string {
	if p, err := exec.LookPath("slapd"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/slapd", "/usr/local/sbin/slapd", "/usr/libexec/slapd", "/usr/local/libexec/slapd"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// findSchemaDir returns the folder holding OpenLDAP's schema files.
func findSchemaDir() string {
	for _, d := range []string{"/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema"} {
		if _, err := os.Stat(filepath.Join(d, "core.schema")); err == nil {
			return d
		}
	}
	return "/etc/ldap/schema" // slapd then names the missing file
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it; slapd's stderr goes
// there, to explain a failed start.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
