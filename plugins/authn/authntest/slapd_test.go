package authntest

import (
	"crypto/tls"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/hearthfl/hearth/bus/pki/pkitest"
)

var directory = Directory{
	People: []Person{
		{UID: "alice", Password: "alice-pw", Email: "alice@example.org"},
		{UID: "bob", Password: "bob-pw", Name: "Bob B"},
	},
	Groups: []Group{{Name: "fl-leads", Members: []string{"alice"}}, {Name: "staff", Members: []string{"alice", "bob"}}},
}

// dial connects to url, upgrading with StartTLS when startTLS is set.
func dial(t *testing.T, url string, tc *tls.Config, startTLS bool) (*ldap.Conn, error) {
	t.Helper()
	conn, err := ldap.DialURL(url, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, err
	}
	conn.SetTimeout(10 * time.Second)
	if startTLS {
		if err := conn.StartTLS(tc); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// TestStartSlapd starts a directory, binds as its people and finds their
// groups, and sees the directory refuse what a real one refuses.
func TestStartSlapd(t *testing.T) {
	s := StartSlapd(t, directory)
	conn, err := dial(t, s.URL, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	tests := []struct {
		name       string
		uid, pw    string
		wantGroups []string
		wantCode   uint16 // the bind's LDAP result code; 0 for success
	}{
		{name: "alice in two groups", uid: "alice", pw: "alice-pw", wantGroups: []string{"fl-leads", "staff"}},
		{name: "bob in one", uid: "bob", pw: "bob-pw", wantGroups: []string{"staff"}},
		{name: "wrong password", uid: "alice", pw: "bob-pw", wantCode: ldap.LDAPResultInvalidCredentials},
		{name: "unknown user", uid: "carol", pw: "x", wantCode: ldap.LDAPResultInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := conn.Bind(s.PeopleDN(tt.uid), tt.pw)
			if tt.wantCode != 0 {
				if !ldap.IsErrorWithCode(err, tt.wantCode) {
					t.Fatalf("bind: %v, want result code %d", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("bind: %v", err)
			}
			res, err := conn.Search(ldap.NewSearchRequest(s.GroupBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
				"(&(objectClass=groupOfNames)(member="+ldap.EscapeFilter(s.PeopleDN(tt.uid))+"))", []string{"cn"}, nil))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range res.Entries {
				got = append(got, e.GetAttributeValue("cn"))
			}
			slices.Sort(got) // a directory returns entries in no set order
			if !slices.Equal(got, tt.wantGroups) {
				t.Fatalf("groups %v, want %v", got, tt.wantGroups)
			}
		})
	}

	t.Run("passwords are not readable", func(t *testing.T) {
		if err := conn.Bind(s.PeopleDN("bob"), "bob-pw"); err != nil {
			t.Fatal(err)
		}
		res, err := conn.Search(ldap.NewSearchRequest(s.PeopleDN("alice"), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"userPassword", "uid"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("uid") != "alice" {
			t.Fatalf("entries %v, want alice's", res.Entries)
		}
		if pw := res.Entries[0].GetAttributeValue("userPassword"); pw != "" {
			t.Fatalf("bob read alice's password %q", pw)
		}
	})

	t.Run("stopped directory refuses connections", func(t *testing.T) {
		s.Stop()
		if conn, err := dial(t, s.URL, nil, false); err == nil {
			conn.Close()
			t.Fatal("dial after Stop succeeded")
		}
	})
}

// TestStartSlapdTLS reaches the directory over StartTLS and ldaps://,
// verifying its certificate against the harness's CA, and sees a client
// that does not trust that CA refused.
func TestStartSlapdTLS(t *testing.T) {
	s := StartSlapd(t, Directory{TLS: true, People: []Person{{UID: "alice", Password: "alice-pw"}}})
	if s.CA == nil || len(s.CAPEM) == 0 || s.LDAPSURL == "" {
		t.Fatalf("TLS directory without CA or ldaps URL: %+v", s)
	}
	trusting := &tls.Config{RootCAs: s.CA, ServerName: "127.0.0.1"}
	other := &tls.Config{RootCAs: pkitest.New(t).Trust.Pool(), ServerName: "127.0.0.1"}
	tests := []struct {
		name     string
		url      string
		startTLS bool
		tc       *tls.Config
		wantErr  bool
	}{
		{name: "StartTLS", url: s.URL, startTLS: true, tc: trusting},
		{name: "ldaps", url: s.LDAPSURL, tc: trusting},
		{name: "StartTLS, another CA", url: s.URL, startTLS: true, tc: other, wantErr: true},
		{name: "ldaps, another CA", url: s.LDAPSURL, tc: other, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := dial(t, tt.url, tt.tc, tt.startTLS)
			if tt.wantErr {
				if err == nil {
					err = conn.Bind(s.PeopleDN("alice"), "alice-pw") // ldaps handshakes lazily
					conn.Close()
				}
				if err == nil {
					t.Fatal("connected although the client does not trust the directory's CA")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.Bind(s.PeopleDN("alice"), "alice-pw"); err != nil {
				t.Fatal(err)
			}
			if st, ok := conn.TLSConnectionState(); !ok || !st.HandshakeComplete {
				t.Fatalf("connection is not TLS: %+v", st)
			}
		})
	}
}
