package lambdaenv

import "syscall"

// procAttr puts the emulator in its own process group, and has the kernel
// stop it if the runner dies without cleaning up.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
