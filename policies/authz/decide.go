package authz

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hearthfl/hearth/bus/pki"
)

// Request is one authorization question a site asks itself: may Requester
// exercise Right here? Its fields are facts the site established itself
// (the requester's verified certificate, or the local role its
// authenticator mapped; the job's recorded submitter), not claims relayed
// by the server.
type Request struct {
	// Requester is who asks. Only an admin (Kind admin) with a role, a
	// name and an org can be granted anything; any other requester is
	// denied with a reason. The role is any role the policy names
	// (FLARE's four, or a site's own), matched case-insensitively.
	Requester pki.Identity
	// Right is what the requester wants to do: a command, or a category,
	// which is granted only when every command in it is.
	Right Right
	// SiteOrg is the org of the site deciding; o:site compares against it.
	SiteOrg string
	// Submitter is the job's submitter, for rights about an existing job
	// (clone_job, manage_job, download_job, ...); nil for submit_job and
	// commands that concern no job. o:submitter and n:submitter are never
	// met without one, so "not o:submitter" and "not n:submitter" are.
	Submitter *pki.Identity
}

// Decision is Decide's answer. Reason is always set and says why, e.g.
//
//	lead "bob" may submit_job: condition any
//	org_admin "ann" may not submit_job: condition none
//	member "carl" may not manage_job: right not granted to role member
//	member "john" may submit_job: condition n:john of [o:site, o:orga, n:john] (name "john" is "john")
type Decision struct {
	Allowed bool   // whether the request is granted
	Reason  string // why; for logs, audit and the requester
}

// Decide answers r under the policy, in FLARE's order: the role's one
// control for every right if it has one; otherwise the right's own
// control; otherwise, for a command, its category's; otherwise denied.
// Within a control the "not" conditions come first, and any that is met
// denies; then, if there are conditions that allow, one of them must be
// met; a control of "not" conditions only allows when none is met.
//
// It denies by default: a requester that is not an admin with a role, name
// and org, text that is not valid UTF-8, an unknown right, a role or right
// the policy does not list, and a control that is not met are all denied,
// each with its reason. Decide never panics, even on a nil Policy, which
// grants nothing.
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
	who := roleName(string(req.Role)) + " " + strconv.Quote(req.Name)
	if field := invalidText(r); field != "" {
		return deny(who, r.Right, field+" is not valid UTF-8")
	}
	e := evaluation{req: r, name: fold(req.Name), org: fold(req.Org), siteOrg: fold(r.SiteOrg)}
	if r.Submitter != nil {
		e.subName, e.subOrg = fold(r.Submitter.Name), fold(r.Submitter.Org)
	}
	roleKey := fold(string(req.Role))
	switch {
	case roleKey == "":
		return deny(who, r.Right, "requester has no role")
	case e.name == "":
		return deny(who, r.Right, "requester has no name")
	case e.org == "":
		return deny(who, r.Right, "requester has no org")
	case !r.Right.Valid():
		return deny(who, r.Right, "unknown right")
	case p == nil:
		return deny(who, r.Right, "no policy")
	}
	rp := p.roles[roleKey]
	if rp == nil {
		return deny(who, r.Right, "role "+roleName(string(req.Role))+" not in the policy")
	}
	ok, why := rp.decide(r.Right, &e, roleName(string(req.Role)))
	if ok {
		return allow(who, r.Right, why)
	}
	return deny(who, r.Right, why)
}

// decide is the role's answer for right.
func (rp *role) decide(right Right, e *evaluation, roleShown string) (bool, string) {
	notGranted := "right not granted to role " + roleShown
	if rp.all != nil {
		return e.control(rp.all)
	}
	cat := right.Category()
	if cat == right {
		return rp.decideCategory(cat, e, notGranted)
	}
	if c := rp.rights[right]; c != nil {
		return e.control(c)
	}
	if cat != "" {
		if c := rp.rights[cat]; c != nil {
			ok, why := e.control(c)
			return ok, "by its category " + string(cat) + ", " + why
		}
	}
	return false, notGranted
}

// decideCategory answers a request for a whole category, which FLARE's
// own commands never make: it is granted only when the category's control
// grants it, as FLARE's evaluator would answer, and so does the control
// of each command of it that the role lists on its own, so that every
// command of the category would be granted too.
func (rp *role) decideCategory(cat Right, e *evaluation, notGranted string) (bool, string) {
	base := rp.rights[cat]
	if base == nil {
		return false, notGranted
	}
	ok, why := e.control(base)
	cmds := rp.overrides[cat]
	if !ok || len(cmds) == 0 {
		return ok, why
	}
	for _, cmd := range cmds {
		if ok, cwhy := e.control(rp.rights[cmd]); !ok {
			return false, "command " + string(cmd) + ", listed on its own, " + cwhy +
				" (" + string(cat) + " is granted only with every command in it)"
		}
	}
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = string(c)
	}
	return true, why + ", and so do its commands listed on their own: " + strings.Join(names, ", ")
}

