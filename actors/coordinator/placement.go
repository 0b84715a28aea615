package coordinator

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Attested placement (a swarm job with a placement section): the job's
// aggregator runs on aggregation hosts, participants of kind aggregator
// in TEEs, instead of its sites. Once the sites joined, the coordinator
// joins the job's hosts (each answers with its sealing key for the job)
// and hands every joined site those keys; each site asks each host for
// evidence with its own fresh nonce, verifies it by its own policy and
// answers which hosts it accepts. The job runs with the sites that accept
// the host most of them accept (ties: the first by name), and its rotation
// is the hosts all of those sites accept; a site that does not accept them
// is left out of the job, with its reasons, as if it had refused the job.
// With fewer than min_sites left the job fails, with every site's reasons.
// The server decides nothing about the evidence and never sees an update:
// the sites send them sealed to the key each verified. A site that stops
// accepting a host (its re-attestation failed) refuses the rounds that
// host aggregates, and the round fails over to the next host, or the job
// fails.

// place joins the job's hosts, then asks the joined sites to attest them.
func (s *swarmFlow) place(ctx actor.Context) {
	s.phase, s.hosts, s.placing = placing, map[string]*hearthv1.SealingKey{}, map[string]bool{}
	s.hostReasons = map[string][]string{}
	event := s.audit(auditor.Event{Action: "placement.started", JobID: s.id(), Detail: map[string]string{
		"hosts": strings.Join(s.manifest.Placement.Hosts, ","), "tee": strings.Join(s.manifest.Placement.TEE, ",")}})
	for _, h := range s.manifest.Placement.Hosts {
		if !s.reachable(h) {
			s.hostReasons[h] = append(s.hostReasons[h], "not connected to the hub")
			continue
		}
		s.askPlacement(ctx, h, &hearthv1.JoinJob{JobId: s.id(), Job: s.rec.Job, AuditEvent: event}, true)
	}
	s.placed(ctx)
}

// askPlacement asks a host to join, or a site to attest the hosts.
func (s *swarmFlow) askPlacement(ctx actor.Context, who string, msg proto.Message, host bool) {
	s.placing[who] = true
	s.askThen(ctx, who, msg, 0, func(m proto.Message, err error) { s.takePlaced(ctx, who, host, m, err) })
}

// takePlaced takes a host's join or a site's verdicts.
func (s *swarmFlow) takePlaced(ctx actor.Context, who string, host bool, msg proto.Message, err error) {
	if s.phase != placing || !s.placing[who] {
		return
	}
	delete(s.placing, who)
	switch {
	case err != nil && host:
		s.hostReasons[who] = append(s.hostReasons[who], "did not join: "+envelope.Clip(err.Error(), maxReason))
	case err != nil:
		s.miss(who, "attesting the hosts: "+err.Error())
	case host:
		s.hostJoined(who, msg)
	default:
		s.siteAttested(who, msg)
	}
	s.placed(ctx)
}

func (s *swarmFlow) hostJoined(host string, msg proto.Message) {
	m, ok := msg.(*hearthv1.JobJoined)
	if !ok {
		s.hostReasons[host] = append(s.hostReasons[host], fmt.Sprintf("answered %T to its join", msg))
		return
	}
	if _, err := sealing.VerifyHostKey(m.SealingKey, s.cfg.Trust, s.id(), host, s.cfg.Now()); err != nil {
		s.hostReasons[host] = append(s.hostReasons[host], err.Error())
		return
	}
	s.hosts[host], s.keys[host] = m.SealingKey, m.SealingKey
	s.audit(auditor.Event{Action: "host.joined", JobID: s.id(), Peer: host, PeerEvent: m.AuditEvent})
}

// siteAttested takes a site's verdicts on the hosts.
func (s *swarmFlow) siteAttested(site string, msg proto.Message) {
	m, ok := msg.(*hearthv1.HostsAttested)
	if !ok || m.JobId != s.id() || len(m.Accepted)+len(m.Refused) > len(s.hosts) {
		s.refuse(site, "placement.refused", fmt.Sprintf("answered %T, not its verdicts on the job's hosts", msg), "")
		return
	}
	var why []string
	for _, h := range slices.Sorted(maps.Keys(s.hosts)) {
		switch {
		case slices.Contains(m.Accepted, h):
			s.acceptedBy[h][site] = true
		case m.Refused[h] != "":
			why = append(why, h+": "+envelope.Clip(m.Refused[h], maxReason))
		default:
			why = append(why, h+": no verdict")
		}
	}
	s.siteReasons[site] = strings.Join(why, "; ")
	s.audit(auditor.Event{Action: "hosts.attested", JobID: s.id(), Peer: site, PeerEvent: m.AuditEvent,
		Detail: map[string]string{"accepted": strings.Join(m.Accepted, ","), "refused": envelope.Clip(s.siteReasons[site], maxReason)}})
}

