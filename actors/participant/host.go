package participant

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/policies/attestation"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// An aggregation host (`hearth aggregator`, a participant of kind
// aggregator) is a participant with Config.Evidence: it joins only jobs
// that place their aggregator on it (the signed job's placement.hosts),
// trains nothing and holds no data; it answers each site's attestation
// request with evidence bound to its sealing key for the job and the
// site's nonce, and aggregates the rounds the rotation gives it, as a
// swarm site would (swarm_aggregate.go): the updates come sealed to its
// key, the new model leaves sealed to each holder.

// Evidence makes an aggregation host's TEE evidence (plugins/attest,
// through cmd/hearth): REPORT_DATA or the GPU nonce bound to key (the
// host's sealing key for a job) and a site's nonce.
type Evidence interface {
	Evidence(ctx context.Context, key, nonce []byte) (*hearthv1.AttestationEvidence, error)
}

// evidenceEvery is how often one site may ask a host for evidence in one
// job: making it costs the TEE (or its simulator) a signature.
const evidenceEvery = 500 * time.Millisecond

// maxShape bounds the data shape a host takes from the server's task for
// the initial model, and its product (the sites check the shape against
// their own data).
const maxShape = 1 << 24

// evidenceSlots is how many pieces of evidence a host makes at once, over
// all sites and jobs; past it a request is refused (and asked again).
const evidenceSlots = 4

// evidenceTimeout bounds the making of one piece of evidence.
const evidenceTimeout = 10 * time.Second

// isHost says this participant is an aggregation host.
func (p *Participant) isHost() bool { return p.cfg.Evidence != nil }

// hostReceive handles what reaches an aggregation host differently from a
// site; false leaves the message to Receive (swarm tasks, updates, leaving).
func (p *Participant) hostReceive(ctx actor.Context) bool {
	switch m := ctx.Message().(type) {
	case *hearthv1.JoinJob:
		ctx.Respond(p.joinAsHost(ctx, m))
	case *hearthv1.AttestationRequest:
		p.attestationRequest(ctx, m)
	case *madeEvidence:
		p.evidenceMade(ctx, m)
	case *hearthv1.Preflight, *hearthv1.TrainTask, *hearthv1.EvaluateTask, *hearthv1.SwarmEvaluate, *hearthv1.SwarmLocal,
		*hearthv1.AttestHosts, *hearthv1.GetCredentialKey,
		*hearthv1.HESetup, *hearthv1.HEKeyExchange, *hearthv1.HEThresholdShare, *hearthv1.HEKeys, *hearthv1.HEReveal, *hearthv1.HEDecrypt:
		p.hostRefuses(ctx, "train, evaluate or take part in anything but the aggregation of jobs placed on it")
	default:
		return false
	}
	return true
}

// hostRefuses answers what an aggregation host does not do.
func (p *Participant) hostRefuses(ctx actor.Context, what string) {
	if ctx.Sender() != nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, p.cfg.Self.Name+" is an aggregation host: it does not "+what))
	}
}

// joinAsHost decides a job the server asks this host to aggregate for:
// the signed job, fresh and new here, that names this host in its
// placement, and the host's own policy for the submitter.
func (p *Participant) joinAsHost(ctx actor.Context, m *hearthv1.JoinJob) any {
	from, ok := p.fromServer(ctx)
	if !ok {
		return failure(hearthv1.FailureCode_FAILURE_CODE_FORBIDDEN, "only the server coordinates jobs")
	}
	if !job.ValidID(m.JobId) {
		return failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, fmt.Sprintf("%s refused a job: %q is not a job id", p.cfg.Self.Name, envelope.Clip(m.JobId, 64)))
	}
	received := p.audit(auditor.Event{Action: "job.received", JobID: m.JobId, Peer: from.Sender.Name, PeerEvent: m.AuditEvent})
	refuse := func(reason string) any { return p.refuseJob(m.JobId, from, received, reason, false) }
	now := p.cfg.Now()
	v, err := job.Verify(m.Job, p.cfg.Trust, now)
	if err != nil {
		return refuse(err.Error())
	}
	if p.cfg.Ledger.Ended(v.Nonce) {
		return refuse("this signed job ended here; it does not run again")
	}
	if !p.cfg.Ledger.Known(v.Nonce, m.JobId) {
		if err := v.Fresh(now); err != nil {
			return refuse(err.Error())
		}
		if err := p.cfg.Ledger.Unused(v.Nonce); err != nil {
			return refuse(err.Error())
		}
	}
	if !v.Manifest.Attested() || !slices.Contains(v.Manifest.Placement.Hosts, p.cfg.Self.Name) {
		return refuse("the job does not place its aggregator on this host")
	}
	if allowed, reason := p.cfg.Policy.Allow("submit_job", v.Submitter, nil); !allowed {
		return refuse("host policy: " + reason)
	}
	j := &joined{id: m.JobId, manifest: v.Manifest, spec: v.Manifest.Trainer.Spec(), nonce: v.Nonce}
	if j.swarm, err = p.newSwarmJob(m.JobId, v.Nonce); err != nil {
		return refuse(err.Error())
	}
	j.swarm.roundTimeout = v.Manifest.RoundTimeout
	if err := p.cfg.Ledger.Record(v.Nonce, m.JobId, string(v.Submitter.Role), now, v.NotAfter); err != nil {
		return refuse(err.Error())
	}
	j.asked = map[string]time.Time{}
	if old := p.jobs[m.JobId]; old != nil {
		old.cancel()
		p.leaveSwarm(ctx, old)
		j.asked = old.asked // a re-join does not reset the sites' pace
	}
	j.ctx, j.cancel = context.WithCancel(context.Background())
	sites := setOf(v.Manifest.Sites)
	if v.Manifest.Sites[0] == job.AllSites {
		sites = map[string]bool{anySite: true}
	}
	p.peers.put(m.JobId, sites, hostTypes) // until the first task names the members
	p.peers.setAsking(m.JobId, sites)
	p.jobs[m.JobId] = j
	id := p.audit(auditor.Event{Action: "job.joined", JobID: m.JobId, Peer: from.Sender.Name, PeerEvent: received,
		Detail: map[string]string{"submitter": v.Submitter.Name, "nonce": v.Nonce, "role": "aggregation host"}})
	p.cfg.Log.Info("job joined as its aggregation host", "job", m.JobId, "name", v.Manifest.Name, "submitter", v.Submitter.Name)
	return &hearthv1.JobJoined{JobId: m.JobId, SealingKey: j.swarm.key, AuditEvent: id}
}

