package dashboard

import (
	"fmt"
	"slices"

	"github.com/hearthfl/hearth/bus/pki"
)

// Action is what a route does, the unit of authorization.
type Action string

// The actions. Every route names one (see routes); authorize decides it.
const (
	ActHome         Action = "home"         // the home page, sign-out: any account
	ActOwnRequest   Action = "own.request"  // upload a CSR for one's own admin certificate, download its kit
	ActListSites    Action = "sites.list"   // the site list (filtered by ActViewSite)
	ActViewSite     Action = "site.view"    // a site's page
	ActEditSite     Action = "site.edit"    // add or change a site, upload its CSR
	ActDownloadKit  Action = "site.kit"     // download a site's kit
	ActInvite       Action = "invite"       // invite someone, list invitations
	ActApprove      Action = "approve"      // approve or refuse certificate requests
	ActRevoke       Action = "revoke"       // revoke a participant's certificate
	ActParticipants Action = "participants" // the participants list
	ActAudit        Action = "audit"        // read the audit log
	ActEditProject  Action = "project.edit" // see and change the project's server
	ActJobs         Action = "jobs"         // the jobs list (filtered by ActViewJob)
	ActViewJob      Action = "job.view"     // a job's page
)

// Target is what an action is done to, where it matters: the org that
// owns it. A nil target asks whether the role may ever do the action.
type Target struct {
	Org string
	// Orgs are, for a job, the orgs of the sites it was sent to (Org is
	// its submitter's).
	Orgs []string
}

// Decision is authorize's answer, with its reason.
type Decision struct {
	Allow  bool
	Reason string
}

func allow(reason string) Decision { return Decision{Allow: true, Reason: reason} }
func deny(format string, a ...any) Decision {
	return Decision{Reason: fmt.Sprintf(format, a...)}
}

// authorize is the dashboard's one authorization decision, consulted by
// every route before its handler runs and again by handlers once the
// target is known. Deny by default:
//
//	project_admin  everything
//	org_admin      its own account's request; sites of its own org: view, add, change, upload CSRs, download kits
//	lead, member   its own account's request; view the sites of its own org
//	anyone         jobs submitted from its own org or sent to one of its org's
//	               sites (an account without an org sees none)
//
// Jobs are read through the dashboard's admin console (--admin-kit), so
// the server's policy for that admin binds first: a user never sees more
// than that admin may.
//
// A nil user (no session) is denied everything.
func authorize(a Action, u *User, t *Target) Decision {
	if u == nil {
		return deny("no session")
	}
	if u.Role == pki.RoleProjectAdmin {
		return allow("project admin")
	}
	sameOrg := func(what string) Decision {
		switch {
		case t == nil:
			return allow(what + " (of its own org)")
		case t.Org == u.Org:
			return allow(what + " of its own org")
		}
		return deny("%s %s may not act on org %s", u.Role, u.Email, t.Org)
	}
	switch a {
	case ActHome, ActOwnRequest, ActListSites, ActJobs:
		return allow("any account")
	case ActViewJob:
		switch {
		case t == nil:
			return allow("a job (of its own org)")
		case u.Org == "":
			return deny("%s %s has no org", u.Role, u.Email)
		case t.Org == u.Org:
			return allow("a job submitted from its own org")
		case slices.Contains(t.Orgs, u.Org):
			return allow("a job sent to a site of its own org")
		}
		return deny("%s %s: a job of org %s, sent to no site of org %s", u.Role, u.Email, t.Org, u.Org)
	case ActViewSite:
		return sameOrg("a site")
	case ActEditSite, ActDownloadKit:
		if u.Role != pki.RoleOrgAdmin {
			return deny("%s %s: only project and org admins manage sites", u.Role, u.Email)
		}
		return sameOrg("a site")
	}
	return deny("%s %s: only the project admin may %s", u.Role, u.Email, a)
}
