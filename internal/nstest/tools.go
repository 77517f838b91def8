//go:build linux

package nstest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrLoss is returned (wrapped) by Ping when replies are missing.
var ErrLoss = errors.New("nstest: ping lost packets")

// ErrChecksum is returned (wrapped) by Transfer when the bytes received differ
// from the bytes sent.
var ErrChecksum = errors.New("nstest: transfer checksum mismatch")

// PingResult is the summary of one ping run.
type PingResult struct {
	Sent, Received int
	RTT            time.Duration // average round trip; 0 if nothing came back
}

var (
	pingCountRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingRTTRE   = regexp.MustCompile(`= [\d.]+/([\d.]+)/`)
)

// PingStats pings addr (IPv4 or IPv6) from the site with ICMP payloads of
// size bytes (ping -s), count times, 20 ms apart; df sets "don't fragment"
// (ping -M do, else -M dont). Each reply is awaited at most 2 s. The error is
// nil whenever ping ran and printed its summary, whatever the loss.
func (s *Site) PingStats(addr string, size, count int, df bool) (PingResult, error) {
	pmtu := "dont"
	if df {
		pmtu = "do"
	}
	deadline := strconv.Itoa(count/10 + 3)
	out, err := s.Output("ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.02", "-W", "2",
		"-w", deadline, "-s", strconv.Itoa(size), "-M", pmtu, addr)
	m := pingCountRE.FindStringSubmatch(out)
	if m == nil {
		return PingResult{}, fmt.Errorf("%s: ping %s -s %d: no summary: %w: %s", s.Name, addr, size, err, out)
	}
	var r PingResult
	r.Sent, _ = strconv.Atoi(m[1])
	r.Received, _ = strconv.Atoi(m[2])
	if m := pingRTTRE.FindStringSubmatch(out); m != nil {
		ms, _ := strconv.ParseFloat(m[1], 64)
		r.RTT = time.Duration(ms * float64(time.Millisecond))
	}
	return r, nil
}

// Ping is PingStats that returns an error wrapping ErrLoss unless every one
// of count echo requests was answered.
func (s *Site) Ping(addr string, size, count int, df bool) error {
	r, err := s.PingStats(addr, size, count, df)
	if err != nil {
		return err
	}
	if r.Received < count {
		return fmt.Errorf("%s -> %s size %d df %v: %d/%d replies: %w", s.Name, addr, size, df, r.Received, count, ErrLoss)
	}
	return nil
}