// evaluation is one request with its names folded, as controls compare them.
type evaluation struct {
	req                Request
	name, org, siteOrg string
	subName, subOrg    string // "" without a submitter
}

// control evaluates a control as FLARE does: a "not" condition that is
// met denies; then one allowing condition must be met, if there are any.
// A "not" condition that cannot be decided (o:site without a site org, a
// submitter with no name or org) denies: its negation would grant on
// missing facts.
func (e *evaluation) control(c *control) (bool, string) {
	single := len(c.conds) == 1
	if c.blocks > 0 {
		for _, cond := range c.conds {
			if !cond.not {
				continue
			}
			if met, detail, decided := e.condition(cond); met || !decided {
				return false, describe(single, c, "condition "+cond.String(), detail)
			}
		}
		if c.blocks == len(c.conds) {
			if single {
				_, detail, _ := e.condition(c.conds[0])
				return true, describe(true, c, "condition "+c.conds[0].String(), detail)
			}
			return true, "no condition of " + c.list() + " is met"
		}
	}
	var details []string
	for _, cond := range c.conds {
		if cond.not {
			continue
		}
		met, detail, _ := e.condition(cond)
		if met {
			return true, describe(single, c, "condition "+cond.String(), detail)
		}
		if detail != "" {
			details = append(details, detail)
		}
	}
	if single {
		return false, describe(true, c, "condition "+c.conds[0].String(), strings.Join(details, ""))
	}
	if len(details) == 0 {
		return false, "no condition of " + c.list() + " is met"
	}
	return false, "no condition of " + c.list() + " is met (" + strings.Join(details, "; ") + ")"
}

// describe is a reason about one condition of c: "condition o:site (org
// "a" is the site's org)", with " of [...]" after the condition when c
// has more than one.
func describe(single bool, c *control, what, detail string) string {
	if !single {
		what += " of " + c.list()
	}
	if detail != "" {
		what += " (" + detail + ")"
	}
	return what
}

// condition evaluates one condition, ignoring its "not": whether it is
// met, what decided it (empty for any and none), and whether it could be
// decided at all.
func (e *evaluation) condition(c condition) (met bool, detail string, decided bool) {
	req, sub := e.req.Requester, e.req.Submitter
	switch c.kind {
	case condAny:
		return true, "", true
	case condNone:
		return false, "", true
	case condOrgSite:
		switch {
		case e.siteOrg == "":
			return false, "site org not set", false
		case e.org == e.siteOrg:
			return true, "org " + strconv.Quote(req.Org) + " is the site's org", true
		}
		return false, "org " + strconv.Quote(req.Org) + " is not the site's org " + strconv.Quote(e.req.SiteOrg), true
	case condOrgSubmitter:
		switch {
		case sub == nil:
			return false, "no job submitter", true
		case e.subOrg == "":
			return false, "submitter has no org", false
		case e.org == e.subOrg:
			return true, "org " + strconv.Quote(req.Org) + " is the submitter's org", true
		}
		return false, "org " + strconv.Quote(req.Org) + " is not the submitter's org " + strconv.Quote(sub.Org), true
	case condNameSubmitter:
		switch {
		case sub == nil:
			return false, "no job submitter", true
		case e.subName == "":
			return false, "submitter has no name", false
		case e.name == e.subName:
			return true, "requester is the submitter", true
		}
		return false, "the submitter is " + strconv.Quote(sub.Name), true
	case condOrg:
		if e.org == c.target {
			return true, "org " + strconv.Quote(req.Org) + " is " + strconv.Quote(c.target), true
		}
		return false, "org " + strconv.Quote(req.Org) + " is not " + strconv.Quote(c.target), true
	case condName:
		if e.name == c.target {
			return true, "name " + strconv.Quote(req.Name) + " is " + strconv.Quote(c.target), true
		}
		return false, "name " + strconv.Quote(req.Name) + " is not " + strconv.Quote(c.target), true
	}
	return false, "unset condition", false
}

// invalidText names the first of the request's texts that is not valid
// UTF-8 ("" when all are): folding would turn its bad bytes into U+FFFD,
// which compares equal to other bad bytes.
func invalidText(r Request) string {
	texts := [...]struct{ name, s string }{
		{"the requester's role", string(r.Requester.Role)},
		{"the requester's name", r.Requester.Name},
		{"the requester's org", r.Requester.Org},
		{"the site's org", r.SiteOrg},
	}
	for _, t := range texts {
		if !utf8.ValidString(t.s) {
			return t.name
		}
	}
	if s := r.Submitter; s != nil {
		if !utf8.ValidString(s.Name) {
			return "the submitter's name"
		}
		if !utf8.ValidString(s.Org) {
			return "the submitter's org"
		}
	}
	return ""
}

// roleName is the requester's role as reasons show it; "admin" when it has
// none.
func roleName(role string) string {
	if role == "" {
		return "admin"
	}
	return shown(role)
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
