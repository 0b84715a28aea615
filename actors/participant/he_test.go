package participant

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/hejob"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/dataset"
	"github.com/hearthfl/hearth/actors/learning/he"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

const heJobID = "job-0000000000ee"

// heSite is one site of an in-process HE job: its participant, its joined
// job and its signer (real certificates from one project).
type heSite struct {
	p      *Participant
	j      *joined
	signer *envelope.Signer
}

// heFixture is a job under homomorphic encryption among sites, as far as
// the server relays it; the test plays the server.
type heFixture struct {
	sites   []*heSite
	parties []string
	keys    []*hearthv1.SealingKey
	setup   *hearthv1.HESetup
	trust   *pki.Trust
	project *pkitest.Project
}

func newHEFixture(t *testing.T, n, threshold int) *heFixture {
	t.Helper()
	proj := pkitest.New(t)
	f := &heFixture{trust: proj.Trust, project: proj}
	params, err := he.NewParams()
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("0123456789abcdef")
	for i := range n {
		f.parties = append(f.parties, fmt.Sprintf("site-%d", i+1))
	}
	for i, name := range f.parties {
		pp := proj.Issue(t, name, "org", pki.KindSite)
		signer, err := envelope.NewSigner(pp.Cert, pp.Key)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		binding, err := sealing.BindKey(signer, heJobID, sk.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		ledger, err := OpenLedger(filepath.Join(t.TempDir(), "ledger.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ledger.Close() })
		p := &Participant{cfg: Config{Self: signer.Identity(), Trust: proj.Trust, Signer: signer, Now: time.Now, Log: slog.New(slog.DiscardHandler), Ledger: ledger}}
		j := &joined{id: heJobID, nonce: hex.EncodeToString(nonce), manifest: &job.Manifest{Rounds: 5, Sites: slices.Clone(f.parties), MinSites: 2, HE: &job.HESpec{Threshold: threshold}},
			he: &heJob{nonce: nonce, key: binding, params: params, samples: int64(100 * (i + 1))}}
		f.sites = append(f.sites, &heSite{p: p, j: j, signer: signer})
		f.keys = append(f.keys, binding)
	}
	f.setup = &hearthv1.HESetup{JobId: heJobID, Parties: f.parties, Threshold: int32(threshold), Keys: f.keys, Salt: []byte("0123456789abcdef")}
	return f
}

// key runs the setup to the end, every message as the server relays it,
// and returns the statements it relayed.
func (f *heFixture) key(t *testing.T) (commitments, shares []*hearthv1.HESigned) {
	t.Helper()
	for _, s := range f.sites {
		if err := s.p.takeSetup(s.j, f.setup); err != nil {
			t.Fatalf("%s: setup: %v", s.p.cfg.Self.Name, err)
		}
		st, err := hejob.Sign(s.signer, heJobID, hejob.KindCommitment, 0, s.j.he.setupID(), hejob.CommitmentPayload(s.j.he.party.Commitment(), s.j.he.samples))
		if err != nil {
			t.Fatal(err)
		}
		commitments = append(commitments, st)
	}
	for _, s := range f.sites {
		raw, err := s.p.takeCommitments(s.j, &hearthv1.HEKeyExchange{JobId: heJobID, Commitments: commitments})
		if err != nil {
			t.Fatalf("%s: commitments: %v", s.p.cfg.Self.Name, err)
		}
		st, err := hejob.Sign(s.signer, heJobID, hejob.KindKeyShare, 0, s.j.he.setupID(), raw)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, st)
		for _, ts := range s.j.he.party.ThresholdShares() {
			raw, err := ts.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			to := f.sites[ts.To()]
			if err := to.p.takeThresholdShare(to.j, s.p.cfg.Self.Name, true, &hearthv1.HEThresholdShare{JobId: heJobID, Share: raw}); err != nil {
				t.Fatalf("%s: threshold share from %s: %v", to.p.cfg.Self.Name, s.p.cfg.Self.Name, err)
			}
		}
	}
	for _, s := range f.sites {
		if err := s.p.takeKeys(s.j, &hearthv1.HEKeys{JobId: heJobID, Shares: shares}); err != nil {
			t.Fatalf("%s: keys: %v", s.p.cfg.Self.Name, err)
		}
	}
	return commitments, shares
}

// round runs a round's commit and reveal at every site, as the server
// relays them: the commitments, in name order, and the updates revealed
// against them.
func (f *heFixture) round(t *testing.T, round int64, models []*model.Model) (commits, updates []*hearthv1.HESigned) {
	t.Helper()
	for i, s := range f.sites {
		st, err := s.p.encryptUpdate(s.j, round, models[i])
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, st)
	}
	for _, s := range f.sites {
		st, err := s.p.reveal(s.j, &hearthv1.HEReveal{JobId: heJobID, Round: round, Commitments: commits})
		if err != nil {
			t.Fatalf("%s: reveal: %v", s.p.cfg.Self.Name, err)
		}
		updates = append(updates, st)
	}
	return commits, updates
}

func heModel(v ...float32) *model.Model {
	return &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{len(v)}, Data: v}}}
}

