package participant

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/policies/attestation"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// A site in an attested job (one whose placement puts the aggregator on
// aggregation hosts) trusts a host only on evidence it verified itself:
// it sends each host its own fresh nonce, checks the evidence by its own
// policy (local/attestation.json: the TEE kinds it requires, its reference
// values) against the host's sealing key for the job and that nonce, and
// seals updates only to the key the evidence binds. It attests each host
// again every Reattest while in the job; a host whose re-attestation fails
// or does not come is no longer sent anything: the site refuses the rounds
// it aggregates (FAILURE_CODE_ATTESTATION), and the server moves the round
// to the next host or fails the job, with the reason.

// AttestationPolicy is a site's own judgement of an aggregation host's
// evidence (policies/attestation, through cmd/hearth).
type AttestationPolicy interface {
	// Verify checks ev, asked for with nonce, as evidence for key (the
	// host's sealing key for the job): every TEE kind in tee (the job's)
	// and in the site's own requirements, each against the site's
	// reference values. It returns what it accepted, for the audit.
	Verify(ev *hearthv1.AttestationEvidence, tee []string, key, nonce []byte, now time.Time) (accepted string, err error)
	// Reattest is how often the site attests a host again.
	Reattest() time.Duration
}

// attestHostsEvery is how often the server may have a site attest a job's
// hosts (its own re-attestation keeps its own pace).
const attestHostsEvery = time.Second

// attestTimeout bounds one request for a host's evidence: its making and
// its way back; a request that gets no answer is made attestTries times
// in all before the host counts as refused.
const (
	attestTimeout = 5 * time.Second
	attestTries   = 3
)

// attestedHost is what a site knows of one host of an attested job.
type attestedHost struct {
	key     *ecdh.PublicKey // the sealing key its evidence binds
	at      time.Time       // when its evidence last verified
	refused string          // why its last attestation failed; "" while accepted
	busy    bool            // an attestation is on its way
	lastKey *ecdh.PublicKey // the key last asked about (busy: the one on its way)
	waiters []func(error)   // verdicts awaited on the one on its way
}

// reattestDue is a site's reminder to attest an attested job's hosts
// again; j is the joined job it was set for (a re-join starts anew).
type reattestDue struct {
	jobID string
	j     *joined
}

// attestHosts takes the server's AttestHosts: the site attests each host
// of the job that the server names and answers which it accepts.
func (p *Participant) attestHosts(ctx actor.Context, m *hearthv1.AttestHosts) {
	from, ok := p.fromServer(ctx)
	if !ok {
		return
	}
	j := p.jobs[m.JobId]
	if j == nil || j.swarm == nil || !j.manifest.Attested() {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_UNKNOWN_JOB, "this site has joined no attested job "+envelope.Clip(m.JobId, 64)))
		return
	}
	now := p.cfg.Now()
	if now.Sub(j.attestAsked) < attestHostsEvery {
		// Each verification costs this actor milliseconds: a compromised
		// server asking without end must not stall the site's jobs.
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, fmt.Sprintf("the job's hosts were attested here less than %v ago", attestHostsEvery)))
		return
	}
	j.attestAsked = now
	received := p.audit(auditor.Event{Action: "attestation.asked", JobID: m.JobId, Peer: from.Sender.Name, PeerEvent: m.AuditEvent})
	out := &hearthv1.HostsAttested{JobId: m.JobId, Refused: map[string]string{}}
	if len(m.Hosts) > len(j.manifest.Placement.Hosts) {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, fmt.Sprintf("%d hosts to attest; the signed job places its aggregator on %d", len(m.Hosts), len(j.manifest.Placement.Hosts))))
		return
	}
	type target struct {
		host string
		pub  *ecdh.PublicKey
	}
	var targets []target
	for _, k := range m.Hosts {
		host := k.GetSite()
		if !slices.Contains(j.manifest.Placement.Hosts, host) || out.Refused[host] != "" || slices.ContainsFunc(targets, func(t target) bool { return t.host == host }) {
			continue // not the signed job's, or named twice: no verdict
		}
		pub, err := sealing.VerifyHostKey(k, p.cfg.Trust, m.JobId, host, now)
		if err != nil {
			out.Refused[host] = err.Error()
			p.audit(auditor.Event{Action: "attestation.refused", JobID: m.JobId, Peer: host, Detail: map[string]string{"reason": err.Error()}})
			continue
		}
		targets = append(targets, target{host, pub})
	}
	// Every verdict comes back on this actor; the answer leaves once, when
	// the last is in.
	reply, left := ctx.Sender(), len(targets)
	answer := func() {
		out.AuditEvent = received
		ctx.Send(reply, out)
	}
	for _, t := range targets {
		p.attest(ctx, j, t.host, t.pub, func(err error) {
			if err != nil {
				out.Refused[t.host] = err.Error()
			} else {
				out.Accepted = append(out.Accepted, t.host)
			}
			if left--; left == 0 {
				answer()
			}
		})
	}
	if len(targets) == 0 {
		answer()
	}
	if !j.reattesting {
		j.reattesting = true
		p.scheduleReattest(ctx, j)
	}
}

