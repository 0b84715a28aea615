package authz

import (
	"strconv"

	"github.com/hearthfl/hearth/bus/pki"
)

// Request is one authorization question a site asks itself: may Requester
// exercise Right here? Its fields are facts the site established itself
// (the requester's verified certificate, the job's recorded submitter), not
// claims relayed by the server.
type Request struct {
	// Requester is who asks, from their verified certificate. Only an admin
	// (Kind admin) with a known role and a name and org can be granted
	// anything; any other requester is denied with a reason.
	Requester pki.Identity
	// Right is what the requester wants to do.
	Right Right
	// SiteOrg is the org of the site deciding; o:site compares against it.
	SiteOrg string
	// Submitter is the job's submitter, for rights about an existing job
	// (clone_job, manage_job, download_job, ...); nil for submit_job and
	// commands that concern no job. o:submitter and n:submitter are never
	// met without one.
	Submitter *pki.Identity
}

// Decision is Decide's answer. Reason is always set and says why, e.g.
//
//	lead "bob" may submit_job: condition any
//	org_admin "ann" may not submit_job: condition none
//	member "carl" may not manage_job: right not granted to role member
type Decision struct {
	Allowed bool   // whether the request is granted
	Reason  string // why; for logs, audit and the requester
}

// Decide answers r under the policy. It denies by default: a requester that
// is not an admin with a known role, name and org, an unknown right, a role
// or right the policy does not list, and a condition that is not met are all
// denied, each with its reason. Decide never panics, even on a nil Policy,
// which grants nothing.
func (p *Policy) Decide(r Request) Decision {
	req := r.Requester
	if req.Kind != pki.KindAdmin {
		kind := "participant"
		if req.Kind.Valid() {
			kind = string(req.Kind)
		}
		return deny(kind+" "+strconv.Quote(req.Name), r.Right,
			"not an admin (kind "+strconv.Quote(string(req.Kind))+"); only admins hold rights")
	}
	role, ok := roleIndex(req.Role)
	if !ok {
		return deny("admin "+strconv.Quote(req.Name), r.Right, "unknown role "+strconv.Quote(string(req.Role)))
	}
	who := string(req.Role) + " " + strconv.Quote(req.Name)
	switch {
	case req.Name == "":
		return deny(who, r.Right, "requester has no name")
	case req.Org == "":
		return deny(who, r.Right, "requester has no org")
	}
	right, ok := rightIndex(r.Right)
	if !ok {
		return deny(who, r.Right, "unknown right")
	}
	if p == nil {
		return deny(who, r.Right, "no policy")
	}
	perms := &p.roles[role]
	if !perms.listed {
		return deny(who, r.Right, "role "+string(req.Role)+" not in the policy")
	}
	switch c := perms.rights[right]; c {
	case condAny:
		return allow(who, r.Right, "condition any")
	case condNone:
		return deny(who, r.Right, "condition none")
	case condOrgSite:
		switch {
		case r.SiteOrg == "":
			return deny(who, r.Right, "condition o:site (site org not set)")
		case req.Org == r.SiteOrg:
			return allow(who, r.Right, "condition o:site (org "+strconv.Quote(req.Org)+" is the site's org)")
		}
		return deny(who, r.Right, "condition o:site (org "+strconv.Quote(req.Org)+
			" is not the site's org "+strconv.Quote(r.SiteOrg)+")")
	case condOrgSubmitter:
		switch {
		case r.Submitter == nil:
			return deny(who, r.Right, "condition o:submitter (no job submitter)")
		case r.Submitter.Org == "":
			return deny(who, r.Right, "condition o:submitter (submitter has no org)")
		case req.Org == r.Submitter.Org:
			return allow(who, r.Right, "condition o:submitter (org "+strconv.Quote(req.Org)+" is the submitter's org)")
		}
		return deny(who, r.Right, "condition o:submitter (org "+strconv.Quote(req.Org)+
			" is not the submitter's org "+strconv.Quote(r.Submitter.Org)+")")
	case condNameSubmitter:
		switch {
		case r.Submitter == nil:
			return deny(who, r.Right, "condition n:submitter (no job submitter)")
		case r.Submitter.Name == "":
			return deny(who, r.Right, "condition n:submitter (submitter has no name)")
		case req.Name == r.Submitter.Name:
			return allow(who, r.Right, "condition n:submitter (requester is the submitter)")
		}
		return deny(who, r.Right, "condition n:submitter (the submitter is "+strconv.Quote(r.Submitter.Name)+")")
	}
	return deny(who, r.Right, "right not granted to role "+string(req.Role))
}

func allow(who string, right Right, why string) Decision {
	return Decision{Allowed: true, Reason: who + " may " + string(right) + ": " + why}
}

func deny(who string, right Right, why string) Decision {
	name := string(right)
	if !right.Valid() {
		name = strconv.Quote(name)
	}
	return Decision{Reason: who + " may not " + name + ": " + why}
}
