package credential_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// recorder is an authenticator that answers what it is told and records
// what reached it: the gate's own checks are what is under test here (the
// real authenticators are tested against slapd and Dex in plugins/authn).
type recorder struct {
	decision authn.Decision
	err      error
	got      []authn.Request
}

func (r *recorder) Needs(authn.Command) bool { return true }
func (r *recorder) Authenticate(_ context.Context, req authn.Request) (authn.Decision, error) {
	r.got = append(r.got, req)
	return r.decision, r.err
}

func TestGateChecks(t *testing.T) {
	key := newKey(t)
	now := time.Now()
	who := pki.Identity{Name: "lead@a", Org: "a", Role: pki.RoleMember, Kind: pki.KindAdmin}
	for _, tc := range []struct {
		name       string
		decision   authn.Decision
		err        error
		credential bool // attach a valid one
		misbound   bool // attach one for another job
		reached    bool // the authenticator is asked
		want       string
		role       pki.Role
	}{
		{"authenticated, the mapped role taken", authn.Decision{Authenticated: true, Role: "lead", Subject: "uid=lead"}, nil, true, false, true, "", "lead"},
		{"a custom role", authn.Decision{Authenticated: true, Role: "fl_leads"}, nil, true, false, true, "", "fl_leads"},
		{"denied, with the authenticator's reason", authn.Decision{Reason: "invalid credentials"}, nil, true, false, true, "denied: invalid credentials", ""},
		{"could not decide", authn.Decision{}, errors.New("directory down"), true, false, true, "could not decide: directory down", ""},
		{"authenticated without a role", authn.Decision{Authenticated: true}, nil, true, false, true, "no usable role", ""},
		{"a role no policy could name", authn.Decision{Authenticated: true, Role: "Lead\nAdmin"}, nil, true, false, true, "no usable role", ""},
		{"no credential: the authenticator decides", authn.Decision{Reason: "no credential attached"}, nil, false, false, true, "denied: no credential", ""},
		{"a credential for another job never reaches the authenticator", authn.Decision{Authenticated: true, Role: "lead"}, nil, false, true, false, "another signed job", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{decision: tc.decision, err: tc.err}
			g := credential.NewGate(rec, credential.NewOpener("site-1", key))
			g.Now = func() time.Time { return now }
			b := credential.Binding{Site: "site-1", Command: authn.CommandSubmit, Requester: who.Name, JobHash: []byte("job-a")}
			var sc *hearthv1.SealedCredential
			if tc.credential || tc.misbound {
				sealedFor := b
				if tc.misbound {
					sealedFor.JobHash = []byte("job-b")
				}
				var err error
				if sc, err = credential.Seal(key.PublicKey(), secret, sealedFor, adminKey, now, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			as, err := g.Check(context.Background(), who, adminPub, sc, b, "job-0123456789ab", []byte("manifest"))
			if reached := len(rec.got) > 0; reached != tc.reached {
				t.Fatalf("authenticator reached: %v, want %v", reached, tc.reached)
			}
			if tc.reached {
				r := rec.got[0]
				if r.Requester.Name != who.Name || r.JobID != "job-0123456789ab" || string(r.Manifest) != "manifest" || (r.Credential != nil) != tc.credential {
					t.Fatalf("the authenticator was asked %+v", r)
				}
			}
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Check = %v, %v; want an error containing %q", as, err, tc.want)
				}
				return
			}
			if err != nil || as.Who.Role != tc.role || as.Who.Name != who.Name {
				t.Fatalf("Check = %+v, %v; want %s with role %s", as, err, who.Name, tc.role)
			}
		})
	}
}

// blocking is an authenticator whose decisions wait until release closes.
type blocking struct {
	started chan struct{}
	release chan struct{}
}

func (b *blocking) Needs(authn.Command) bool { return true }
func (b *blocking) Authenticate(ctx context.Context, _ authn.Request) (authn.Decision, error) {
	b.started <- struct{}{}
	<-b.release
	return authn.Decision{Reason: "no"}, nil
}

// TestGateBoundsAuthenticationsAtOnce: a flood of commands waits for one of
// MaxConcurrent slots, and one whose deadline passes first could not be
// decided, without starting another plugin call.
func TestGateBoundsAuthenticationsAtOnce(t *testing.T) {
	b := &blocking{started: make(chan struct{}, credential.MaxConcurrent+1), release: make(chan struct{})}
	g := credential.NewGate(b, credential.NewOpener("site-1", newKey(t)))
	who := pki.Identity{Name: "lead@a", Org: "a", Role: pki.RoleLead, Kind: pki.KindAdmin}
	bind := credential.Binding{Site: "site-1", Command: authn.CommandSubmit, Requester: who.Name, JobHash: []byte("job")}
	done := make(chan error, credential.MaxConcurrent)
	for range credential.MaxConcurrent {
		go func() {
			_, err := g.Check(context.Background(), who, adminPub, nil, bind, "", nil)
			done <- err
		}()
	}
	for range credential.MaxConcurrent {
		<-b.started
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := g.Check(ctx, who, adminPub, nil, bind, "", nil)
	if err == nil || !strings.Contains(err.Error(), "authentications already running") {
		t.Fatalf("a check beyond the bound = %v, want could not decide", err)
	}
	if len(b.started) != 0 {
		t.Fatal("the check beyond the bound reached the authenticator")
	}
	close(b.release)
	for range credential.MaxConcurrent {
		if err := <-done; err == nil {
			t.Fatal("a blocked check was authenticated")
		}
	}
}
