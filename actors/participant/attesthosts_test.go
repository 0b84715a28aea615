package participant

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/pki/pkitest"
	"github.com/hearthfl/hearth/plugins/attest"
	"github.com/hearthfl/hearth/policies/attestation"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// hostsProbe stands in for the bridge and the hosts behind it: each host
// answers an evidence request with what its simulator makes for the
// request's nonce and the host's key, sealed requests only.
type hostsProbe struct {
	mu    sync.Mutex
	hosts map[string]*probeHost
	asked []string
}

type probeHost struct {
	key *ecdh.PrivateKey
	snp attest.SimulatedSNPOptions
}

func (b *hostsProbe) Receive(ctx actor.Context) {
	ask, ok := ctx.Message().(*bridge.Ask)
	if !ok {
		return
	}
	req := ask.Msg.(*hearthv1.AttestationRequest)
	b.mu.Lock()
	b.asked = append(b.asked, ask.To)
	h := b.hosts[ask.To]
	b.mu.Unlock()
	if ask.SealTo == nil || !ask.SealTo.Equal(h.key.PublicKey()) {
		ctx.Respond(&bridge.Failed{To: ask.To, Err: errors.New("not sealed to the host's key")})
		return
	}
	s, _ := attest.SimulatedSNP(h.snp)
	g, _ := attest.SimulatedGPU(attest.PocGPUs)
	rd, _ := attestation.ReportData(h.key.PublicKey().Bytes(), req.Nonce)
	gn, _ := attestation.GPUNonce(h.key.PublicKey().Bytes(), req.Nonce)
	report, certs, _ := s.Collect(context.Background(), rd)
	ge, _ := g.Collect(context.Background(), gn)
	ctx.Respond(&bridge.Reply{From: pki.Identity{Name: ask.To, Kind: pki.KindAggregator}, Msg: &hearthv1.AttestationEvidence{
		JobId: req.JobId, Nonce: req.Nonce, Key: &hearthv1.SealingKey{PublicKey: h.key.PublicKey().Bytes()},
		SevSnp: &hearthv1.SevSnpEvidence{Report: report, Certificates: certs}, NvidiaGpu: GPUEvidenceWire(ge), Simulated: true}})
}

// TestAttestHosts: the server's AttestHosts at a site, through the actor:
// each host of the signed job attested with a fresh nonce sealed to its
// key, one answer with every verdict (agg-2's evidence of another
// measurement refused with the reason), hosts the signed job does not
// name left without a verdict, the host accepted then sent to and the
// refused one not, and a second request within a second refused.
func TestAttestHosts(t *testing.T) {
	proj := pkitest.New(t)
	const jobID = "job-00000000000c"
	b, _ := json.Marshal(attest.SimulatedPolicy())
	policy, err := attestation.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	probe := &hostsProbe{hosts: map[string]*probeHost{}}
	var bindings []*hearthv1.SealingKey
	for i, name := range []string{"agg-1", "agg-2", "agg-9"} {
		key, _ := ecdh.X25519().GenerateKey(rand.Reader)
		c := proj.Issue(t, name, "org", pki.KindAggregator)
		signer, err := envelope.NewSigner(c.Cert, c.Key)
		if err != nil {
			t.Fatal(err)
		}
		k, err := sealing.BindKey(signer, jobID, key.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		claims := attest.PocSNP()
		if i == 1 {
			claims.Measurement[0] ^= 1
		}
		probe.hosts[name] = &probeHost{key: key, snp: claims}
		bindings = append(bindings, k)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	t.Cleanup(system.Shutdown)
	audit := &records{}
	p := &Participant{cfg: Config{Self: pki.Identity{Name: "site-1", Kind: pki.KindSite}, Trust: proj.Trust, Audit: audit, Now: time.Now,
		Log: slog.New(slog.DiscardHandler), Attestation: SitePolicy(policy), Bridge: system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return probe }))},
		jobs: map[string]*joined{}}
	j := &joined{id: jobID, hosts: map[string]*attestedHost{}, swarm: &swarmJob{},
		manifest: &job.Manifest{Placement: &job.Placement{Aggregator: job.PlacementAttested, TEE: []string{job.TEESEVSNP, job.TEENvidiaGPU}, Hosts: []string{"agg-1", "agg-2", "agg-3"}}}}
	p.jobs[jobID] = j
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return p }))
	server := bridge.Origin{Sender: pki.Identity{Name: "server", Kind: pki.KindServer}, JobID: jobID}
	ask := func() any {
		f := actor.NewFuture(system, 20*time.Second)
		system.Root.Send(pid, bridge.Delivered(server, &hearthv1.AttestHosts{JobId: jobID, Hosts: bindings}, f.PID()))
		res, err := f.Result()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res, ok := ask().(*hearthv1.HostsAttested)
	if !ok {
		t.Fatalf("answered %T", res)
	}
	if !slices.Equal(res.Accepted, []string{"agg-1"}) || !strings.Contains(res.Refused["agg-2"], "sev-snp: measurement") || len(res.Refused) != 1 || len(res.Accepted) != 1 {
		t.Fatalf("accepted %v, refused %v", res.Accepted, res.Refused)
	}
	if slices.Contains(probe.asked, "agg-9") {
		t.Fatal("a host the signed job does not name was asked for evidence")
	}
	// The actor is idle now (its next re-attestation is 10 minutes off).
	if g1, g2 := p.hostAccepted(j, "agg-1", probe.hosts["agg-1"].key.PublicKey()), p.hostAccepted(j, "agg-2", probe.hosts["agg-2"].key.PublicKey()); g1 != nil || g2 == nil {
		t.Fatalf("the site would send agg-1: %v, agg-2: %v", g1, g2)
	}
	if f, ok := ask().(*hearthv1.Failure); !ok || !strings.Contains(f.Message, "less than 1s ago") {
		t.Fatalf("a second AttestHosts at once: %v", f)
	}
	if len(audit.of("attestation.accepted")) != 1 || len(audit.of("attestation.refused")) != 1 {
		t.Fatalf("audit: %v", audit.events)
	}
}
