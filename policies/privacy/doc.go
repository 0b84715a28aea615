// Package privacy is a site's privacy scopes engine: it parses the site's
// local/privacy.json, NVIDIA FLARE's format, decides the scope a job runs
// in at this site, and builds the job's filter chains with the site's
// filters first. The site alone decides: nothing in a job can remove,
// reorder or weaken the filters of the site's scope.
//
// Use follows policies/authz: Parse (or ParseFile) turns the file into a
// Policy, strictly; (*Policy).Scope decides a job's scope, refusing with a
// reason; Chain puts the scope's filters and the job's own in order, each
// Link saying where it came from for the audit; ParseFilters parses a
// job's own filter list from its manifest. The filters themselves are
// actors/learning/filter's (Build makes them).
//
// # Policy format
//
//	{"scopes": [
//	   {"name": "public",
//	    "properties": {"train_dataset": "/data/public/train"},
//	    "task_data_filters": [],
//	    "task_result_filters": [
//	      {"path": "nvflare.app_common.filters.percentile_privacy.PercentilePrivacy",
//	       "args": {"percentile": 10, "gamma": 0.02}}]},
//	   {"name": "private",
//	    "properties": {"dp_budget": {"epsilon": 8, "delta": 1e-5}},
//	    "task_result_filters": [
//	      {"path": "exclude_vars", "args": {"exclude_vars": "^embedding\\."}},
//	      {"path": "gaussian_privacy", "args": {"noise_multiplier": 1.1, "clip_norm": 1}}]}],
//	 "default_scope": "public"}
//
// scopes is a non-empty list of scopes. A scope has a name (required,
// unique, 1 to MaxScopeName printable bytes, compared exactly) and,
// optionally, properties (an object) and task_data_filters (applied to
// task data entering the site: the global model) and task_result_filters
// (applied to task results leaving it: the site's update), each a list of
// at most MaxFilters filters, absent meaning empty. default_scope,
// optional, names one of the scopes: the scope of a job that names none.
//
// A filter is {"path": P, "args": {...}}; args is optional (every argument
// then takes its default), and "direction" may repeat the list's own
// direction as FLARE writes it ("in" for task data, "out" for task results,
// in any case). P is a built-in filter's name or FLARE's class path of the
// same filter:
//
//	exclude_vars        nvflare.app_common.filters.exclude_vars.ExcludeVars
//	                    (or nvflare.app_common.filters.ExcludeVars)
//	    exclude_vars    a list of tensor names, or a regular expression (Go RE2)
//	percentile_privacy  nvflare.app_common.filters.percentile_privacy.PercentilePrivacy
//	                    (or nvflare.app_common.filters.PercentilePrivacy)
//	    percentile      number in [0, 100], default 10
//	    gamma           number > 0, default 0.01
//	    steps           whole number ≥ 1, default 1
//	svt_privacy         nvflare.app_common.filters.svt_privacy.SVTPrivacy
//	                    (or nvflare.app_common.filters.SVTPrivacy)
//	    fraction        number in (0, 1], default 0.1
//	    epsilon         number > 0, default 0.1
//	    noise_var       number > 0, default 0.1
//	    gamma           number > 0, default 1e-5
//	    tau             number ≥ 0, default 1e-6
//	    replace         true or false, default true
//	    steps           whole number ≥ 1, default 1
//	gaussian_privacy    (Hearth's own)
//	    noise_multiplier  number, required (σ; dp's range)
//	    clip_norm         number > 0, required (C)
//	quantize            (Hearth's own)
//	    codec           a codec's canonical name, required (float16, bfloat16,
//	                    int8-block64, ...)
//
// What each filter does, and where it differs from FLARE's, is
// actors/learning/filter's documentation. Any other path is refused with
// the list of known ones: a site policy naming a filter Hearth cannot run
// must not load as if it protected anything. So is any other argument,
// FLARE's data_kinds and SVT's epsilon_threshold, epsilon_query and
// epsilon_release overrides included, and a value of the wrong type or out
// of range.
//
// # A site's own filters: plugin binaries
//
// A site's lists (never a job's) may name a filter of the site's own, a
// plugin binary (plugins/filter runs it), pinned by its SHA-256 as
// authentication.json pins an authenticator:
//
//	{"plugin": {"path": "/opt/hearth/hearth-filter-clip", "sha256": "<64 hex digits>"},
//	 "timeout": "60s",
//	 "args": {"max_abs": 0.05}}
//
// plugin, with both its keys, is required, and "path" is then absent (an
// entry is a built-in or a plugin, not both). A relative path is relative
// to the kit's folder; sha256 is what sha256sum prints, in either case.
// timeout, the deadline of each call, is a Go duration from 100ms to 30m,
// 60s when absent. args, optional, is any JSON object (at most
// MaxPluginArgs bytes), handed verbatim to the plugin. "direction" may
// repeat the list's. The FilterSpec has Name NamePlugin and Plugin set;
// Chain keeps it in the site's order, and Build asks a PluginFilters
// (plugins/filter's Site) for the running filter. A job's list naming
// "plugin" or "timeout" is refused ("a job cannot load a plugin binary"),
// and so is a forged job FilterSpec carrying one: only the site's own
// privacy.json may make a site run a binary.
//
// properties may hold anything, as in FLARE; Hearth reads one, dp_budget
// {"epsilon": E, "delta": D} (E finite and positive, D in (0, 1), both
// required): the differential privacy budget a job in the scope may spend
// at this site (Scope.Budget). The others are kept as written
// (Scope.Property) for the executors that want them.
//
// # Deciding
//
// Scope("") is the default scope, Scope(name) the named one. A job naming a
// scope the site does not have is refused (ErrUnknownScope), and so is one
// naming none at a site without a default_scope (ErrNoDefaultScope):
// FLARE's rules, which a site applies when a job joins and a pre-flight
// shows. Chain then builds the chains: the scope's filters, then the job's.
//
// A job's own filters (ParseFilters) are a list in the same format, without
// "direction", given as a manifest's parsed YAML or JSON value.
//
// # Where Hearth is stricter than FLARE
//
//   - FLARE applies no privacy control when privacy.json is missing or has
//     no scopes; Hearth refuses a file without scopes, and every kit has
//     the file (the default's "public" scope has no filters).
//   - A scope's name is 1 to MaxScopeName printable bytes (FLARE takes any
//     string), and a policy holds at most MaxScopes scopes.
//   - Unknown top-level keys are refused; so are FLARE's "components"
//     (filters referring to components by id), a filter's "name" and
//     "class_path" forms (path only), an empty default_scope, and filters
//     FLARE would build but Hearth does not have.
//   - FLARE's filters accept arguments out of range and then do nothing
//     (PercentilePrivacy with gamma ≤ 0, ExcludeVars with no names); Hearth
//     refuses them when the policy is parsed.
//
// # Parsing
//
// Parsing is strict and fails closed: text that is not UTF-8, a duplicate
// key, nesting deeper than 32, a document above MaxPolicyBytes, trailing
// data, or any departure from the format above is a *ParseError naming the
// JSON path of what it refuses, e.g.
//
//	privacy: scopes[1].task_result_filters[0].args.gamma: -1 is not a finite positive number
//
// Comments are not JSON: FLARE reads the file with json.load and refuses
// them too.
package privacy