// PingMesh pings, from every site, target(other) of every other site, a few
// pairs at a time, and returns all failures joined (nil if every pair got
// every reply).
func (n *Net) PingMesh(target func(*Site) string, size, count int, df bool) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
	)
	for _, a := range n.Sites {
		for _, b := range n.Sites {
			if a == b {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := a.Ping(target(b), size, count, df); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// TransferResult reports a Transfer.
type TransferResult struct {
	Bytes    int64
	Duration time.Duration
}

// Gbps returns the goodput in Gbit/s.
func (r TransferResult) Gbps() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes) * 8 / r.Duration.Seconds() / 1e9
}

// Transfer sends size pseudo-random bytes over one TCP connection from site
// from to a listener on site to at addr (an IP address of to, port chosen
// automatically) and checks that the SHA-256 of what arrived equals that of
// what was sent. It gives up after timeout. Everything runs in this process;
// no external tool is needed.
func (n *Net) Transfer(from, to *Site, addr netip.Addr, size int64, timeout time.Duration) (TransferResult, error) {
	l, err := to.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return TransferResult{}, fmt.Errorf("transfer listen: %w", err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	type rx struct {
		sum [32]byte
		n   int64
		err error
	}
	rxc := make(chan rx, 1)
	go func() {
		var r rx
		if tl, ok := l.(*net.TCPListener); ok {
			_ = tl.SetDeadline(deadline)
		}
		c, err := l.Accept()
		if err != nil {
			r.err = fmt.Errorf("transfer accept: %w", err)
			rxc <- r
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		h := sha256.New()
		r.n, r.err = io.Copy(h, c)
		copy(r.sum[:], h.Sum(nil))
		rxc <- r
	}()

	start := time.Now()
	c, err := from.Dial("tcp", l.Addr().String(), time.Until(deadline))
	if err != nil {
		return TransferResult{}, fmt.Errorf("transfer dial %s: %w", l.Addr(), err)
	}
	_ = c.SetDeadline(deadline)
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{'v', 'x'}), size), h)
	sent, werr := io.Copy(c, src)
	if werr == nil {
		werr = c.(*net.TCPConn).CloseWrite()
	}
	if werr != nil {
		c.Close()
		return TransferResult{Bytes: sent}, fmt.Errorf("transfer send after %d bytes: %w", sent, werr)
	}
	r := <-rxc
	c.Close()
	res := TransferResult{Bytes: r.n, Duration: time.Since(start)}
	if r.err != nil {
		return res, fmt.Errorf("transfer receive after %d bytes: %w", r.n, r.err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if r.n != size || sum != r.sum {
		return res, fmt.Errorf("got %d bytes sha256 %x, want %d bytes %x: %w", r.n, r.sum[:8], size, sum[:8], ErrChecksum)
	}
	return res, nil
}

// WaitListen waits up to timeout until something on site s listens on TCP
// port (ss), or until proc, if not nil, has exited.
func (s *Site) WaitListen(port int, timeout time.Duration, proc *Proc) error {
	p := ":" + strconv.Itoa(port)
	return WaitFor(timeout, func() error {
		if proc != nil {
			if ex, err := proc.Exited(); ex {
				return fmt.Errorf("%s exited before listening on %s: %v: %s: %w", proc.name, p, err, proc.Output(), errStop)
			}
		}
		out, err := s.Output("ss", "-Hltn", "sport = "+p)
		if err != nil {
			return err
		}
		if !strings.Contains(out, p) {
			return fmt.Errorf("nothing listens on TCP %s yet", p)
		}
		return nil
	})
}

// Iperf3 runs an iperf3 server on site server bound to addr and an iperf3
// TCP client on site client for d (whole seconds, at least 1), with extra
// client arguments (e.g. "-P", "2"), and returns the received goodput in
// Gbit/s. It needs iperf3 (see RequireTool); the run is bounded by d + 20s.
func (n *Net) Iperf3(client, server *Site, addr netip.Addr, d time.Duration, extra ...string) (float64, error) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		return 0, fmt.Errorf("iperf3: %w: %w", err, ErrTool)
	}
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	const portNum = 5201
	port := strconv.Itoa(portNum)
	srv, err := server.start("iperf3", "-s", "-1", "-B", addr.String(), "-p", port)
	if err != nil {
		return 0, fmt.Errorf("iperf3 server: %w", err)
	}
	defer srv.stop()
	if err := server.WaitListen(portNum, 10*time.Second, srv); err != nil {
		return 0, fmt.Errorf("iperf3 server: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+20*time.Second)
	defer cancel()
	args := append([]string{"iperf3", "-c", addr.String(), "-p", port, "-t", strconv.Itoa(secs), "-J"}, extra...)
	out, err := client.CommandContext(ctx, args...).Output()
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, fmt.Errorf("iperf3 client: %v; output: %.300s: %w", err, out, jerr)
	}
	if res.Error != "" {
		return 0, fmt.Errorf("iperf3 client: %s", res.Error)
	}
	if err != nil {
		return 0, fmt.Errorf("iperf3 client: %w", err)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// errStop makes WaitFor give up at once.
var errStop = errors.New("nstest: stop waiting")

// WaitFor calls cond every 20 ms until it returns nil, and returns the last
// error if that does not happen within timeout. An error wrapping errStop
// ends the wait early.
func WaitFor(timeout time.Duration, cond func() error) error {
	end := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if errors.Is(err, errStop) || time.Now().After(end) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// VXLAN configures a Linux kernel vxlan device (see Site.KernelVXLAN).
type VXLAN struct {
	Dev     string       // interface name; default "vx<VNI>"
	VNI     uint32       // VXLAN network identifier
	Local   netip.Addr   // local underlay address; default the site's Addr (or Addr6 if Remotes are IPv6)
	Remotes []netip.Addr // peers; one all-zero-MAC flood entry each (head-end replication)
	Port    int          // UDP destination port; default 4789
	MTU     int          // overlay MTU; default 1500
	Address netip.Prefix // optional address on the device, e.g. 10.11.129.1/24
	MAC     string       // optional fixed MAC address
}

// KernelVXLAN creates and brings up a kernel vxlan device in the site's
// namespace, with learning on, the outer UDP checksum off over IPv4 and
// DF unset on the outer packets (the kernel fragments them when they exceed
// the underlay MTU), and a static flood entry for each remote
// (bridge fdb append 00:00:00:00:00:00 dst <remote>).
func (s *Site) KernelVXLAN(v VXLAN) error {
	if v.Dev == "" {
		v.Dev = "vx" + strconv.FormatUint(uint64(v.VNI), 10)
	}
	if v.Port == 0 {
		v.Port = 4789
	}
	if v.MTU == 0 {
		v.MTU = 1500
	}
	if !v.Local.IsValid() {
		v.Local = s.Addr
		if len(v.Remotes) > 0 && v.Remotes[0].Is6() {
			v.Local = s.Addr6
		}
	}
	args := []string{"ip", "link", "add", v.Dev}
	if v.MAC != "" {
		args = append(args, "address", v.MAC)
	}
	args = append(args, "mtu", strconv.Itoa(v.MTU), "type", "vxlan", "id", strconv.FormatUint(uint64(v.VNI), 10),
		"local", v.Local.String(), "dstport", strconv.Itoa(v.Port), "ttl", "64")
	if v.Local.Is6() {
		args = append(args, "udp6zerocsumtx", "udp6zerocsumrx")
	}
	cmds := [][]string{args}
	for _, r := range v.Remotes {
		cmds = append(cmds, []string{"bridge", "fdb", "append", "00:00:00:00:00:00", "dev", v.Dev, "dst", r.String()})
	}
	if v.Address.IsValid() {
		cmds = append(cmds, []string{"ip", "addr", "add", v.Address.String(), "dev", v.Dev})
	}
	cmds = append(cmds, []string{"ip", "link", "set", v.Dev, "up"})
	for _, c := range cmds {
		if err := s.Exec(c...); err != nil {
			return fmt.Errorf("kernel vxlan: %w", err)
		}
	}
	return nil
}

// KernelVXLANMesh gives every site a kernel vxlan device for vni with every
// other site as a remote (IPv4 underlay), and the overlay address
// overlay(site) on it if overlay is not nil.
func (n *Net) KernelVXLANMesh(vni uint32, mtu int, overlay func(*Site) netip.Prefix) error {
	for _, s := range n.Sites {
		v := VXLAN{VNI: vni, MTU: mtu}
		for _, o := range n.Sites {
			if o != s {
				v.Remotes = append(v.Remotes, o.Addr)
			}
		}
		if overlay != nil {
			v.Address = overlay(s)
		}
		if err := s.KernelVXLAN(v); err != nil {
			return err
		}
	}
	return nil
}
