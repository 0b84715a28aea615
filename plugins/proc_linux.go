package plugins

import "syscall"

// dieWithHost has the kernel kill a plugin when the process that started
// it dies, however it dies (a site killed with SIGKILL included), so that
// no plugin (a job's PyTorch trainer, say) outlives its site. Linux sends
// it when the thread that forked the plugin ends; Go's runtime keeps its
// threads unless a goroutine that locked one exits, which the loader's
// callers do not.
func dieWithHost(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