// hostTypes are what a site may send an aggregation host in a job (Admit);
// any site of the job may ask for evidence (jobPeers.asking).
var hostTypes = map[string]bool{string(proto.MessageName(&hearthv1.SwarmUpdate{})): true}

var attestationRequest = string(proto.MessageName(&hearthv1.AttestationRequest{}))

func setOf(names []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// madeEvidence is a host's evidence for one site's request, made off the
// actor.
type madeEvidence struct {
	jobID, site string
	reply       *actor.PID
	ev          *hearthv1.AttestationEvidence
	err         error
}

// attestationRequest answers a site's request for evidence: a site of the
// job (Admit let it through), sealed, with a nonce of the right size, no
// more often than evidenceEvery; the evidence is made off the actor.
func (p *Participant) attestationRequest(ctx actor.Context, m *hearthv1.AttestationRequest) {
	o, _ := bridge.OriginOf(ctx)
	j := p.jobs[m.JobId]
	refuse := func(reason string) {
		p.audit(auditor.Event{Action: "evidence.refused", JobID: m.JobId, Peer: o.Sender.Name, Detail: map[string]string{"reason": reason}})
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, reason))
	}
	switch {
	case o.JobID != m.JobId:
		refuse(fmt.Sprintf("admitted for job %q, its body is for %q", envelope.Clip(o.JobID, 64), envelope.Clip(m.JobId, 64)))
		return
	case o.Sender.Kind != pki.KindSite || !o.Sealed:
		refuse("evidence is asked for by a site, sealed to this host's key")
		return
	case j == nil || j.swarm == nil:
		refuse("this host aggregates no job " + envelope.Clip(m.JobId, 64))
		return
	case len(m.Nonce) != attestation.NonceSize:
		refuse(fmt.Sprintf("a nonce of %d bytes, not %d", len(m.Nonce), attestation.NonceSize))
		return
	}
	now := p.cfg.Now()
	if last, ok := j.asked[o.Sender.Name]; ok && now.Sub(last) < evidenceEvery {
		refuse(fmt.Sprintf("evidence asked for again within %v", evidenceEvery))
		return
	}
	if len(j.asked) >= 2*maxSwarmSites {
		refuse("too many sites asked for evidence in this job")
		return
	}
	select {
	case p.evidenceSlots <- struct{}{}:
	default:
		refuse(fmt.Sprintf("%d pieces of evidence are being made; ask again", cap(p.evidenceSlots)))
		return
	}
	j.asked[o.Sender.Name] = now
	self, system, reply, key := ctx.Self(), ctx.ActorSystem(), ctx.Sender(), j.swarm.key
	nonce, jobCtx, jobID, site := slices.Clone(m.Nonce), j.ctx, m.JobId, o.Sender.Name
	go func() {
		defer func() { <-p.evidenceSlots }()
		c, cancel := context.WithTimeout(jobCtx, evidenceTimeout)
		defer cancel()
		ev, err := p.cfg.Evidence.Evidence(c, key.PublicKey, nonce)
		if err == nil {
			ev.JobId, ev.Nonce, ev.Key = jobID, nonce, key
		}
		system.Root.Send(self, &madeEvidence{jobID: jobID, site: site, reply: reply, ev: ev, err: err})
	}()
}

// evidenceMade sends a site its evidence, or why there is none.
func (p *Participant) evidenceMade(ctx actor.Context, m *madeEvidence) {
	if m.err != nil {
		p.audit(auditor.Event{Action: "evidence.failed", JobID: m.jobID, Peer: m.site, Detail: map[string]string{"reason": m.err.Error()}})
		p.cfg.Log.Error("attestation evidence not made", "job", m.jobID, "site", m.site, "err", m.err)
		ctx.Send(m.reply, failure(hearthv1.FailureCode_FAILURE_CODE_ATTESTATION, "no evidence: "+m.err.Error()))
		return
	}
	kinds := ""
	if m.ev.SevSnp != nil {
		kinds += "sev-snp "
	}
	if m.ev.NvidiaGpu != nil {
		kinds += "nvidia-gpu "
	}
	p.audit(auditor.Event{Action: "evidence.sent", JobID: m.jobID, Peer: m.site,
		Detail: map[string]string{"evidence": kinds, "simulated": fmt.Sprint(m.ev.Simulated)}})
	ctx.Send(m.reply, m.ev)
}
