//go:build !linux

package moto

import "syscall"

// procAttr runs moto_server in its own process group.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
