package participant

import (
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/pki"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// A swarm job at a site. The server's SwarmTask names the round's attempt
// and its aggregator; the site checks the aggregator against the job's
// rotation (actors/swarm) and every sealing key against the PKI, then
//
//   - as a member, trains from the basis model it holds and sends the
//     update sealed to the aggregator, answering the server with its
//     figures once the aggregator confirmed it;
//   - as the round's aggregator, folds the members' updates (its own
//     included) in an aggregator actor of its own (aggregator.HoldingProps:
//     a streamed update decrypted and folded chunk by chunk as it arrives,
//     never held whole), sends the new global model sealed to every holder,
//     and answers the server with what it aggregated and who confirmed the
//     model;
//   - as a holder catching up, waits for the new model.
//
// Weights never reach the server. A site hears another site only while
// both are in the swarm job (Admit), takes an update only as the round's
// aggregator and a model only from it, and keeps the newest global model in
// its state folder: the job's final model stays at the sites.

// swarmJob is a joined swarm job's state at this site.
type swarmJob struct {
	nonce  []byte
	key    *hearthv1.SealingKey // this site's sealing key, bound for the job
	models map[roundKey]*model.Model
	task   *hearthv1.SwarmTask // the newest attempt's task
	at     roundKey            // and its round and attempt
	keys   map[string]*ecdh.PublicKey
	agg    *aggregation // while this site aggregates the newest attempt
	local  *model.Model // this site's newest update
	early  []earlyArrival
	// wait is the server's request for the newest attempt, answered once
	// this site holds the attempt's new model (or cannot).
	wait *modelWait
	// verified caches the sealing-key bindings checked for the job.
	verified map[string]verifiedKey
	layout   *model.Model // the job's model layout, for checking received models
	keeper   *modelKeeper // writes the accepted global model to the state folder
	kept     roundKey     // the round and attempt of the model kept there
	// pullingModel: the newest attempt's model is streaming in.
	pullingModel bool
	// attemptCtx bounds the newest attempt's training and streams: a newer
	// task, the round timeout or leaving the job ends them.
	attemptCtx  context.Context
	stopAttempt context.CancelFunc
	// eligible is the rotation's sites, pinned by the job's first task when
	// the signed job does not name them.
	eligible     []string
	roundTimeout time.Duration
	// cross is the cross-site evaluation in progress; locals are other
	// sites' local models that came before it.
	cross  *crossEval
	locals map[string]*model.Model
	// initMade: an aggregation host made the job's initial model (once).
	initMade bool
}

// modelWait is a holder's answer to the server, held until the new model
// comes: the server counts the holders that confirm the aggregator's model.
type modelWait struct {
	at    roundKey
	reply *actor.PID
	res   *hearthv1.SwarmTrained
	// trained: the member's own training is done (res has its figures);
	// got: the new model came.
	trained, got bool
	seal         swarm.SealTime // encrypting the streamed update, decrypting the streamed new model
}

// roundKey is one attempt at one round; round 0 is the initial model.
type roundKey struct{ round, attempt int64 }

func (k roundKey) after(o roundKey) bool {
	return k.round > o.round || k.round == o.round && k.attempt > o.attempt
}

func (k roundKey) String() string { return fmt.Sprintf("round %d attempt %d", k.round, k.attempt) }

func keyOf(round, attempt int64) roundKey { return roundKey{round, attempt} }

// aggregation is an attempt this site aggregates.
type aggregation struct {
	at      roundKey
	task    *hearthv1.SwarmTask
	pid     *actor.PID             // the aggregator actor: the only holder of the model, the updates and their sum
	relay   *actor.PID             // passes the aggregator's answers on, naming this attempt (aggregatorSaid)
	reply   *actor.PID             // the server's request, answered when the round is done
	expect  map[string]bool        // members whose update is awaited
	folded  map[string]bool        // members whose update was folded
	refused map[string]string      // and those refused here, with the reason
	pulling map[string]arrival     // members whose update the aggregator is folding chunk by chunk
	own     *hearthv1.SwarmTrained // this site's own figures, once trained
	basis   *model.Model           // the round's starting model: the members' updates must have its layout
	started time.Time
	closing bool // no update taken any more; Close is asked once nothing is pulling
	asked   bool // Close asked
	result  *hearthv1.SwarmAggregated
	// seal: time spent decrypting streamed updates and encrypting the
	// streamed model.
	seal swarm.SealTime
}

// Process-local messages of the swarm role.
type (
	// trainedLocal is a member's training, done off the actor.
	trainedLocal struct {
		jobID  string
		at     roundKey
		update *model.Model
		res    *hearthv1.SwarmTrained
		reply  *actor.PID
		err    error
	}
	// aggregatorSaid is an aggregator actor's answer to a FoldStream
	// (*aggregator.StreamTaken, *aggregator.StreamPulled), passed on by
	// its attempt's relay.
	aggregatorSaid struct {
		jobID string
		at    roundKey
		msg   any
	}
	// closeAggregation ends an aggregation's wait for updates.
	closeAggregation struct {
		jobID string
		at    roundKey
	}
	// modelOverdue ends a holder's wait for the new model.
	modelOverdue struct {
		jobID string
		at    roundKey
	}
)

// jobPeers is who may address this site, in which job, with what: in a
// swarm job the members and holders of the job's newest attempt, with the
// swarm's messages; in a job under homomorphic encryption the setup's
// other parties, with their threshold shares. The bridge asks Admit from
// its own goroutines, so it has its own lock.
type jobPeers struct {
	mu    sync.Mutex
	jobs  map[string]map[string]bool
	types map[string]map[string]bool // by job: the message types admitted
	// hosts are an attested job's aggregation hosts, from the signed job:
	// the only participants of kind aggregator a site hears in it.
	hosts map[string]map[string]bool
	// asking are, at an aggregation host, the sites of each job placed on
	// it (from the signed job): they may ask for evidence whether or not
	// the newest task lists them.
	asking map[string]map[string]bool
}

// setAsking records the sites of a job placed on this host.
func (s *jobPeers) setAsking(jobID string, sites map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.asking == nil {
		s.asking = map[string]map[string]bool{}
	}
	s.asking[jobID] = sites
}

func (s *jobPeers) put(jobID string, sites map[string]bool, types map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs == nil {
		s.jobs, s.types = map[string]map[string]bool{}, map[string]map[string]bool{}
	}
	s.jobs[jobID], s.types[jobID] = sites, types
}

func (s *jobPeers) set(jobID string, sites []string) { s.put(jobID, setOf(sites), swarmTypes) }

// setHosts records an attested job's hosts (from the signed job).
func (s *jobPeers) setHosts(jobID string, hosts []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hosts == nil {
		s.hosts = map[string]map[string]bool{}
	}
	s.hosts[jobID] = setOf(hosts)
}

// setAny admits every site of the project for jobID until the job's first
// task names its members: a job on every site lists no sites, and another
// site's first update may overtake that task. What is admitted then only
// waits for the task (early), which decides on it.
func (s *jobPeers) setAny(jobID string) { s.put(jobID, map[string]bool{anySite: true}, swarmTypes) }

// setHE admits the other parties of an HE job's setup.
func (s *jobPeers) setHE(jobID string, parties []string, self string) {
	m := map[string]bool{}
	for _, site := range parties {
		m[site] = site != self
	}
	s.put(jobID, m, heTypes)
}

// anySite in a job's peers admits every site (setAny).
const anySite = "@any"

func (s *jobPeers) drop(jobID string) {
	s.mu.Lock()
	delete(s.jobs, jobID)
	delete(s.types, jobID)
	delete(s.hosts, jobID)
	delete(s.asking, jobID)
	s.mu.Unlock()
}

// Admit is bridge.Config.Admit for a site: another site is heard only in
// a swarm job this site has joined, and only while the server's newest task
// for it lists that site as a member or holder, or in a job under
// homomorphic encryption while its setup names that site; an aggregation
// host only in an attested job whose signed placement names it; and only
// with that kind of job's messages. At an aggregation host, only the sites
// of a job placed on it are heard, with attestation requests and updates.
// Every other envelope is refused by the bridge (audited as a refusal)
// before its body is opened.
func (p *Participant) Admit(sender pki.Identity, messageType, jobID string) error {
	p.peers.mu.Lock()
	defer p.peers.mu.Unlock()
	switch {
	case sender.Kind == pki.KindSite && p.isHost() && messageType == attestationRequest:
		if sites := p.peers.asking[jobID]; !sites[sender.Name] && !sites[anySite] {
			return fmt.Errorf("%s is not a site of job %q", sender.Name, envelope.Clip(jobID, 64))
		}
		return nil
	case sender.Kind == pki.KindSite:
	case sender.Kind == pki.KindAggregator && !p.isHost():
		if !p.peers.hosts[jobID][sender.Name] {
			return fmt.Errorf("%s is no aggregation host of job %q", sender.Name, envelope.Clip(jobID, 64))
		}
	default:
		return fmt.Errorf("%s is a %s, not a site", sender.Name, sender.Kind)
	}
	peers, types := p.peers.jobs[jobID], p.peers.types[jobID]
	if !peers[sender.Name] && !peers[anySite] {
		return fmt.Errorf("%s is in no swarm job or key setup %q with this site", sender.Name, envelope.Clip(jobID, 64))
	}
	if !types[messageType] {
		return fmt.Errorf("%s is not a message of job %q's kind", envelope.Clip(messageType, 64), envelope.Clip(jobID, 64))
	}
	return nil
}

// swarmTypes are what one site may send another in a swarm job (Admit).
var swarmTypes = map[string]bool{
	string(proto.MessageName(&hearthv1.SwarmUpdate{})): true, string(proto.MessageName(&hearthv1.SwarmModel{})): true,
	string(proto.MessageName(&hearthv1.SwarmLocal{})): true,
}

// maxSwarmSites bounds a SwarmTask's lists before anything in it is checked.
const maxSwarmSites = 1024

// newSwarmJob makes a joined swarm job's state: a sealing key binding.
func (p *Participant) newSwarmJob(jobID, nonceHex string) (*swarmJob, error) {
	if p.cfg.Signer == nil || p.cfg.SealKey == nil || p.cfg.Bridge == nil {
		return nil, errors.New("this site is not set up for swarm learning (no sealing key)")
	}
	nonce, err := hex.DecodeString(nonceHex)
	if err != nil {
		return nil, fmt.Errorf("job nonce: %w", err)
	}
	key, err := sealing.BindKey(p.cfg.Signer, jobID, p.cfg.SealKey)
	if err != nil {
		return nil, err
	}
	return &swarmJob{nonce: nonce, key: key, models: map[roundKey]*model.Model{}, verified: map[string]verifiedKey{}}, nil
}

// verifyKey checks a sealing-key binding, once per binding and job.
func (p *Participant) verifyKey(sj *swarmJob, k *hearthv1.SealingKey, jobID string, host bool) (*ecdh.PublicKey, error) {
	raw, err := proto.Marshal(k)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	now := p.cfg.Now()
	if v, ok := sj.verified[k.GetSite()]; ok && v.sum == sum && now.Before(v.notAfter) && v.crl == p.cfg.Trust.CRLNumber() {
		return ecdh.X25519().NewPublicKey(k.PublicKey)
	}
	verify := sealing.VerifyKey
	if host {
		verify = sealing.VerifyHostKey
	}
	pub, err := verify(k, p.cfg.Trust, jobID, k.GetSite(), now)
	if err != nil {
		return nil, err
	}
	if len(sj.verified) < 2*maxSwarmSites {
		cert, _ := x509.ParseCertificate(k.Certificate) // it parsed in VerifyKey
		sj.verified[k.Site] = verifiedKey{sum: sum, notAfter: cert.NotAfter, crl: p.cfg.Trust.CRLNumber()}
	}
	return pub, nil
}

// verifiedKey is a binding checked once: valid until its certificate
// expires or a newer revocation list comes.
type verifiedKey struct {
	sum      [32]byte
	notAfter time.Time
	crl      int64
}

// endAttempt ends what this site does for the newest attempt: its
// aggregation, its held answer to the server (with reason, if given), and
// its training and streams (their context).
func (p *Participant) endAttempt(ctx actor.Context, sj *swarmJob, reason string) {
	p.endAggregation(ctx, sj, reason)
	if w := sj.wait; w != nil {
		if reason != "" {
			ctx.Send(w.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, reason))
		}
		sj.wait = nil
	}
	if sj.stopAttempt != nil {
		sj.stopAttempt()
	}
	sj.pullingModel = false
}

