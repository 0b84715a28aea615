package siteadmin_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/siteadmin"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestVerifyRefuses(t *testing.T) {
	p := pkitest.New(t)
	admin := p.Issue(t, "admin@org", "org", pki.KindAdmin)
	site := p.Issue(t, "site-2", "org", pki.KindSite)
	now := time.Now()
	started := now.Add(-time.Minute)
	reply, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(t *testing.T, at time.Time, signer *pkitest.Participant) *hearthv1.SignedSiteCommand {
		sc, err := siteadmin.Sign("site-1", authn.CommandSiteStatus, 0, reply.PublicKey(), signer.Cert, signer.Key, at, siteadmin.MaxLifetime)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	good := sign(t, now, admin)
	if v, err := siteadmin.Verify(good, p.Trust, "site-1", now, started); err != nil || v.Admin.Name != "admin@org" {
		t.Fatalf("Verify(good) = %+v, %v", v, err)
	}
	for _, tc := range []struct {
		name string
		sc   func(t *testing.T) *hearthv1.SignedSiteCommand
		site string
		at   time.Time
		want string
	}{
		{"for another site", func(*testing.T) *hearthv1.SignedSiteCommand { return good }, "site-2", now, `a command for "site-1"`},
		{"altered after signing", func(*testing.T) *hearthv1.SignedSiteCommand {
			sc := proto.Clone(good).(*hearthv1.SignedSiteCommand)
			sc.Command[0] ^= 1
			return sc
		}, "site-1", now, "does not match"},
		{"signed by a site", func(t *testing.T) *hearthv1.SignedSiteCommand { return sign(t, now, site) }, "site-1", now, "admin certificate"},
		{"expired", func(*testing.T) *hearthv1.SignedSiteCommand { return good }, "site-1", now.Add(siteadmin.MaxLifetime + time.Second), "expired"},
		{"issued before the site started (a replay after a restart)", func(t *testing.T) *hearthv1.SignedSiteCommand {
			return sign(t, started.Add(-time.Second), admin)
		}, "site-1", now, "not since this site started"},
		{"oversized", func(*testing.T) *hearthv1.SignedSiteCommand {
			sc := proto.Clone(good).(*hearthv1.SignedSiteCommand)
			sc.Command = make([]byte, 2<<10)
			return sc
		}, "site-1", now, "bytes, more than"},
		{"no signature", func(*testing.T) *hearthv1.SignedSiteCommand {
			sc := proto.Clone(good).(*hearthv1.SignedSiteCommand)
			sc.Signature = nil
			return sc
		}, "site-1", now, "needs the command, its signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := siteadmin.Verify(tc.sc(t), p.Trust, tc.site, tc.at, started); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := siteadmin.Sign("site-1", "site.shell", 0, reply.PublicKey(), admin.Cert, admin.Key, now, time.Minute); err == nil {
		t.Error("signed a command that is not a site command")
	}
}
