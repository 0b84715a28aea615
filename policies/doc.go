// Package policies holds a site's policy engines and the default policy
// files every startup kit starts with. Engines that parse and decide on
// these files come later; today the package only ships the defaults.
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
//	authorization.json  federated authorization: for each admin role
//	                    (project_admin, org_admin, lead, member) the rights
//	                    (submit_job, clone_job, manage_job, download_job, view,
//	                    operate, shell_commands, byoc) it holds at this site, each
//	                    with a condition: "none", "any", "o:site" (the requester
//	                    belongs to this site's org), "o:submitter" (to the job
//	                    submitter's org) or "n:submitter" (is the submitter).
//	                    A role given as a single string holds every right with
//	                    that condition. Rights not listed are denied.
//	privacy.json        privacy scopes: named filter chains applied to task data
//	                    entering and task results leaving the site
//	                    (task_data_filters, task_result_filters); a job picks a
//	                    scope, default_scope applies otherwise, and the site's
//	                    scope always runs before any filter of the job.
//	resources.json      what the site offers to jobs: num_of_gpus and
//	                    mem_per_gpu_in_GiB (0: CPU only).
package policies