// attest asks host for evidence with a fresh nonce, verifies it by the
// site's policy, records the verdict and audits it, then calls done.
func (p *Participant) attest(ctx actor.Context, j *joined, host string, pub *ecdh.PublicKey, done func(error)) {
	h := j.hosts[host]
	if h == nil {
		h = &attestedHost{}
		j.hosts[host] = h
	}
	if h.busy { // the attestation on its way decides, if it is of this key
		if pub.Equal(h.lastKey) {
			h.waiters = append(h.waiters, done)
		} else {
			done(fmt.Errorf("attestation: an attestation of another key for %s is on its way", host))
		}
		return
	}
	nonce := make([]byte, attestation.NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		done(p.judge(j, host, pub, nonce, nil, fmt.Errorf("nonce: %w", err)))
		return
	}
	if p.cfg.Attestation == nil {
		done(p.judge(j, host, pub, nonce, nil, errors.New("this site has no attestation policy (local/attestation.json), so it accepts no aggregation host")))
		return
	}
	h.busy, h.lastKey = true, pub
	self, system, via := ctx.Self(), ctx.ActorSystem(), p.cfg.Bridge
	ask := &bridge.Ask{To: host, Msg: &hearthv1.AttestationRequest{JobId: j.id, Nonce: nonce}, JobID: j.id, Timeout: attestTimeout, SealTo: pub}
	go func() { // off the actor: the request, again if no answer came, and the verification; the verdict back on it
		var res any
		var err error
		for try := range attestTries {
			if try > 0 { // a host just connected may not hear us yet, a busy one asks to ask again
				time.Sleep(time.Duration(try) * 500 * time.Millisecond)
			}
			res, err = system.Root.RequestFuture(via, ask, attestTimeout+time.Second).Result()
			if _, failed := res.(*bridge.Failed); err == nil && !failed {
				break
			}
		}
		a := p.assess(j, host, pub, nonce, res, err)
		a.done = done
		system.Root.Send(self, &a)
	}()
}

// judge decides the host's answer to this site's request (res, or the
// request's failure), records the verdict for host and audits it.
func (p *Participant) judge(j *joined, host string, pub *ecdh.PublicKey, nonce []byte, res any, err error) error {
	return p.record(j, host, pub, p.assess(j, host, pub, nonce, res, err))
}

// assessment is a verdict reached off the actor (attest), for record.
type assessment struct {
	j        *joined
	host     string
	pub      *ecdh.PublicKey
	accepted string
	err      error
	done     func(error)
}

// assess decides the host's answer; it touches no state, so it runs off
// the actor (a verification costs milliseconds).
func (p *Participant) assess(j *joined, host string, pub *ecdh.PublicKey, nonce []byte, res any, err error) assessment {
	a := assessment{j: j, host: host, pub: pub}
	ev, err := evidenceOf(res, err)
	if err == nil {
		a.accepted, err = p.checkEvidence(j, pub, nonce, ev)
	}
	a.err = err
	return a
}

// record takes an assessment on the actor: the host's state, the audit,
// and every verdict awaited on it.
func (p *Participant) record(j *joined, host string, pub *ecdh.PublicKey, a assessment) error {
	h := j.hosts[host]
	if h == nil {
		h = &attestedHost{}
		j.hosts[host] = h
	}
	h.busy = false
	waiters := h.waiters
	h.waiters = nil
	err := a.err
	defer func() {
		for _, w := range waiters {
			w(err)
		}
	}()
	if err != nil {
		h.refused = envelope.Clip(err.Error(), 512)
		p.audit(auditor.Event{Action: "attestation.refused", JobID: j.id, Peer: host, Detail: map[string]string{"reason": h.refused}})
		p.cfg.Log.Warn("aggregation host not accepted", "job", j.id, "host", host, "reason", h.refused)
		return err
	}
	p.audit(auditor.Event{Action: "attestation.accepted", JobID: j.id, Peer: host, // the evidence names the roots that verified it
		Detail: map[string]string{"evidence": envelope.Clip(a.accepted, 512)}})
	h.key, h.at, h.refused = pub, p.cfg.Now(), ""
	return nil
}

