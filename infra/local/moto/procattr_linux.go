package moto

import "syscall"

// procAttr runs moto_server in its own process group, and has the kernel
// stop it when the process that started it dies without calling Close (a
// killed runner or test binary), so it never lingers on its port.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
