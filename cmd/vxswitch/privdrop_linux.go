//go:build linux

package main

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The binary never gains privileges by exec (it runs only `ip` for a TAP's
// address): no_new_privs from the start, on every thread. The runtime has
// started threads before init runs, so where it can (a binary without
// cgo) it is set on all of them; a cgo build sets it on this thread, and
// the threads cloned from it later inherit it.
func init() { setNoNewPrivs() }

func setNoNewPrivs() error {
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e != 0 {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	return nil
}

// dropPrivileges makes the whole process (every thread) the user uid,
// group gid with no supplementary groups: a non-root uid holds no
// capabilities, so IKE, ESP and reassembly run unprivileged from here on.
// no_new_privs is set too (on every thread where the runtime allows it).
func dropPrivileges(uid, gid int) error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	if os.Getuid() != uid || os.Geteuid() != uid || os.Getgid() != gid {
		return fmt.Errorf("still uid %d/%d gid %d after dropping to %d:%d", os.Getuid(), os.Geteuid(), os.Getgid(), uid, gid)
	}
	return setNoNewPrivs()
}
