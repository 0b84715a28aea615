package siteanswer_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/siteanswer"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func signer(t *testing.T, p *pkitest.Participant) *envelope.Signer {
	t.Helper()
	s, err := envelope.NewSigner(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCommandAnswersAreTheSitesAndSealed(t *testing.T) {
	p := pkitest.New(t)
	site1, site2 := signer(t, p.Issue(t, "site-1", "a", pki.KindSite)), signer(t, p.Issue(t, "site-2", "b", pki.KindSite))
	reply, _ := ecdh.X25519().GenerateKey(rand.Reader)
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	hash := []byte("hash of the signed command")
	now := time.Now()
	res := &hearthv1.SiteCommandResult{Site: "site-1", Command: "site.logs", Lines: []string{"a", "b"}}
	sealed, err := siteanswer.SealCommandAnswer(res, site1, hash, reply.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got, err := siteanswer.OpenCommandAnswer(sealed, reply, p.Trust, "site-1", hash, now)
	if err != nil || !proto.Equal(got, res) {
		t.Fatalf("OpenCommandAnswer = %v, %v", got, err)
	}
	byOther, err := siteanswer.SealCommandAnswer(&hearthv1.SiteCommandResult{Site: "site-1"}, site2, hash, reply.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sa   *hearthv1.SealedSiteAnswer
		key  *ecdh.PrivateKey
		hash []byte
		want string
	}{
		{"to another command", sealed, reply, []byte("another command"), "does not verify"},
		{"read by another than the console", sealed, other, hash, "does not open"},
		{"signed by another site", byOther, reply, hash, "signed by site-2"},
		{"nothing", &hearthv1.SealedSiteAnswer{}, reply, hash, "nothing sealed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := siteanswer.OpenCommandAnswer(tc.sa, tc.key, p.Trust, "site-1", tc.hash, now); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenCommandAnswer = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPreflightAnswersCannotBeForged(t *testing.T) {
	p := pkitest.New(t)
	site1 := signer(t, p.Issue(t, "site-1", "a", pki.KindSite))
	hash := []byte("job hash")
	now := time.Now()
	signed, err := siteanswer.SignPreflight(&hearthv1.PreflightAnswer{Site: "site-1", Reason: "no data"}, site1, hash)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := siteanswer.VerifyPreflight(signed, p.Trust, hash, now); err != nil || a.Accepted || a.Site != "site-1" {
		t.Fatalf("VerifyPreflight = %v, %v", a, err)
	}
	// The server turns the refusal into an acceptance.
	forged := proto.Clone(signed).(*hearthv1.SignedPreflightAnswer)
	b, _ := proto.Marshal(&hearthv1.PreflightAnswer{Site: "site-1", Accepted: true, Reason: "would join"})
	forged.Answer = b
	if _, err := siteanswer.VerifyPreflight(forged, p.Trust, hash, now); err == nil {
		t.Fatal("a forged acceptance verified")
	}
	if _, err := siteanswer.VerifyPreflight(signed, p.Trust, []byte("another job"), now); err == nil {
		t.Fatal("an answer for another job verified")
	}
}
