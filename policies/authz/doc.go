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
// The file is NVIDIA FLARE's authorization.json, format_version "1.0", and
// a FLARE site's file imports unchanged and decides as FLARE decides
// (nvflare/fuel/sec/authz.py; the exceptions are listed below):
//
//	{"format_version": "1.0",
//	 "permissions": {
//	   "project_admin": "any",
//	   "org_admin": {"submit_job": "none", "manage_job": "o:submitter", "operate": "o:site"},
//	   "lead": {"submit_job": "any", "manage_job": "n:submitter", "shell_commands": "none", "ls": "o:site"},
//	   "member": {"submit_job": ["o:site", "O:orgA", "N:john"], "view": "any"}}}
//
// permissions maps a role to a control for every right, or to an object
// mapping rights to controls. A role is any name: FLARE's project_admin,
// org_admin, lead and member, or a site's own (the local role its
// authenticator maps an identity to). A control is one condition or a
// non-empty list of them. The conditions are:
//
//	any, all        always met (also written true)
//	none, no        never met (also written false)
//	o:site          the requester's org is this site's org
//	o:submitter     the requester's org is the job submitter's org
//	o:<org>         the requester's org is <org>
//	n:submitter     the requester is the job's submitter
//	n:<name>        the requester's name is <name>
//	not <cond>      <cond> is not met
//
// org: and name: may stand for o: and n:. Every name is folded as FLARE
// folds it before anything is compared (Python's lower case, and runs of
// white space as one space, none at the ends): role names, rights, the
// conditions, and the requester's, submitter's and site's names and orgs.
// So "O:OrgA" is o:orga, "NOT  O:Site" is not o:site, and "Hospital A"
// and "hospital  a" are one org.
//
// # Rights and command categories
//
// As in FLARE, every command is a right, commands are grouped into
// categories, and each category is a right that covers its commands
// (FLARE's COMMAND_CATEGORIES, nvflare/security/security.py):
//
//	manage_job      abort, abort_job, delete_job, delete_workspace, configure_job_log
//	view            check_status, show_scopes, show_stats, reset_errors, show_errors,
//	                list_jobs, get_job_meta
//	operate         sys_info, report_resources, report_env, restart, shutdown,
//	                remove_client, disable_client, enable_client, set_timeout, call,
//	                configure_site_log
//	shell_commands  cat, grep, head, tail, ls, pwd
//	download_job    download_job (the category and its one command)
//
// The rights in no category are submit_job, clone_job and byoc (a job
// bringing its own code), and FLARE's commands that are authorized by their
// own name: list_job, get_job_log, download_job_components, app_command,
// report_version, and the right server-predeployed-flwr.
//
// Hearth's actors ask today for submit_job when a job is submitted (at the
// server, and again at each site it reaches), view to list jobs and show a
// job's status, manage_job to abort a job and download_job to download one.
// A caller may ask for FLARE's command instead (list_jobs, get_job_meta,
// abort_job, ...), which Decide answers exactly as FLARE does.
//
// # Evaluation
//
// Decide follows FLARE's order. For a role given one control, that control
// decides every right. Otherwise a command is decided by its own control if
// the role lists it, else by its category's, else it is denied: a command's
// own control wins over its category's, wherever either is written. Within
// a control the "not" conditions come first and any that is met denies;
// then, if the control has conditions that allow, one of them must be met;
// a control of "not" conditions only allows when none of them is met.
// Without a job submitter o:submitter and n:submitter are not met, so their
// "not" forms are.
//
// A request for a whole category, as some of Hearth's actors make (FLARE's
// never do), is granted only when the category's own control grants it, as
// FLARE's evaluator would answer, and every command of it that the role
// lists on its own is granted too. So "abort_job": "none" also refuses
// manage_job, and a category the role does not list is not granted even if
// all of its commands are.
//
// # Where Hearth is stricter than FLARE
//
// Each of these refuses where FLARE would grant, or refuses a file FLARE
// would load but Hearth could misread; none grants anything FLARE would not.
//
//   - A role named super is a role like any other; FLARE's evaluator lets
//     it do everything, for its own tests.
//   - Only an admin with a role, a name and an org holds rights, and text
//     that is not valid UTF-8 is denied, not compared.
//   - A "not" condition that cannot be decided denies: not o:site without a
//     site org, not o:submitter or not n:submitter with a submitter whose
//     org or name is empty.
//   - An unknown right in the policy, and one asked of Decide, are refused:
//     FLARE stores any name and grants a role given one control any right it
//     is asked. Rights asked of Decide compare exactly (they come from code).
//   - Keys that FLARE's JSON reader would let overwrite each other, or that
//     fold alike ("Lead" and "lead"), are refused, as are unknown top-level
//     keys, a condition with an empty target ("o:"), n:site ("site" is
//     reserved; FLARE would read it as the user named site), and U+FFFD or
//     a lone surrogate escape in a name.
//
// One form is Hearth's own: the booleans true (any) and false (none),
// which FLARE refuses.
//
// # Parsing
//
// Parsing is strict and fails closed: anything outside the format above, a
// duplicate key, a format_version other than "1.0", a value of the wrong
// type, an empty list, text that is not UTF-8 or trailing data is an error
// naming where it is, e.g.
//
//	authz: permissions.member.submit_job[2]: condition "N:" names no user
//
// Comments are not JSON: FLARE's documented sample carries "#" comments,
// which FLARE's own json.load refuses too; without them it parses, and
// testdata/flare_sample.txt shows its decisions.
package authz
