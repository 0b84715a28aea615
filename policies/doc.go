// Package policies holds the default policy files every startup kit starts
// with; the engines that parse and decide on them are its packages:
// authz (authorization.json, FLARE's whole grammar) and privacy
// (privacy.json: scopes, their filters and DP budgets).
//
// Defaults hands the default files to provisioning (cmd/hearth passes them
// to bus/provision), which writes them into every kit's local/ folder,
// where the site reviews them. Where they lie in a kit, and how a site's
// own file overrides a default, is package kit's layout (bus/kit); the kit's
// signed manifest covers the defaults, so a default cannot be swapped or
// added unnoticed. Nothing under policies/ imports the bus but bus/pki
// (integration/imports_test.go): engines decide from values, and
// identities are values.
//
// The default files, in NVIDIA FLARE's formats so that FLARE files import:
//
//	authorization.json  federated authorization: for each admin role the
//	                    rights (FLARE's commands and categories) it holds at
//	                    this site, each with its conditions ("any", "none",
//	                    "o:site", "n:submitter", "o:<org>", lists, "not ...");
//	                    see authz. Rights not listed are denied.
//	privacy.json        privacy scopes: named filter chains applied to task data
//	                    entering and task results leaving the site
//	                    (task_data_filters, task_result_filters); a job picks a
//	                    scope, default_scope applies otherwise, and the site's
//	                    scope always runs before any filter of the job; a
//	                    scope's properties.dp_budget caps the ε spent there.
//	authentication.json (no default) the site's authenticator plugin, pinned
//	                    by hash, and the commands it checks (plugins/authn).
//	resources.json      what the site offers to jobs: num_of_gpus and
//	                    mem_per_gpu_in_GiB (0: CPU only); a job's
//	                    resources: section that does not fit what is free
//	                    is refused; "aggregate": false (absent: true)
//	                    refuses a swarm job naming the site among its
//	                    aggregators (policies/resources).
//	components.json     what a job may build at the site: trainers,
//	                    workflows, filters, and job scripts by SHA-256
//	                    (or any the byoc right lets in); checked before
//	                    anything is built (policies/components).
//	attestation.json    (no default) what the site demands of aggregation
//	                    hosts' evidence before it seals an update to them:
//	                    the TEE kinds, reference values, re-attestation
//	                    (policies/attestation). Without it the site joins
//	                    no job placed on an attested host.
package policies
