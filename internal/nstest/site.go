//go:build linux

package nstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Site is one site namespace.
type Site struct {
	Name  string     // logical name given in SiteSpec
	NS    string     // network namespace name (ip netns)
	Index int        // position in Net.Sites
	Addr  netip.Addr // IPv4 underlay address, 192.0.2.<Index+1>
	Addr6 netip.Addr // IPv6 underlay address, 2001:db8::<Index+1>
	MTU   int        // underlay MTU
	Dev   string     // underlay interface, UnderlayDev

	t   testing.TB
	net *Net
}

func (s *Site) String() string { return s.Name }

// Command returns an exec.Cmd that runs args in the site's namespace
// (ip netns exec, which also gives the process the namespace's /sys).
func (s *Site) Command(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", s.NS}, args...)...)
}

// CommandContext is Command with a context that kills the process.
func (s *Site) CommandContext(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", s.NS}, args...)...)
}

// Exec runs args in the namespace and waits. The error carries the combined
// output.
func (s *Site) Exec(args ...string) error {
	out, err := s.Command(args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %s: %w: %s", s.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Output runs args in the namespace and returns its standard output. The
// error carries standard error.
func (s *Site) Output(args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := s.Command(args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w: %s", s.Name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Run is Output that fails the test on error.
func (s *Site) Run(args ...string) string {
	s.t.Helper()
	out, err := s.Output(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// Proc is a long-running process started with Site.Start.
type Proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // set before done is closed

	stopOnce sync.Once
}

// Start starts args in the namespace and returns at once. The process is
// stopped (SIGTERM, SIGKILL after 3s) at cleanup, before the namespaces are
// removed; its combined output is logged if the test failed. Start fails the
// test if the process cannot be started.
func (s *Site) Start(args ...string) *Proc {
	s.t.Helper()
	p, err := s.start(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *Site) start(args ...string) (*Proc, error) {
	cmd := s.Command(args...)
	buf := &syncBuffer{}
	cmd.Stdout = buf
	cmd.Stderr = buf
	// Kill the child if the test binary dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", s.Name, strings.Join(args, " "), err)
	}
	p := &Proc{name: s.Name + ": " + strings.Join(args, " "), cmd: cmd, out: buf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.net.mu.Lock()
	s.net.procs = append(s.net.procs, p)
	s.net.mu.Unlock()
	return p, nil
}

// Pid returns the process id (ip netns exec execs the command in place).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output returns everything the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// WaitOutput waits up to timeout until the process's output from byte
// from on (a len(Output()) taken earlier, or 0) contains s.
func (p *Proc) WaitOutput(from int, s string, timeout time.Duration) error {
	return WaitFor(timeout, func() error {
		if out := p.Output()[from:]; !strings.Contains(out, s) {
			return fmt.Errorf("%s has not written %q yet: %q", p.name, s, out)
		}
		return nil
	})
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error.
func (p *Proc) Wait() error { <-p.done; return p.err }

// Exited reports whether the process has exited, and its exit error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM, waits up to 3s, then SIGKILL, and returns the exit
// error (nil for a clean exit, or for an exit caused by the SIGTERM).
func (p *Proc) Stop() error {
	p.stop()
	if p.err != nil {
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return nil
			}
		}
	}
	return p.err
}

func (p *Proc) stop() {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	<-p.done
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Do runs fn on an OS thread that has entered the site's namespace, then
// moves the thread back. Sockets, TAP devices and netlink sockets created
// inside fn belong to the site's namespace and keep working from any
// goroutine afterwards; so do child processes started inside fn. Goroutines
// fn starts run in the root namespace: anything they create later is NOT in
// the site. A panic in fn is returned as an error.
func (s *Site) Do(fn func() error) error {
	target, err := os.Open("/run/netns/" + s.NS)
	if err != nil {
		return fmt.Errorf("%s: open namespace: %w", s.Name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		// A fresh goroutine: if the namespace cannot be restored, the
		// thread stays locked and dies with the goroutine.
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("%s: open own namespace: %w", s.Name, err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("%s: setns: %w", s.Name, err)
			return
		}
		ferr := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%s: panic in Do: %v", s.Name, r)
				}
			}()
			return fn()
		}()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("%s: setns back: %w", s.Name, err))
			return // thread stays locked and is thrown away
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen is net.Listen inside the site's namespace.
func (s *Site) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := s.Do(func() (err error) { l, err = net.Listen(network, address); return err })
	return l, err
}

// ListenPacket is net.ListenPacket inside the site's namespace.
func (s *Site) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := s.Do(func() (err error) { c, err = net.ListenPacket(network, address); return err })
	return c, err
}

// Dial is net.DialTimeout inside the site's namespace (the socket is created
// and connected in the namespace).
func (s *Site) Dial(network, address string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := s.Do(func() (err error) { c, err = net.DialTimeout(network, address, timeout); return err })
	return c, err
}