// choose picks the host most sites accept (ties: the first by name), the
// sites that accept it, and the hosts all of those accept.
func (s *swarmFlow) choose() (sites, eligible []string) {
	best := ""
	for _, h := range slices.Sorted(maps.Keys(s.acceptedBy)) {
		if len(s.acceptedBy[h]) > len(s.acceptedBy[best]) {
			best = h
		}
	}
	if best == "" {
		return nil, nil
	}
	sites = slices.Sorted(maps.Keys(s.acceptedBy[best]))
	for _, h := range slices.Sorted(maps.Keys(s.acceptedBy)) {
		all := true
		for _, site := range sites {
			all = all && s.acceptedBy[h][site]
		}
		if all {
			eligible = append(eligible, h)
		}
	}
	return sites, eligible
}

// placed moves on once every host answered its join (the sites are then
// asked to attest the hosts that joined) and every site its verdicts.
func (s *swarmFlow) placed(ctx actor.Context) {
	if len(s.placing) > 0 {
		return
	}
	if s.acceptedBy == nil { // the hosts' joins are in: the sites attest them
		s.acceptedBy, s.siteReasons = map[string]map[string]bool{}, map[string]string{}
		keys := make([]*hearthv1.SealingKey, 0, len(s.hosts))
		for _, h := range slices.Sorted(maps.Keys(s.hosts)) {
			s.acceptedBy[h] = map[string]bool{}
			keys = append(keys, s.hosts[h])
		}
		if len(keys) == 0 {
			s.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, "no aggregation host joined the job: "+s.hostsWhy())
			return
		}
		event := s.audit(auditor.Event{Action: "attestation.asked", JobID: s.id(), Detail: map[string]string{"hosts": strings.Join(slices.Sorted(maps.Keys(s.hosts)), ",")}})
		for _, site := range s.sites() {
			s.askPlacement(ctx, site, &hearthv1.AttestHosts{JobId: s.id(), Hosts: keys, AuditEvent: event}, false)
		}
		if len(s.placing) > 0 {
			return
		}
	}
	sites, eligible := s.choose()
	var why []string
	for _, site := range s.sites() {
		if slices.Contains(sites, site) {
			continue
		}
		reason := "does not accept the aggregation hosts' evidence"
		if r := s.siteReasons[site]; r != "" {
			reason += ": " + r
		}
		if !slices.Contains(s.missing, site) {
			s.miss(site, reason)
		}
		s.out[site], s.placedOut[site] = envelope.Clip(reason, maxReason), true // out of the job: it does not re-join
		why = append(why, site+": "+reason)
	}
	if len(sites) < s.manifest.MinSites {
		s.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, envelope.Clip(fmt.Sprintf("no aggregation host whose evidence %d sites accept (min_sites %d): %s",
			s.manifest.MinSites, s.manifest.MinSites, strings.Join(append(why, s.hostsWhy()), "; ")), maxJobReason))
		return
	}
	s.audit(auditor.Event{Action: "placement.decided", JobID: s.id(), Detail: map[string]string{"hosts": strings.Join(eligible, ","),
		"sites": strings.Join(sites, ",")}})
	s.cfg.Log.Info("aggregator placed on attested hosts", "job", s.id(), "hosts", eligible, "sites", sites)
	s.begin(ctx, eligible)
}

// hostsWhy joins each host's reasons.
func (s *swarmFlow) hostsWhy() string {
	var out []string
	for _, h := range s.manifest.Placement.Hosts {
		if r := s.hostReasons[h]; len(r) > 0 {
			out = append(out, h+": "+strings.Join(r, ", "))
		}
	}
	return envelope.Clip(strings.Join(out, "; "), maxJobReason)
}

// isHost says whether name is one of the job's joined hosts.
func (s *swarmFlow) isHost(name string) bool { return s.hosts[name] != nil }

// reattest asks a site that joined the job again to attest the rotation's
// hosts; it stays left out until it accepts them all.
func (s *swarmFlow) reattest(ctx actor.Context, site string) {
	keys := make([]*hearthv1.SealingKey, 0, len(s.eligible))
	for _, h := range s.eligible {
		keys = append(keys, s.hosts[h])
	}
	ev := s.audit(auditor.Event{Action: "attestation.asked", JobID: s.id(), Peer: site, Detail: map[string]string{"hosts": strings.Join(s.eligible, ",")}})
	s.askThen(ctx, site, &hearthv1.AttestHosts{JobId: s.id(), Hosts: keys, AuditEvent: ev}, 0, func(m proto.Message, err error) {
		s.reattested(site, m, err)
	})
}

func (s *swarmFlow) reattested(site string, msg proto.Message, err error) {
	if s.phase != training || s.out[site] == "" {
		return
	}
	m, ok := msg.(*hearthv1.HostsAttested)
	switch {
	case err != nil:
		s.out[site] = envelope.Clip("attesting the hosts: "+err.Error(), maxReason)
		return
	case !ok || m.JobId != s.id():
		s.out[site] = fmt.Sprintf("answered %T, not its verdicts on the job's hosts", msg)
		return
	}
	for _, h := range s.eligible {
		if !slices.Contains(m.Accepted, h) {
			s.out[site] = envelope.Clip(fmt.Sprintf("does not accept %s's evidence: %s", h, m.Refused[h]), maxReason)
			return
		}
	}
	delete(s.out, site)
	s.audit(auditor.Event{Action: "site.rejoined", JobID: s.id(), Peer: site, PeerEvent: m.AuditEvent})
	s.cfg.Log.Info("site rejoined", "job", s.id(), "site", site)
}