// evidenceOf is the host's answer as evidence, or why it is none.
func evidenceOf(res any, err error) (*hearthv1.AttestationEvidence, error) {
	if err != nil {
		return nil, fmt.Errorf("attestation: no evidence: %w", err)
	}
	switch r := res.(type) {
	case *bridge.Reply:
		if ev, ok := r.Msg.(*hearthv1.AttestationEvidence); ok {
			return ev, nil
		}
		return nil, fmt.Errorf("attestation: the host answered %T, not evidence", r.Msg)
	case *bridge.Failed:
		return nil, fmt.Errorf("attestation: no evidence: %w", r.Err)
	}
	return nil, fmt.Errorf("attestation: unexpected %T", res)
}

// checkEvidence checks that evidence answers this site's request for this
// job and key, then decides it by the site's policy; it returns what the
// policy accepted, for the audit.
func (p *Participant) checkEvidence(j *joined, pub *ecdh.PublicKey, nonce []byte, ev *hearthv1.AttestationEvidence) (string, error) {
	switch {
	case ev.JobId != j.id:
		return "", fmt.Errorf("attestation: evidence for job %q", envelope.Clip(ev.JobId, 64))
	case subtle.ConstantTimeCompare(ev.Nonce, nonce) != 1:
		return "", errors.New("attestation: evidence for another nonce (a replayed answer)")
	case ev.Key == nil || subtle.ConstantTimeCompare(ev.Key.PublicKey, pub.Bytes()) != 1:
		return "", errors.New("attestation: evidence for another sealing key than the host's for this job")
	}
	accepted, err := p.cfg.Attestation.Verify(ev, j.manifest.Placement.TEE, pub.Bytes(), nonce, p.cfg.Now())
	if err != nil {
		return "", err
	}
	if ev.Simulated {
		accepted += " (the host says simulated)"
	}
	return accepted, nil
}

// scheduleReattest sets the site's next attestation of the job's hosts.
func (p *Participant) scheduleReattest(ctx actor.Context, j *joined) {
	if p.cfg.Attestation == nil {
		return
	}
	self, system, id := ctx.Self(), ctx.ActorSystem(), j.id
	time.AfterFunc(p.cfg.Attestation.Reattest(), func() { system.Root.Send(self, &reattestDue{jobID: id, j: j}) })
}

// reattest attests again every host this site accepts for the job.
func (p *Participant) reattest(ctx actor.Context, m *reattestDue) {
	j := p.jobs[m.jobID]
	if j == nil || j != m.j || !j.reattesting {
		return // the job ended, or was joined again (its own reminders run)
	}
	for _, host := range slices.Sorted(maps.Keys(j.hosts)) {
		// Refused hosts too: a refusal for want of an answer (a timeout,
		// a busy host) passes once the host answers with good evidence.
		if h := j.hosts[host]; h.lastKey != nil {
			p.attest(ctx, j, host, h.lastKey, func(error) {})
		}
	}
	p.scheduleReattest(ctx, j)
}

// hostAccepted says why this site does not send host anything in job j
// now, as a phrase with this site as its subject, nil if it may: its evidence verified, under key, and not longer
// ago than twice the re-attestation interval (a re-attestation that does
// not come counts as failed).
func (p *Participant) hostAccepted(j *joined, host string, key *ecdh.PublicKey) error {
	h := j.hosts[host]
	switch {
	case h == nil || h.key == nil && h.refused == "":
		return fmt.Errorf("has not attested %s", host)
	case h.refused != "":
		return fmt.Errorf("refuses %s's evidence: %s", host, h.refused)
	case key != nil && !key.Equal(h.key):
		return fmt.Errorf("holds another key for %s than its evidence binds", host)
	}
	if p.cfg.Attestation != nil {
		if age, limit := p.cfg.Now().Sub(h.at), 2*p.cfg.Attestation.Reattest(); age > limit {
			return fmt.Errorf("last attested %s %v ago; re-attestation is due every %v", host, age.Round(time.Second), limit/2)
		}
	}
	return nil
}