// refuseMismatch refuses a site's envelope whose body names another job
// than the header it was admitted by.
func (p *Participant) refuseMismatch(ctx actor.Context, o bridge.Origin, bodyJob string) {
	reason := fmt.Sprintf("admitted for job %q, its body is for %q", envelope.Clip(o.JobID, 64), envelope.Clip(bodyJob, 64))
	p.audit(auditor.Event{Action: "message.refused", JobID: o.JobID, Peer: o.Sender.Name, Detail: map[string]string{"reason": reason}})
	if ctx.Sender() != nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, reason))
	}
}

// leaveSwarm ends a swarm job's role here.
func (p *Participant) leaveSwarm(ctx actor.Context, j *joined) {
	if j.swarm == nil {
		return
	}
	p.endAttempt(ctx, j.swarm, "the job ended")
	if c := j.swarm.cross; c != nil {
		ctx.Send(c.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, "the job ended"))
		j.swarm.cross = nil
	}
	for _, e := range j.swarm.early {
		ctx.Send(e.reply, failure(hearthv1.FailureCode_FAILURE_CODE_SUPERSEDED, "the job ended"))
	}
	j.swarm.early = nil
	p.peers.drop(j.id)
	if j.swarm.keeper != nil {
		j.swarm.keeper.close()
		j.swarm.keeper = nil
	}
	if m := j.swarm.newest(); m != nil && j.swarm.kept.round < j.swarm.at.round && p.cfg.StateDir != "" {
		// No evaluation named the final model: the newest one is kept.
		if err := writeModel(ModelPath(p.cfg.StateDir, j.id), m); err != nil {
			p.cfg.Log.Error("swarm model not kept in the state folder", "job", j.id, "err", err)
		}
	}
}
