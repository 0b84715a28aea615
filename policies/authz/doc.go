// Package authz is a site's federated authorization engine: it decides, at
// the site and for the site alone, whether an admin's command or job may act
// there. Every site evaluates its own policy for every command and job that
// reaches it. The server cannot override a site's decision: the site calls
// Decide itself, under its own local policy, and nothing in a Request can
// waive the policy (see Request for where its facts come from).
//
// Use follows upspin's access package: Parse (or ParseFile) turns the site's
// local/authorization.json into a Policy, strictly, and (*Policy).Decide
// answers one Request with a Decision that always carries a reason. Anything
// the policy does not grant is denied.
//
// # Policy format
//
// The file is NVIDIA FLARE's authorization.json, format_version "1.0":
//
//	{"format_version": "1.0",
//	 "permissions": {
//	   "project_admin": "any",
//	   "org_admin": {"submit_job": "none", "manage_job": "o:submitter", "operate": "o:site"},
//	   "lead": {"submit_job": "any", "manage_job": "n:submitter"},
//	   "member": {"view": "any"}}}
//
// permissions maps a role (project_admin, org_admin, lead, member) either to
// one condition that applies to every right, or to an object mapping rights
// to conditions. The rights are submit_job, clone_job, manage_job (abort and
// delete a job), download_job, view, operate, shell_commands and byoc. The
// conditions are:
//
//	"any"          always granted (also written true)
//	"none"         never granted (also written false)
//	"o:site"       the requester's org is this site's org
//	"o:submitter"  the requester's org is the job submitter's org
//	"n:submitter"  the requester's name is the job submitter's name
//
// A right not listed for a role, and a role not listed, are denied.
//
// Parsing is strict and fails closed: an unknown role, right, condition or
// top-level key, a duplicate key, a format_version other than "1.0", a value
// of the wrong type, or trailing data is an error naming where it is, e.g.
//
//	authz: permissions.lead.submit_job: unknown condition "o:nobody" (...)
//
// FLARE's wider condition grammar (lists of conditions, "not ...",
// "o:<org name>", "n:<user name>", the spellings "all" and "no",
// case-insensitive names, right categories) is refused rather than guessed
// at, so a FLARE file using it fails to load instead of granting something
// unintended.
package authz
