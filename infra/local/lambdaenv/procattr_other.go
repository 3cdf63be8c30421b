//go:build !linux

package lambdaenv

import "syscall"

// procAttr puts the emulator in its own process group.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
