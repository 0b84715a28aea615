package hejob_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/hejob"
	"github.com/hearthfl/hearth/actors/learning/he"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestThreshold(t *testing.T) {
	for _, tc := range []struct {
		want, n, t int
		err        string
	}{
		{0, 5, 3, ""}, {0, 2, 2, ""}, {0, 4, 3, ""}, {4, 5, 4, ""}, {2, 5, 0, "no majority"}, {2, 4, 0, "no majority"},
		{0, 1, 0, "at least 2"}, {1, 5, 0, "at least 2"}, {6, 5, 0, "more than the 5"}, {0, 65, 0, "at most 64"},
	} {
		got, err := hejob.Threshold(tc.want, tc.n)
		if tc.err == "" && (err != nil || got != tc.t) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Threshold(%d, %d) = %d, %v; want %d %q", tc.want, tc.n, got, err, tc.t, tc.err)
		}
	}
}

func TestSeedBindsSaltPartiesAndThreshold(t *testing.T) {
	nonce, salt := []byte("0123456789abcdef"), []byte("saltsaltsaltsalt")
	a := hejob.Seed(nonce, salt, []string{"s1", "s2", "s3"}, 2)
	for name, b := range map[string][he.SeedSize]byte{
		"another nonce":      hejob.Seed([]byte("0123456789abcdeF"), salt, []string{"s1", "s2", "s3"}, 2),
		"a party less":       hejob.Seed(nonce, salt, []string{"s1", "s2"}, 2),
		"names run together": hejob.Seed(nonce, salt, []string{"s1s2", "s3"}, 2),
		"another threshold":  hejob.Seed(nonce, salt, []string{"s1", "s2", "s3"}, 3),
		"another salt":       hejob.Seed(nonce, []byte("SALTSALTSALTSALT"), []string{"s1", "s2", "s3"}, 2),
	} {
		if a == b {
			t.Errorf("%s gives the same seed", name)
		}
	}
	if a != hejob.Seed(nonce, salt, []string{"s1", "s2", "s3"}, 2) {
		t.Error("the same setup gives another seed")
	}
}

func TestCheckParties(t *testing.T) {
	all := func(string) bool { return true }
	if i, err := hejob.CheckParties([]string{"a", "b", "c"}, "b", all); err != nil || i != 1 {
		t.Fatalf("CheckParties = %d, %v", i, err)
	}
	for _, tc := range []struct {
		parties []string
		want    string
	}{
		{[]string{"a"}, "1 parties"},
		{[]string{"b", "a"}, "increasing"},
		{[]string{"a", "a"}, "increasing"},
		{[]string{"a", "c"}, "not one of the setup's parties"},
	} {
		if _, err := hejob.CheckParties(tc.parties, "b", all); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckParties(%v) = %v, want %q", tc.parties, err, tc.want)
		}
	}
	if _, err := hejob.CheckParties([]string{"a", "b"}, "b", func(s string) bool { return s != "a" }); err == nil || !strings.Contains(err.Error(), "not one of the job's sites") {
		t.Errorf("a party outside the job: %v", err)
	}
}

func TestCheckModel(t *testing.T) {
	if err := hejob.CheckModel(650, 5, 3); err != nil {
		t.Fatalf("the POC's model: %v", err)
	}
	if err := hejob.CheckModel(100_000, 5, 3); err == nil || !strings.Contains(err.Error(), "streamed ciphertexts are not built yet") {
		t.Fatalf("a model too large for one round's message: %v", err)
	}
	if err := hejob.CheckModel(0, 5, 3); err == nil {
		t.Fatal("an empty model passed")
	}
}

// TestWeights: every party computes the same fractions from the same
// signed counts, capped as FedAvg's weights are, summing to one.
func TestWeights(t *testing.T) {
	w := hejob.Weights(map[string]int64{"a": 100, "b": 300, "liar": 1 << 40}, 0.5)
	total := w["a"] + w["b"] + w["liar"]
	if math.Abs(total-1) > 1e-12 {
		t.Fatalf("fractions sum to %v", total)
	}
	if w["liar"] > 0.5+1e-12 || math.Abs(w["b"]/w["a"]-3) > 1e-9 {
		t.Fatalf("weights %v: the liar above its cap, or the others' ratio changed", w)
	}
	if !hejob.SameWeight(w["a"], w["a"]*(1+1e-12)) || hejob.SameWeight(w["a"]*1.01, w["a"]) || hejob.SameWeight(0, 0) {
		t.Fatal("SameWeight")
	}
}

