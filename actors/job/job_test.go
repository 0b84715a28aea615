package job_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

const good = `name: digits
workflow: fedavg
rounds: 10
sites: ["@all"]
min_sites: 2
round_timeout: 30s
dataset: optdigits
trainer: {kind: logreg, learning_rate: 0.01, epochs: 2, batch_size: 32, seed: 1}
evaluation: {validation: true, test: true}
`

func TestParseManifestRefuses(t *testing.T) {
	cases := []struct{ name, from, to, want string }{
		{"unknown field", "rounds: 10", "rounds: 10\nepochs: 3", "field epochs not found"},
		{"workflow", "fedavg", "cyclic", `workflow: "cyclic" is not supported`},
		{"rounds", "rounds: 10", "rounds: 0", "rounds: 0 is not in"},
		{"no sites", `sites: ["@all"]`, "sites: []", "sites: required"},
		{"@all with names", `["@all"]`, `["@all", "site-1"]`, "@all must stand alone"},
		{"duplicate site", `["@all"]`, `["site-1", "site-1"]`, `"site-1" listed twice`},
		{"min_sites above sites", `sites: ["@all"]`, `sites: ["site-1"]`, "min_sites: 2 is more than the 1 sites"},
		{"round timeout", "30s", "10ms", "round_timeout: 10ms"},
		{"dataset", "optdigits", "imagenet", `dataset: "imagenet" is not one of`},
		{"trainer", "kind: logreg", "kind: transformer", "trainer:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := job.ParseManifest([]byte(strings.Replace(good, tc.from, tc.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	m, err := job.ParseManifest([]byte(good))
	if err != nil || m.Rounds != 10 || m.RoundTimeout != 30*time.Second || m.Trainer.Spec().Kind != "logreg" {
		t.Fatalf("good manifest: %+v, %v", m, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	p := pkitest.New(t)
	admin := p.Issue(t, "admin@org.org", "org", pki.KindAdmin)
	site := p.Issue(t, "site-1", "org", pki.KindSite)
	stranger := pkitest.New(t).Issue(t, "admin@org.org", "org", pki.KindAdmin)
	revoked := p.Issue(t, "gone@org.org", "org", pki.KindAdmin)
	p.Revoke(t, 1, revoked)
	sign := func(part *pkitest.Participant) *hearthv1.SignedJob {
		sj, err := job.Sign([]byte(good), part.Cert, part.Key)
		if err != nil {
			t.Fatal(err)
		}
		return sj
	}
	genuine := sign(admin)
	if v, err := job.Verify(genuine, p.Trust, time.Now()); err != nil || v.Submitter.Name != "admin@org.org" {
		t.Fatalf("genuine job: %v %v", v, err)
	}
	cases := []struct {
		name string
		sj   *hearthv1.SignedJob
		want error
		text string
	}{
		{"changed after signing", &hearthv1.SignedJob{Manifest: []byte(strings.Replace(good, "rounds: 10", "rounds: 11", 1)),
			Signature: genuine.Signature, SubmitterCert: genuine.SubmitterCert}, job.ErrSignature, "does not match the manifest"},
		{"signature by another key", &hearthv1.SignedJob{Manifest: genuine.Manifest, Signature: sign(site).Signature,
			SubmitterCert: genuine.SubmitterCert}, job.ErrSignature, "does not match the manifest"},
		{"signed by a site", sign(site), pki.ErrWrongKind, "kind"},
		{"signed by another project's admin", sign(stranger), pki.ErrUnknownAuthority, "root CA"},
		{"signed by a revoked admin", sign(revoked), pki.ErrRevoked, "revoked"},
		{"no signature", &hearthv1.SignedJob{Manifest: genuine.Manifest, SubmitterCert: genuine.SubmitterCert}, job.ErrSignature, "required"},
		{"nil", nil, job.ErrSignature, "required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := job.Verify(tc.sj, p.Trust, time.Now())
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
	if _, err := job.Sign([]byte("rounds: nope"), admin.Cert, admin.Key); err == nil {
		t.Fatal("an invalid manifest was signed")
	}
}

func TestModelWire(t *testing.T) {
	m := &model.Model{Tensors: []model.Tensor{
		{Name: "dense0/weight", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 0, 1e-7, -1e7}},
		{Name: "dense0/bias", Shape: []int{3}, Data: []float32{0.25, 0, -0.5}},
	}}
	back, err := job.FromWire(job.ToWire(m))
	if err != nil {
		t.Fatal(err)
	}
	if back.SameLayout(m) != nil || back.Tensors[0].Data[5] != -1e7 || back.Tensors[1].Data[2] != -0.5 {
		t.Fatalf("round trip changed the model: %+v", back)
	}
	bad := []struct {
		name string
		w    *hearthv1.Model
		want string
	}{
		{"empty", &hearthv1.Model{}, "no tensors"},
		{"short data", &hearthv1.Model{Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{2}, Data: make([]byte, 4)}}}, "4 data bytes"},
		{"zero dimension", &hearthv1.Model{Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{0}}}}, "out of range"},
		{"huge", &hearthv1.Model{Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{1 << 20, 1 << 20}}}}, "larger than"},
		{"NaN", job.ToWire(&model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{1}, Data: []float32{float32(nan())}}}}), "model"},
		{"duplicate names", &hearthv1.Model{Tensors: []*hearthv1.Tensor{{Name: "w", Shape: []int64{1}, Data: make([]byte, 4)}, {Name: "w", Shape: []int64{1}, Data: make([]byte, 4)}}}, "model"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := job.FromWire(tc.w); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }
