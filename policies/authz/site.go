package authz

import "github.com/hearthfl/hearth/bus/pki"

// Site is a policy as one site (or the server) applies it: the deciding
// participant's org fixed, for the actors that ask "may this admin do
// that here?".
type Site struct {
	Policy *Policy
	Org    string
}

// At binds the policy to the org of the participant that decides.
func (p *Policy) At(org string) Site { return Site{Policy: p, Org: org} }

// Allow decides whether requester may exercise right here; submitter is the
// job's submitter for rights over an existing job, nil otherwise.
func (s Site) Allow(right string, requester pki.Identity, submitter *pki.Identity) (bool, string) {
	d := s.Policy.Decide(Request{Requester: requester, Right: Right(right), SiteOrg: s.Org, Submitter: submitter})
	return d.Allowed, d.Reason
}