func TestParsePayloads(t *testing.T) {
	var c he.Commitment
	c[0] = 7
	got, n, err := hejob.ParseCommitment(hejob.CommitmentPayload(c, 42))
	if err != nil || got != c || n != 42 {
		t.Fatalf("commitment round trip: %v %d %v", got, n, err)
	}
	for name, p := range map[string][]byte{
		"short":        c[:],
		"zero samples": hejob.CommitmentPayload(c, 0),
		"too many":     hejob.CommitmentPayload(c, 1<<51),
	} {
		if _, _, err := hejob.ParseCommitment(p); err == nil {
			t.Errorf("commitment %s: parsed", name)
		}
	}
	var set [32]byte
	for name, w := range map[string]float64{"zero": 0, "negative": -0.5, "above one": 1.5, "NaN": math.NaN()} {
		if _, err := hejob.ParseUpdate(hejob.UpdatePayload(w, set, nil)); err == nil || !strings.Contains(err.Error(), "weight") {
			t.Errorf("update of weight %s: %v", name, err)
		}
		if _, _, err := hejob.ParseUpdateCommitment(hejob.UpdateCommitmentPayload(w, nil)); err == nil || !strings.Contains(err.Error(), "weight") {
			t.Errorf("update commitment of weight %s: %v", name, err)
		}
	}
	if _, err := hejob.ParseUpdate(hejob.UpdatePayload(0.5, set, []byte("not a ciphertext"))); err == nil {
		t.Error("an update that is not a ciphertext parsed")
	}
	if _, _, err := hejob.ParseUpdateCommitment(make([]byte, 39)); err == nil {
		t.Error("a short update commitment parsed")
	}
	// CommitmentsDigest: names and payloads cannot run together.
	a := hejob.CommitmentsDigest([]*hearthv1.HESigned{{Site: "s1", Payload: []byte("ab")}, {Site: "s2", Payload: []byte("c")}})
	b := hejob.CommitmentsDigest([]*hearthv1.HESigned{{Site: "s1", Payload: []byte("a")}, {Site: "bs2", Payload: []byte("c")}})
	if a == b {
		t.Error("two sets of commitments share a digest")
	}
}

// TestVerify: a statement verifies only as what it was signed for, by whom.
func TestVerify(t *testing.T) {
	proj := pkitest.New(t)
	s1 := proj.Issue(t, "site-1", "org", pki.KindSite)
	s2 := proj.Issue(t, "site-2", "org", pki.KindSite)
	signer, err := envelope.NewSigner(s1.Cert, s1.Key)
	if err != nil {
		t.Fatal(err)
	}
	setup := he.SetupID{1, 2, 3}
	st, err := hejob.Sign(signer, "job-1", hejob.KindUpdate, 3, setup, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	want := hejob.Expect{JobID: "job-1", Site: "site-1", Kind: hejob.KindUpdate, Round: 3, Setup: setup}
	now := time.Now()
	if err := hejob.Verify(st, want, s1.Cert.Raw, proj.Trust, now); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(e *hejob.Expect, cert *[]byte)
		want   string
	}{
		{"another job", func(e *hejob.Expect, _ *[]byte) { e.JobID = "job-2" }, "does not verify"},
		{"another round", func(e *hejob.Expect, _ *[]byte) { e.Round = 4 }, "for round 3, not 4"},
		{"another kind", func(e *hejob.Expect, _ *[]byte) { e.Kind = hejob.KindKeyShare }, "instead"},
		{"another setup", func(e *hejob.Expect, _ *[]byte) { e.Setup = he.SetupID{9} }, "another setup"},
		{"another site's certificate", func(e *hejob.Expect, cert *[]byte) { *cert = s2.Cert.Raw }, "site-2's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, cert := want, s1.Cert.Raw
			tc.change(&e, &cert)
			if err := hejob.Verify(st, e, cert, proj.Trust, now); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want %q", err, tc.want)
			}
		})
	}
	st.Payload = []byte("payloaD")
	if err := hejob.Verify(st, want, s1.Cert.Raw, proj.Trust, now); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("a changed payload: %v", err)
	}
}
