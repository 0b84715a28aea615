"""The launcher's entry point (__main__.py of the zip that plugins/trainer
builds for a job): it sets the process's limits, before any code of the
job's runs, then starts the harness, which confines the process before it
imports the job's script. hearth_launch.py, written by the site into the
same zip, holds LIMITS and SANDBOX."""
import resource

import hearth_launch

_L = hearth_launch.LIMITS
# Hard and soft alike, so that the job cannot raise them again; CPU time's
# soft limit sends SIGXCPU (the harness reports it and exits), its hard
# limit, a few seconds later, SIGKILL.
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
if _L.get("memory"):
    resource.setrlimit(resource.RLIMIT_AS, (_L["memory"], _L["memory"]))
if _L.get("cpu_seconds"):
    resource.setrlimit(resource.RLIMIT_CPU, (_L["cpu_seconds"], _L["cpu_seconds"] + 5))
if _L.get("file_size"):
    # Python ignores SIGXFSZ: a write past the bound fails with EFBIG.
    resource.setrlimit(resource.RLIMIT_FSIZE, (_L["file_size"], _L["file_size"]))
if _L.get("open_files"):
    resource.setrlimit(resource.RLIMIT_NOFILE, (_L["open_files"], _L["open_files"]))

import hearth_trainer  # noqa: E402 (after the limits, on purpose)

hearth_trainer.main(_L, hearth_launch.SANDBOX)
