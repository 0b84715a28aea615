package authz

// Right is something an admin may be allowed to do at a site, named as in
// FLARE's authorization.json: one of FLARE's command categories, one of the
// commands in them, or a right that belongs to no category (see the
// package documentation for the table). Rights are lower case; Valid and
// Decide compare them exactly, because a Right comes from code, while the
// rights named in a policy file are matched case-insensitively.
type Right string

// The rights Hearth's own commands ask for, and FLARE's command categories.
const (
	// RightSubmitJob is submitting a new job.
	RightSubmitJob Right = "submit_job"
	// RightCloneJob is cloning an existing job.
	RightCloneJob Right = "clone_job"
	// RightManageJob is the category of the commands that change an
	// existing job: abort, delete, configure its log.
	RightManageJob Right = "manage_job"
	// RightDownloadJob is downloading an existing job and its results; it
	// is both a category and the one command in it.
	RightDownloadJob Right = "download_job"
	// RightView is the category of the read-only commands: status, job
	// lists, a job's metadata, statistics and errors, privacy scopes.
	RightView Right = "view"
	// RightOperate is the category of the commands that operate the site:
	// system information, restart, shutdown, enabling clients, its log.
	RightOperate Right = "operate"
	// RightShellCommands is the category of the read-only shell commands
	// (cat, grep, head, tail, ls, pwd).
	RightShellCommands Right = "shell_commands"
	// RightBYOC is running a job that brings its own (custom) code.
	RightBYOC Right = "byoc"
)

// FLARE's commands that Hearth's commands correspond to. A caller that asks
// for the command rather than its category is decided exactly as FLARE
// decides the command, overrides included.
const (
	// RightAbortJob is aborting a job (category manage_job).
	RightAbortJob Right = "abort_job"
	// RightDeleteJob is deleting a job (category manage_job).
	RightDeleteJob Right = "delete_job"
	// RightListJobs is listing jobs (category view).
	RightListJobs Right = "list_jobs"
	// RightGetJobMeta is reading a job's metadata and status (category view).
	RightGetJobMeta Right = "get_job_meta"
	// RightCheckStatus is checking the status of the server or a site
	// (category view).
	RightCheckStatus Right = "check_status"
	// RightShutdown is shutting a site down (category operate).
	RightShutdown Right = "shutdown"
)

// Valid reports whether r is a right FLARE knows: a category, a command in
// one, or a right in none.
func (r Right) Valid() bool {
	_, ok := r.category()
	return ok
}

// Category is the command category r belongs to: itself for a category
// (download_job included), the category for a command in one, and "" for
// a right in no category or an unknown one.
func (r Right) Category() Right {
	c, _ := r.category()
	return c
}

// IsCategory reports whether r is one of FLARE's command categories.
func (r Right) IsCategory() bool {
	c, _ := r.category()
	return c == r
}

// category is FLARE's COMMAND_CATEGORIES (nvflare/security/security.py)
// with the categories themselves and the rights that belong to none:
// category is "" for those, and ok is false for a right FLARE does not
// know. It is a switch, not a table, so that nothing can change it.
func (r Right) category() (category Right, ok bool) {
	switch r {
	case RightManageJob, "abort", RightAbortJob, RightDeleteJob, "delete_workspace", "configure_job_log":
		return RightManageJob, true
	case RightView, RightCheckStatus, "show_scopes", "show_stats", "reset_errors", "show_errors",
		RightListJobs, RightGetJobMeta:
		return RightView, true
	case RightOperate, "sys_info", "report_resources", "report_env", "restart", RightShutdown,
		"remove_client", "disable_client", "enable_client", "set_timeout", "call", "configure_site_log":
		return RightOperate, true
	case RightShellCommands, "cat", "grep", "head", "tail", "ls", "pwd":
		return RightShellCommands, true
	case RightDownloadJob:
		return RightDownloadJob, true
	case RightSubmitJob, RightCloneJob, RightBYOC,
		"list_job", "get_job_log", "download_job_components", "app_command", "report_version",
		"server-predeployed-flwr":
		return "", true
	}
	return "", false
}
