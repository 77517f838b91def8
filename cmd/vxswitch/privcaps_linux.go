//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// keptCaps are the capabilities a root daemon without site.user keeps once
// its TAPs and sockets are open: CAP_NET_ADMIN (TAPs, `ip` for a reload's
// addresses, socket options), CAP_NET_RAW and CAP_NET_BIND_SERVICE (IKE on
// port 500, a segment added by reload).
const keptCaps = 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW | 1<<unix.CAP_NET_BIND_SERVICE

// errThreads is returned where the runtime cannot change every thread's
// credentials (a binary built with cgo, as the race detector needs).
var errThreads = errors.New("this binary was built with cgo (the race detector needs it), so the Go runtime cannot reach every thread's capabilities; the release build (CGO_ENABLED=0) limits them")

// limitCapabilities leaves every thread of a root process with keptCaps
// only: the bounding set first (while CAP_SETPCAP is still effective), the
// ambient set cleared, then effective and permitted set to keptCaps and
// inheritable emptied. Capabilities belong to threads, not processes, so
// each step runs on every thread (syscall.AllThreadsSyscall). It then
// reads every thread's sets back from /proc and fails unless they are
// exactly that. uid 0 without capabilities still owns root's files: that
// is why site.user, which drops to a user of its own, is better still.
func limitCapabilities() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	bounding := true // the bounding set is down to keptCaps
	for c := uintptr(0); c <= uintptr(last); c++ {
		if keptCaps&(1<<c) != 0 {
			continue
		}
		// Not in the bounding set already (a systemd unit's
		// CapabilityBoundingSet, setpriv): nothing to drop, and dropping
		// would need CAP_SETPCAP, which such a unit does not grant.
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, c, 0, 0, 0); err == nil && in == 0 {
			continue
		}
		if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); e != 0 {
			switch e {
			case syscall.ENOTSUP:
				return errThreads
			case syscall.EPERM:
				// no CAP_SETPCAP: a supervisor set the bounding set and
				// kept this one in it; it stays, the rest goes below
				bounding = false
				continue
			}
			return fmt.Errorf("bounding set: drop capability %d: %w", c, e)
		}
	}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); e != 0 {
		return fmt.Errorf("ambient set: clear: %w", e)
	}
	// Keep those of keptCaps the process has (a unit may grant fewer).
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	keep := uint32(keptCaps) & data[0].Permitted
	data = [2]unix.CapUserData{{Effective: keep, Permitted: keep}}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return checkThreadCaps(os.Getpid(), uint64(keep), bounding)
}

// lastCap is the highest capability number this kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("capabilities: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < unix.CAP_NET_RAW || n > 63 {
		return 0, fmt.Errorf("capabilities: /proc/sys/kernel/cap_last_cap says %q", b)
	}
	return n, nil
}

// threadCaps are one thread's capability sets as /proc/PID/task/TID/status
// shows them.
type threadCaps struct {
	TID                     string
	Inh, Prm, Eff, Bnd, Amb uint64
}

// readThreadCaps reads the capability sets of every thread of pid.
func readThreadCaps(pid int) ([]threadCaps, error) {
	dirs, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(dirs) == 0 {
		return nil, fmt.Errorf("threads of %d: none found (%v)", pid, err)
	}
	var out []threadCaps
	for _, path := range dirs {
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread ended
			}
			return nil, err
		}
		tc := threadCaps{TID: filepath.Base(filepath.Dir(path))}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":\t")
			if !ok {
				continue
			}
			p := map[string]*uint64{"CapInh": &tc.Inh, "CapPrm": &tc.Prm, "CapEff": &tc.Eff, "CapBnd": &tc.Bnd, "CapAmb": &tc.Amb}[k]
			if p != nil {
				if *p, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
					return nil, fmt.Errorf("%s: %s: %w", path, k, err)
				}
			}
		}
		out = append(out, tc)
	}
	return out, nil
}

// checkThreadCaps fails unless every thread of pid has exactly want as
// its effective and permitted sets, nothing inheritable or ambient, and,
// where bounding, nothing outside keptCaps in its bounding set.
func checkThreadCaps(pid int, want uint64, bounding bool) error {
	ts, err := readThreadCaps(pid)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Eff != want || t.Prm != want || (bounding && t.Bnd&^keptCaps != 0) || t.Inh != 0 || t.Amb != 0 {
			return fmt.Errorf("thread %s kept capabilities: eff %016x prm %016x bnd %016x inh %016x amb %016x, want %016x",
				t.TID, t.Eff, t.Prm, t.Bnd, t.Inh, t.Amb, want)
		}
	}
	return nil
}