// TestHEJobDecryptsOnlyTheWeightedSum: three sites make a key (no one holds
// its secret), encrypt their updates at the weights their signed
// commitments give them, and two of them decrypt the sum, which is the
// plaintext FedAvg mean within CKKS's precision.
func TestHEJobDecryptsOnlyTheWeightedSum(t *testing.T) {
	f := newHEFixture(t, 3, 2)
	f.key(t)
	id := f.sites[0].j.he.pk.ID()
	for _, s := range f.sites[1:] {
		if s.j.he.pk.ID() != id {
			t.Fatalf("%s made key %s, site-1 %s", s.p.cfg.Self.Name, s.j.he.pk.ID(), id)
		}
	}
	updates := []*model.Model{heModel(1, -2, 0.5), heModel(3, 0, -1), heModel(-0.25, 4, 2)}
	commits, signed := f.round(t, 1, updates)
	want := make([]float64, 3)
	total := 0.0
	for i, s := range f.sites {
		w := float64(100 * (i + 1)) // under the share cap: weights as committed
		total += w
		for k, v := range updates[i].Tensors[0].Data {
			want[k] += w * float64(v)
		}
		if got := s.j.he.weight; math.Abs(got-w/600) > 1e-12 {
			t.Fatalf("%s: weight %v, want %v", s.p.cfg.Self.Name, got, w/600)
		}
	}
	ask := &hearthv1.HEDecrypt{JobId: heJobID, Round: 1, Updates: signed, Active: []int32{0, 2}, Commitments: commits}
	var dshares []*he.DecryptionShare
	var cts []*he.Ciphertext
	for _, i := range []int{0, 2} {
		raw, contributors, err := f.sites[i].p.decryptShare(f.sites[i].j, ask)
		if err != nil {
			t.Fatal(err)
		}
		if len(contributors) != 3 {
			t.Fatalf("contributors %v", contributors)
		}
		ds := new(he.DecryptionShare)
		if err := ds.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		dshares = append(dshares, ds)
	}
	for _, st := range signed {
		u, err := hejob.ParseUpdate(st.Payload)
		if err != nil {
			t.Fatal(err)
		}
		cts = append(cts, u.Ciphertext)
	}
	sum, err := he.Sum(cts...)
	if err != nil {
		t.Fatal(err)
	}
	values, err := he.Combine(f.sites[0].j.he.params, f.sites[0].j.he.pk, sum, dshares)
	if err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if got := values[k]; math.Abs(got-want[k]/total) > 1e-4 {
			t.Errorf("value %d: decrypted mean %v, plaintext FedAvg %v", k, got, want[k]/total)
		}
	}
}

// TestHESiteRefusesACompromisedServer: what a server (or a relay) that
// wants one site's update, or a key it can open, may send a site, and the
// site's refusal of each, with its reason.
func TestHESiteRefusesACompromisedServer(t *testing.T) {
	f := newHEFixture(t, 3, 2)
	f.key(t)
	commits, signed := f.round(t, 1, []*model.Model{heModel(0, 1, 2), heModel(1, 1, 2), heModel(2, 1, 2)})
	setup := f.sites[0].j.he.setupID()
	relabelled := proto.Clone(signed[1]).(*hearthv1.HESigned)
	relabelled.Site = "site-1" // site-2's update passed off as site-1's
	resigned, err := hejob.Sign(f.sites[2].signer, heJobID, hejob.KindUpdate, 1, setup, signed[1].Payload)
	if err != nil {
		t.Fatal(err)
	}
	resigned.Site = "site-2" // site-3's signature on site-2's update
	// site-2, colluding, reveals site-3's ciphertext (or its negation) as
	// its own, against the round's set, validly signed.
	u3, err := hejob.ParseUpdate(signed[2].Payload)
	if err != nil {
		t.Fatal(err)
	}
	ct3, _ := u3.Ciphertext.MarshalBinary()
	swapped, err := hejob.Sign(f.sites[1].signer, heJobID, hejob.KindUpdate, 1, setup, hejob.UpdatePayload(f.sites[1].j.he.weight, hejob.CommitmentsDigest(commits), ct3))
	if err != nil {
		t.Fatal(err)
	}
	site1 := f.sites[0]
	ask := func(commits, updates []*hearthv1.HESigned, active ...int32) *hearthv1.HEDecrypt {
		return &hearthv1.HEDecrypt{JobId: heJobID, Round: 1, Updates: updates, Active: active, Commitments: commits}
	}
	for _, tc := range []struct {
		name string
		ask  *hearthv1.HEDecrypt
		want string
	}{
		{"one site's update alone", ask(commits[1:2], signed[1:2], 0, 1), "1 update commitments"},
		{"an update relabelled as another site's", ask(commits, []*hearthv1.HESigned{relabelled, signed[1], signed[2]}, 0, 1), "does not verify"},
		{"an update signed by another site", ask(commits, []*hearthv1.HESigned{signed[0], resigned, signed[2]}, 0, 1), "does not verify"},
		{"a ciphertext other than the one committed to", ask(commits, []*hearthv1.HESigned{signed[0], swapped, signed[2]}, 0, 1), "other than the one it committed to"},
		{"updates revealed against another set", ask(commits[:2], signed[:2], 0, 1), "revealed against another set"},
		{"an update without its commitment", ask(commits[:2], []*hearthv1.HESigned{signed[2], signed[0]}, 0, 1), "without its commitment"},
		{"the same site twice", ask(commits, []*hearthv1.HESigned{signed[1], signed[1], signed[2]}, 0, 1), "twice"},
		{"an active set without this site", ask(commits, signed, 1, 2), "not in active set"},
	} {
		t.Run("decrypt: "+tc.name, func(t *testing.T) {
			if _, _, err := site1.p.decryptShare(site1.j, tc.ask); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decryptShare = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("decrypt: a round outside the job", func(t *testing.T) {
		m := ask(commits, signed, 0, 1)
		m.Round = 9
		if _, _, err := site1.p.decryptShare(site1.j, m); err == nil || !strings.Contains(err.Error(), "not in the job's 1..5") {
			t.Fatalf("decryptShare = %v", err)
		}
	})
	t.Run("decrypt: a second sum in the same round", func(t *testing.T) {
		if _, _, err := site1.p.decryptShare(site1.j, ask(commits, signed, 0, 1)); err != nil {
			t.Fatal(err)
		}
		// All three, then two of them (their difference is site-3's
		// update): the pair will not reveal against a second set, and a
		// party decrypts one sum a round.
		for _, s := range f.sites[:2] {
			if _, err := s.p.reveal(s.j, &hearthv1.HEReveal{JobId: heJobID, Round: 1, Commitments: commits[:2]}); err == nil || !strings.Contains(err.Error(), "against one only") {
				t.Fatalf("%s revealed against a second set: %v", s.p.cfg.Self.Name, err)
			}
		}
		// Made up by hand, with the reveals of the whole set:
		_, _, err := site1.p.decryptShare(site1.j, ask(commits[:2], signed[:2], 0, 1))
		if err == nil || !strings.Contains(err.Error(), "revealed against another set") {
			t.Fatalf("decryptShare = %v, want a refusal", err)
		}
	})
	t.Run("decrypt: a colluder's update at a weight of its choosing", func(t *testing.T) {
		// In round 4 site-2 commits and reveals at weight 1, validly
		// signed: the mean would be nearly its update alone.
		var set []*hearthv1.HESigned
		for i, s := range f.sites {
			st, err := s.p.encryptUpdate(s.j, 4, heModel(float32(i), 0, 1))
			if err != nil {
				t.Fatal(err)
			}
			set = append(set, st)
		}
		f.sites[1].j.he.mu.Lock()
		ct2 := f.sites[1].j.he.pending.ct
		f.sites[1].j.he.mu.Unlock()
		set[1], _ = hejob.Sign(f.sites[1].signer, heJobID, hejob.KindUpdateCommitment, 4, setup, hejob.UpdateCommitmentPayload(1, ct2))
		heavy, _ := hejob.Sign(f.sites[1].signer, heJobID, hejob.KindUpdate, 4, setup, hejob.UpdatePayload(1, hejob.CommitmentsDigest(set), ct2))
		var reveals []*hearthv1.HESigned
		for _, i := range []int{0, 2} {
			st, err := f.sites[i].p.reveal(f.sites[i].j, &hearthv1.HEReveal{JobId: heJobID, Round: 4, Commitments: set})
			if err != nil {
				t.Fatal(err)
			}
			reveals = append(reveals, st)
		}
		m := &hearthv1.HEDecrypt{JobId: heJobID, Round: 4, Updates: []*hearthv1.HESigned{reveals[0], heavy, reveals[1]}, Active: []int32{0, 1}, Commitments: set}
		if _, _, err := site1.p.decryptShare(site1.j, m); err == nil || !strings.Contains(err.Error(), "encrypted at weight 1") {
			t.Fatalf("decryptShare = %v, want a refusal of the weight", err)
		}
	})
	t.Run("reveal: only after committing, only its own, against one set only", func(t *testing.T) {
		var c2 []*hearthv1.HESigned
		for i, s := range f.sites {
			st, err := s.p.encryptUpdate(s.j, 2, heModel(float32(i), 3, 3))
			if err != nil {
				t.Fatal(err)
			}
			c2 = append(c2, st)
		}
		reveal := func(round int64, commits []*hearthv1.HESigned) error {
			_, err := site1.p.reveal(site1.j, &hearthv1.HEReveal{JobId: heJobID, Round: round, Commitments: commits})
			return err
		}
		changed, _ := hejob.Sign(site1.signer, heJobID, hejob.KindUpdateCommitment, 2, setup, append(slices.Clone(c2[0].Payload[:8]), make([]byte, 32)...))
		for _, tc := range []struct {
			name    string
			round   int64
			commits []*hearthv1.HESigned
			want    string
		}{
			{"a round it holds no update of", 1, c2, "no encrypted update of round 1"},
			{"without its own commitment", 2, c2[1:], "own commitment is not among them"},
			{"with its own commitment changed", 2, []*hearthv1.HESigned{changed, c2[1], c2[2]}, "own commitment is not among them"},
			{"out of order", 2, []*hearthv1.HESigned{c2[1], c2[0], c2[2]}, "out of order"},
			{"fewer than the threshold", 2, c2[:1], "want 2 to 3"},
		} {
			if err := reveal(tc.round, tc.commits); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
			}
		}
		if err := reveal(2, c2); err != nil {
			t.Fatal(err)
		}
		if err := reveal(2, c2); err != nil {
			t.Fatalf("the same set again: %v", err)
		}
		// site-3's commitment replaced after site-1 revealed (by one made
		// from site-1's ciphertext, say): the same names, another set.
		again, _ := hejob.Sign(f.sites[2].signer, heJobID, hejob.KindUpdateCommitment, 2, setup, append(slices.Clone(c2[2].Payload[:8]), make([]byte, 32)...))
		if err := reveal(2, []*hearthv1.HESigned{c2[0], c2[1], again}); err == nil || !strings.Contains(err.Error(), "against one only") {
			t.Fatalf("a reveal against a substituted commitment: %v", err)
		}
		if err := reveal(2, c2[:2]); err == nil || !strings.Contains(err.Error(), "against one only") {
			t.Fatalf("a reveal against a smaller set: %v", err)
		}
	})

	// The setup: a fresh fixture per case, since a site keys once.
	other, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	outsider := f.project.Issue(t, "site-9", "org", pki.KindSite)
	outsiderSigner, err := envelope.NewSigner(outsider.Cert, outsider.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(g *heFixture, m *hearthv1.HESetup)
		want   string
	}{
		{"a threshold below the job's", func(_ *heFixture, m *hearthv1.HESetup) { m.Threshold = 1 }, "threshold 1; the signed job gives 2"},
		{"a site outside the signed job", func(_ *heFixture, m *hearthv1.HESetup) {
			k, _ := sealing.BindKey(outsiderSigner, heJobID, other.PublicKey())
			m.Parties, m.Keys = append(slices.Clone(m.Parties), "site-9"), append(slices.Clone(m.Keys), k)
		}, "not one of the job's sites"},
		{"parties out of order", func(_ *heFixture, m *hearthv1.HESetup) {
			m.Parties = []string{"site-2", "site-1", "site-3"}
			m.Keys = []*hearthv1.SealingKey{m.Keys[1], m.Keys[0], m.Keys[2]}
		}, "increasing name order"},
		{"another party's key swapped for the server's", func(g *heFixture, m *hearthv1.HESetup) {
			k := proto.Clone(m.Keys[1]).(*hearthv1.SealingKey)
			k.PublicKey = other.PublicKey().Bytes()
			m.Keys = []*hearthv1.SealingKey{m.Keys[0], k, m.Keys[2]}
		}, "does not verify"},
		{"this site's own key replaced", func(g *heFixture, m *hearthv1.HESetup) {
			k, _ := sealing.BindKey(g.sites[0].signer, heJobID, other.PublicKey())
			m.Keys = []*hearthv1.SealingKey{k, m.Keys[1], m.Keys[2]}
		}, "not its own"},
		{"fewer parties than min_sites", func(g *heFixture, m *hearthv1.HESetup) {
			g.sites[0].j.manifest.MinSites = 3
			m.Parties, m.Keys, m.Threshold = m.Parties[:2], m.Keys[:2], 2
		}, "fewer than the job's min_sites"},
	} {
		t.Run("setup: "+tc.name, func(t *testing.T) {
			g := newHEFixture(t, 3, 2)
			m := proto.Clone(g.setup).(*hearthv1.HESetup)
			tc.change(g, m)
			if err := g.sites[0].p.takeSetup(g.sites[0].j, m); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("takeSetup = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("setup: a second one once keyed", func(t *testing.T) {
		if err := site1.p.takeSetup(site1.j, f.setup); err == nil || !strings.Contains(err.Error(), "key is made") {
			t.Fatalf("takeSetup = %v", err)
		}
	})

	// The commitments and key shares: the server may not make up or change
	// any party's.
	g := newHEFixture(t, 3, 2)
	var good []*hearthv1.HESigned
	for _, s := range g.sites {
		if err := s.p.takeSetup(s.j, g.setup); err != nil {
			t.Fatal(err)
		}
		st, err := hejob.Sign(s.signer, heJobID, hejob.KindCommitment, 0, s.j.he.setupID(), hejob.CommitmentPayload(s.j.he.party.Commitment(), s.j.he.samples))
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, st)
	}
	forged := proto.Clone(good[1]).(*hearthv1.HESigned)
	forged.Payload = hejob.CommitmentPayload(he.Commitment{1}, 200) // the server's choice of site-2's share
	inflated, _ := hejob.Sign(g.sites[1].signer, heJobID, hejob.KindCommitment, 0, g.sites[1].j.he.setupID(), hejob.CommitmentPayload(g.sites[1].j.he.party.Commitment(), 1<<51))
	ownChanged, _ := hejob.Sign(g.sites[0].signer, heJobID, hejob.KindCommitment, 0, g.sites[0].j.he.setupID(), hejob.CommitmentPayload(g.sites[0].j.he.party.Commitment(), 5))
	oldSetup := proto.Clone(good[2]).(*hearthv1.HESigned)
	oldSetup.Setup = make([]byte, 16)
	for _, tc := range []struct {
		name string
		list []*hearthv1.HESigned
		want string
	}{
		{"a commitment the server made", []*hearthv1.HESigned{good[0], forged, good[2]}, "does not verify"},
		{"an implausible sample count", []*hearthv1.HESigned{good[0], inflated, good[2]}, "training samples"},
		{"this site's own commitment at another count", []*hearthv1.HESigned{ownChanged, good[1], good[2]}, "not the one it made"},
		{"a commitment of another setup", []*hearthv1.HESigned{good[0], good[1], oldSetup}, "another setup"},
		{"one commitment short", good[:2], "2 commitments for 3 parties"},
	} {
		t.Run("commitments: "+tc.name, func(t *testing.T) {
			if _, err := g.sites[0].p.takeCommitments(g.sites[0].j, &hearthv1.HEKeyExchange{JobId: heJobID, Commitments: tc.list}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("takeCommitments = %v, want %q", err, tc.want)
			}
		})
	}

	// Key shares: each must be its party's, matching its commitment.
	h := newHEFixture(t, 3, 2)
	var hc []*hearthv1.HESigned
	for _, s := range h.sites {
		if err := s.p.takeSetup(s.j, h.setup); err != nil {
			t.Fatal(err)
		}
		st, _ := hejob.Sign(s.signer, heJobID, hejob.KindCommitment, 0, s.j.he.setupID(), hejob.CommitmentPayload(s.j.he.party.Commitment(), s.j.he.samples))
		hc = append(hc, st)
	}
	var hs []*hearthv1.HESigned
	for _, s := range h.sites {
		raw, err := s.p.takeCommitments(s.j, &hearthv1.HEKeyExchange{JobId: heJobID, Commitments: hc})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := hejob.Sign(s.signer, heJobID, hejob.KindKeyShare, 0, s.j.he.setupID(), raw)
		hs = append(hs, st)
	}
	// site-3 signs, as its own, another share of the same setup (made from
	// another secret, in a second run of it): a share chosen after the
	// commitments, which the rogue-key attack needs.
	_, otherShares := newHEFixture(t, 3, 2).key(t)
	rogue, _ := hejob.Sign(h.sites[2].signer, heJobID, hejob.KindKeyShare, 0, h.sites[2].j.he.setupID(), otherShares[2].Payload)
	t.Run("keys: a share that does not match its commitment", func(t *testing.T) {
		err := h.sites[0].p.takeKeys(h.sites[0].j, &hearthv1.HEKeys{JobId: heJobID, Shares: []*hearthv1.HESigned{hs[0], hs[1], rogue}})
		if err == nil || !strings.Contains(err.Error(), "commitment") {
			t.Fatalf("takeKeys = %v, want a refusal naming the commitment", err)
		}
	})
	t.Run("keys: before the threshold shares came", func(t *testing.T) {
		err := h.sites[0].p.takeKeys(h.sites[0].j, &hearthv1.HEKeys{JobId: heJobID, Shares: hs})
		if err == nil || !strings.Contains(err.Error(), "threshold shares") {
			t.Fatalf("takeKeys = %v, want a refusal for missing threshold shares", err)
		}
	})
	t.Run("threshold share: unsealed, or from a site outside the setup, or passed off", func(t *testing.T) {
		ts := h.sites[1].j.he.party.ThresholdShares()[0] // site-2's for site-1
		raw, _ := ts.MarshalBinary()
		m := &hearthv1.HEThresholdShare{JobId: heJobID, Share: raw}
		recv := h.sites[0]
		for _, c := range []struct {
			sender string
			sealed bool
			want   string
		}{
			{"site-2", false, "sealed"},
			{"site-9", true, "not another party"},
			{"site-1", true, "not another party"},
			{"site-3", true, "the share of party 1, sent by party 2"},
		} {
			if err := recv.p.takeThresholdShare(recv.j, c.sender, c.sealed, m); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("from %s (sealed %v): %v, want %q", c.sender, c.sealed, err, c.want)
			}
		}
		if err := recv.p.takeThresholdShare(recv.j, "site-2", true, m); err != nil {
			t.Fatal(err)
		}
		if err := recv.p.takeThresholdShare(recv.j, "site-2", true, m); err == nil || !strings.Contains(err.Error(), "second threshold share") {
			t.Fatalf("the same share again: %v", err)
		}
	})
}

// TestHESiteNeverTrainsTwiceFromOneGlobalModel: once an encrypted update
// left the site in a round from a global model, the site trains in that
// round, or from that model (as received or as its filters made it), no
// more, under another key setup and after a restart too (the ledger): two
// sums of nearly the same updates, one without a site, would give that
// site's update away.
func TestHESiteNeverTrainsTwiceFromOneGlobalModel(t *testing.T) {
	f := newHEFixture(t, 3, 2)
	s := f.sites[0]
	if _, err := s.p.checkHETraining(s.j, 1, heModel(1, 2, 3), heModel(1, 2, 3)); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("before the key: %v", err)
	}
	f.key(t)
	received, filtered := heModel(1, 2, 3), heModel(1, 2, 2.5)
	keys, err := s.p.checkHETraining(s.j, 1, received, filtered)
	if err != nil || len(keys) != 3 {
		t.Fatalf("a fresh round and model: %v, %v", keys, err)
	}
	for _, k := range keys {
		if err := s.p.cfg.Ledger.RecordRelease(s.j.nonce, heJobID, k); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name               string
		round              int64
		received, filtered *model.Model
	}{
		{"the same round from another model", 1, heModel(9, 9, 9), heModel(9, 9, 9)},
		{"another round from the same model", 2, heModel(1, 2, 3), heModel(1, 2, 3)},
		{"another round from another model its filters make the same", 2, heModel(1, 2, 4), heModel(1, 2, 2.5)},
	} {
		if _, err := s.p.checkHETraining(s.j, tc.round, tc.received, tc.filtered); err == nil || !strings.Contains(err.Error(), "released before") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := s.p.checkHETraining(s.j, 2, heModel(1, 2, 4), heModel(1, 2, 4)); err != nil {
		t.Fatalf("another round from another model: %v", err)
	}
	path := s.p.cfg.Ledger.path
	s.p.cfg.Ledger.Close()
	reopened, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	for _, k := range keys {
		if !reopened.ReleasedFrom(s.j.nonce, k) {
			t.Fatalf("a restart forgot the release %s", k)
		}
	}
}

// TestHESiteChecksTheGlobalModel: the global model a site trains from is
// the one the signed job makes (round 1), then the mean of the previous
// round's decrypted sum, which the site recomputes from the round's signed
// updates and t decryption shares; any other model, or none of that proof,
// is refused, so the server cannot pick what the sites train from.
func TestHESiteChecksTheGlobalModel(t *testing.T) {
	f := newHEFixture(t, 3, 2)
	f.key(t)
	s := f.sites[0]
	s.j.spec = trainer.Defaults("wdbc", "logreg")
	s.j.train = &dataset.Set{Features: 2, Classes: 2}
	init, err := trainer.Init(s.j.spec, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.p.checkHEGlobal(s.j, 1, init, nil); err != nil {
		t.Fatalf("round 1 from the job's own initial model: %v", err)
	}
	other := init.Clone()
	other.Tensors[0].Data[0] += 0.5
	if err := s.p.checkHEGlobal(s.j, 1, other, nil); err == nil || !strings.Contains(err.Error(), "not the one the signed job makes") {
		t.Fatalf("round 1 from another model: %v", err)
	}

	commits, updates := f.round(t, 1, []*model.Model{heModel(1, 2, 3), heModel(3, 0, -1), heModel(0, 0, 1)})
	ask := &hearthv1.HEDecrypt{JobId: heJobID, Round: 1, Updates: updates, Active: []int32{0, 2}, Commitments: commits}
	proof := &hearthv1.HEProof{Round: 1, Commitments: commits, Updates: updates, Active: []int32{0, 2}}
	for _, i := range []int{0, 2} {
		raw, _, err := f.sites[i].p.decryptShare(f.sites[i].j, ask)
		if err != nil {
			t.Fatal(err)
		}
		st, err := hejob.Sign(f.sites[i].signer, heJobID, hejob.KindDecryptionShare, 1, s.j.he.setupID(), raw)
		if err != nil {
			t.Fatal(err)
		}
		proof.Shares = append(proof.Shares, st)
	}
	// The mean as the server makes it: the decrypted sum over the weights
	// (100, 200, 300 of 600: within CKKS's error of the plaintext mean).
	var cts []*he.Ciphertext
	var shares []*he.DecryptionShare
	weight := 0.0
	for _, st := range updates {
		u, _ := hejob.ParseUpdate(st.Payload)
		cts, weight = append(cts, u.Ciphertext), weight+u.Weight
	}
	for _, st := range proof.Shares {
		ds := new(he.DecryptionShare)
		if err := ds.UnmarshalBinary(st.Payload); err != nil {
			t.Fatal(err)
		}
		shares = append(shares, ds)
	}
	sum, _ := he.Sum(cts...)
	values, err := he.Combine(s.j.he.params, s.j.he.pk, sum, shares)
	if err != nil {
		t.Fatal(err)
	}
	mean := heModel(float32(values[0]/weight), float32(values[1]/weight), float32(values[2]/weight))
	if plain := float32((1*100 + 3*200 + 0*300) / 600.0); math.Abs(float64(mean.Tensors[0].Data[0]-plain)) > 1e-4 {
		t.Fatalf("decrypted mean %v, plaintext %v", mean.Tensors[0].Data[0], plain)
	}
	if err := s.p.checkHEGlobal(s.j, 2, mean, proof); err != nil {
		t.Fatalf("round 2 from the decrypted mean: %v", err)
	}
	nudged := mean.Clone()
	nudged.Tensors[0].Data[1] += 1e-3 // nearly the mean: a release nearly the same as another
	twice := proto.Clone(proof).(*hearthv1.HEProof)
	twice.Shares[1] = proof.Shares[0]
	// The server shifts a share to decrypt to a model of its choosing.
	shifted := proto.Clone(proof).(*hearthv1.HEProof)
	shifted.Shares[1].Payload[len(shifted.Shares[1].Payload)-1] ^= 1
	for _, tc := range []struct {
		name   string
		global *model.Model
		proof  *hearthv1.HEProof
		want   string
	}{
		{"another model", nudged, proof, "not round 1's decrypted mean"},
		{"no proof", mean, nil, "without the decryption of round 1"},
		{"a proof of another round", mean, &hearthv1.HEProof{Round: 2, Commitments: commits, Updates: updates, Active: proof.Active, Shares: proof.Shares}, "without the decryption of round 1"},
		{"one party's share twice", mean, twice, "twice"},
		{"a share the server changed", mean, shifted, "does not verify"},
		{"a share short", mean, &hearthv1.HEProof{Round: 1, Commitments: commits, Updates: updates, Active: proof.Active, Shares: proof.Shares[:1]}, "threshold 2"},
		{"an update left out", mean, &hearthv1.HEProof{Round: 1, Commitments: commits, Updates: updates[:2], Active: proof.Active, Shares: proof.Shares}, "2 updates for 3 commitments"},
	} {
		if err := s.p.checkHEGlobal(s.j, 2, tc.global, tc.proof); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
