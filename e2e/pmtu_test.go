package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/internal/nstest"
)

// Path MTU on a routed underlay (RFC 8899): both sites' links are 1500
// bytes, the router between them carries less (a route MTU), and in the
// black-hole cases its own ICMP errors are dropped (nftables in the router
// namespace), as at many cloud and corporate edges.

// probeTimers shortens the probing timers so that the tests take seconds.
const probeTimers = "[switch]\npmtu_probe_timer = \"200ms\"\npmtu_confirm_timer = \"1s\"\npmtu_raise_timer = \"8s\"\n"

// setRouteMTU sets the router's route MTU toward every site.
func setRouteMTU(t *testing.T, n *nstest.Net, mtu int, v6 bool) {
	t.Helper()
	for i, s := range n.Sites {
		dev := fmt.Sprintf("s%d", i+1)
		args := []string{"ip", "route", "change", s.Addr.String() + "/32", "dev", dev, "mtu", fmt.Sprint(mtu)}
		if v6 {
			args = []string{"ip", "-6", "route", "change", s.Addr6.String() + "/128", "dev", dev, "mtu", fmt.Sprint(mtu)}
		}
		if err := n.Router.Exec(args...); err != nil {
			t.Fatalf("route MTU: %v", err)
		}
	}
}

// dropRouterICMP makes the router a PMTU black hole: it drops its own
// "fragmentation needed" and "packet too big".
func dropRouterICMP(t *testing.T, n *nstest.Net) {
	t.Helper()
	nstest.RequireTool(t, "nft")
	for _, c := range [][]string{
		{"nft", "add", "table", "inet", "bh"},
		{"nft", "add chain inet bh out { type filter hook output priority 0; }"},
		{"nft", "add rule inet bh out icmp type destination-unreachable drop"},
		{"nft", "add rule inet bh out icmpv6 type packet-too-big drop"},
	} {
		args := c
		if len(c) == 2 {
			args = append([]string{"nft"}, strings.Fields(c[1])...)
		}
		if err := n.Router.Exec(args...); err != nil {
			t.Fatalf("nft: %v", err)
		}
	}
}

// peerStatus reads one peer's row of show peers --json.
func (s *site) peerStatus(t *testing.T, name string) dataplane.PeerStatus {
	t.Helper()
	var ps []dataplane.PeerStatus
	if err := json.Unmarshal([]byte(s.show(t, "peers", "--json")), &ps); err != nil {
		t.Fatalf("show peers --json: %v", err)
	}
	for _, p := range ps {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("%s has no peer %s", s.Name, name)
	return dataplane.PeerStatus{}
}

// waitMTU waits until from's path MTU to to is within 16 bytes below want
// (probed), and returns the time it took.
func waitMTU(t *testing.T, from, to *site, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last dataplane.PeerStatus
	err := nstest.WaitFor(limit, func() error {
		last = from.peerStatus(t, to.Name)
		if last.MTU > want || last.MTU < want-16 {
			return fmt.Errorf("path MTU %d (%s, %s)", last.MTU, last.MTUSource, last.Probe)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s -> %s: path MTU not within 16 bytes of %d after %v: %v", from.Name, to.Name, want, limit, err)
	}
	return time.Since(start)
}

func TestPathMTURouted(t *testing.T) {
	for _, c := range []struct {
		mode string
		icmp bool
		v6   bool
	}{
		{"esp", false, false}, {"esp", true, false}, {"plain", false, false}, {"plain", true, false},
		{"esp", false, true}, {"esp", true, true}, {"plain", false, true}, {"plain", true, true},
	} {
		name := fmt.Sprintf("%s/icmp=%v/v6=%v", c.mode, c.icmp, c.v6)
		t.Run(name, func(t *testing.T) {
			n := nstest.New(t, nstest.Sites("a", "b")...)
			setRouteMTU(t, n, 1400, c.v6)
			if !c.icmp {
				dropRouterICMP(t, n)
			}
			sites := startSites(t, n, options{mode: c.mode, ipv6: c.v6, peerMTU: func(_, _ *nstest.Site) int { return 0 }, extraPeers: probeTimers})
			a, b := sites[0], sites[1]
			dst := overlayAddr(b.Site).String()
			if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(dst, 56, 1, false) }); err != nil {
				t.Fatalf("a -> b: %v", err)
			}
			// Every DF 1472-byte ping, from the first: sized to the base
			// until the search confirms more.
			if err := a.Ping(dst, 1472, 5, true); err != nil {
				t.Errorf("DF 1472 right after start: %v\n%s", err, a.show(t, "peers"))
			}
			took := waitMTU(t, a, b, 1400, 15*time.Second)
			t.Logf("path MTU found in %v: %+v", took, a.peerStatus(t, "b"))
			if st := a.peerStatus(t, "b"); st.MTUSource != "probed" && !c.icmp {
				t.Errorf("path MTU source %q, want probed", st.MTUSource)
			}
			for _, size := range []int{1472, 3000, 8000} {
				if err := a.Ping(dst, size, 3, size == 1472); err != nil {
					t.Errorf("%d-byte pings: %v", size, err)
				}
			}
			res, err := n.Transfer(a.Site, b.Site, overlayAddr(b.Site), 20<<20, 60*time.Second)
			if err != nil {
				t.Errorf("TCP a -> b: %v\n%s", err, a.show(t, "stats"))
			} else {
				t.Logf("TCP a -> b: %.2f Gbit/s", res.Gbps())
			}
		})
	}
}

// TestPathMTUChangesUnderTraffic: the path shrinks to 1280 and grows back
// to 1400, with the router's ICMP and without; DF 1472-byte pings recover within the stated
// bound, and the probed size follows both ways.
func TestPathMTUChangesUnderTraffic(t *testing.T) {
	for _, mode := range []string{"esp", "plain"} {
		for _, icmp := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/icmp=%v", mode, icmp), func(t *testing.T) { pathMTUChanges(t, mode, icmp) })
		}
	}
}

func pathMTUChanges(t *testing.T, mode string, icmp bool) {
	n := nstest.New(t, nstest.Sites("a", "b")...)
	setRouteMTU(t, n, 1400, false)
	if !icmp {
		dropRouterICMP(t, n)
	}
	sites := startSites(t, n, options{mode: mode, peerMTU: func(_, _ *nstest.Site) int { return 0 }, extraPeers: probeTimers})
	a, b := sites[0], sites[1]
	dst := overlayAddr(b.Site).String()
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(dst, 56, 1, false) }); err != nil {
		t.Fatalf("a -> b: %v", err)
	}
	waitMTU(t, a, b, 1400, 15*time.Second)
	// Detection bound: confirmation timer 1 s + 3 lost probes of 200 ms,
	// then the search; 5 s with room for scheduling, more for switches
	// built with the race detector on a loaded machine.
	bound := 5 * time.Second
	if len(raceFlags) > 0 {
		bound = 20 * time.Second
	}
	setRouteMTU(t, n, 1280, false)
	start := time.Now()
	if err := nstest.WaitFor(bound, func() error { return a.Ping(dst, 1472, 1, true) }); err != nil {
		t.Fatalf("DF 1472 not back within %v after the path shrank: %v\n%s", bound, err, a.show(t, "peers"))
	}
	t.Logf("traffic recovered %v after the path shrank to 1280", time.Since(start).Round(100*time.Millisecond))
	waitMTU(t, a, b, 1280, bound)
	setRouteMTU(t, n, 1400, false)
	took := waitMTU(t, a, b, 1400, 15*time.Second) // the raise timer (8 s) and a search
	t.Logf("path MTU rose back to 1400 in %v", took)
	if err := a.Ping(dst, 1472, 5, true); err != nil {
		t.Errorf("DF 1472 after the path grew: %v", err)
	}
}

// TestPathMTUJumboOverBlackHole: a 9000-byte overlay across the 1400-byte
// black hole: DF 8972-byte pings (9000-byte IP packets on the segment)
// cross, in esp mode fragmented inside the tunnel, in plain mode as
// fragments the sender makes.
func TestPathMTUJumboOverBlackHole(t *testing.T) {
	for _, mode := range []string{"esp", "plain"} {
		t.Run(mode, func(t *testing.T) {
			n := nstest.New(t, nstest.Sites("a", "b")...)
			setRouteMTU(t, n, 1400, false)
			dropRouterICMP(t, n)
			sites := startSites(t, n, options{mode: mode, overlayMTU: 9000, peerMTU: func(_, _ *nstest.Site) int { return 0 }, extraPeers: probeTimers})
			a, b := sites[0], sites[1]
			dst := overlayAddr(b.Site).String()
			if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(dst, 56, 1, false) }); err != nil {
				t.Fatalf("a -> b: %v", err)
			}
			waitMTU(t, a, b, 1400, 15*time.Second)
			if err := a.Ping(dst, 8972, 5, true); err != nil {
				t.Errorf("DF 8972: %v\n%s", err, a.show(t, "peers"))
			}
			if err := b.Ping(overlayAddr(a.Site).String(), 8972, 5, true); err != nil {
				t.Errorf("b -> a DF 8972: %v", err)
			}
		})
	}
}

// TestKernelVTEPNotProbed: toward a standard VTEP (the kernel's vxlan
// device, in a bridge as a host would have it) vxswitch sends probes, gets
// no answer, marks the peer as not probing and keeps classic PMTUD; the
// kernel drops every probe before its bridge, which never sees one.
func TestKernelVTEPNotProbed(t *testing.T) {
	tcpdump := nstest.RequireTool(t, "tcpdump")
	n := nstest.New(t, nstest.Sites("vx", "kernel")...)
	only := func(from, to *nstest.Site) bool { return from.Name == "vx" }
	k := n.Sites[1]
	if err := k.KernelVXLAN(nstest.VXLAN{Dev: "vx129", VNI: 129, Remotes: []netip.Addr{n.Sites[0].Addr}, MTU: 1500}); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"ip", "link", "add", "br129", "type", "bridge"},
		{"ip", "link", "set", "vx129", "master", "br129"},
		{"ip", "addr", "add", netip.PrefixFrom(overlayAddr(k), 24).String(), "dev", "br129"},
		{"ip", "link", "set", "br129", "up"},
	} {
		if err := k.Exec(c...); err != nil {
			t.Fatal(err)
		}
	}
	// The bridge is watched before vxswitch starts: it sees every probe
	// that gets past the kernel's vxlan device.
	capture := filepath.Join(t.TempDir(), "br129.pcap")
	dump := k.Start(tcpdump, "-i", "br129", "--immediate-mode", "-U", "-s", "0", "-w", capture)
	if err := dump.WaitOutput(0, "listening on br129", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	sites := startSites(t, &nstest.Net{Core: n.Core, Sites: n.Sites[:1]}, options{mode: "plain", only: only,
		extraPeers: fmt.Sprintf("[[peer]]\nname = \"kernel\"\nendpoint = %q\nvtep = %q\n\n%s", k.Addr, k.Addr, probeTimers)})
	vx := sites[0]
	err := nstest.WaitFor(10*time.Second, func() error {
		if st := vx.peerStatus(t, "kernel"); st.Probe != "not_probing" {
			return fmt.Errorf("probe state %q", st.Probe)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the kernel VTEP was not marked as not probing: %v", err)
	}
	st := vx.peerStatus(t, "kernel")
	if st.ProbesSent == 0 || st.ProbesAcked != 0 {
		t.Errorf("probes toward the kernel VTEP: %d sent, %d acknowledged; want some sent, none answered", st.ProbesSent, st.ProbesAcked)
	}
	if st.MTU != 1500 {
		t.Errorf("path MTU to a peer that is not probed: %d, want the local link's 1500 (DF off)", st.MTU)
	}
	if err := vx.Ping(overlayAddr(k).String(), 1472, 3, false); err != nil {
		t.Errorf("ping the kernel VTEP: %v", err)
	}
	// -U: tcpdump writes each packet as it comes
	nstest.WaitFor(5*time.Second, func() error {
		if fi, err := os.Stat(capture); err != nil || fi.Size() < 3*1500 {
			return fmt.Errorf("the capture does not hold the pings yet")
		}
		return nil
	})
	_ = dump.Signal(os.Interrupt) // tcpdump writes out what it holds
	select {
	case <-dump.Done():
	case <-time.After(5 * time.Second):
		t.Log("tcpdump did not stop on SIGINT")
	}
	data, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	// The capture did see the overlay (the pings), and no probe.
	if len(data) < 3*1500 {
		out, _ := exec.Command(tcpdump, "-n", "-r", capture).CombinedOutput()
		t.Errorf("the bridge capture holds only %d bytes: it missed the pings\n%s", len(data), out)
	}
	if bytes.Contains(data, []byte("VXPM")) {
		t.Error("a probe frame reached the kernel VTEP's bridge")
	}
}

// TestPathShrinksUnderTCP: the path shrinks from 1500 to 1400 under a
// running TCP stream, the router's ICMP dropped, with the default timers
// (confirmation probes every 10 s, three lost: 16 s before). The
// stream's retransmissions make the sender check its path MTU at once
// (show peers: loss-check, a check counted), the size drops within a few
// seconds, the search finds 1400, and the stream ends having carried data
// after the shrink. Then a forged ICMP "fragmentation needed" (1300) that
// the kernel takes into its route cache is checked by probes and refused:
// the size stays.
//
// esp mode only: in plain mode one CI-equivalent run (race-built switches,
// the whole suite on 2 cores) saw the stream go on at full speed across
// the shrink, no loss at all, so nothing to notice; the cause (the outer
// DF bit of plain mode's raw-socket sends, or the route change) is not
// found yet, and a test that depends on it would be a flake.
func TestPathShrinksUnderTCP(t *testing.T) {
	pathShrinksUnderTCP(t, "esp")
}

func pathShrinksUnderTCP(t *testing.T, mode string) {
	nstest.RequireTool(t, "iperf3")
	n := nstest.New(t, nstest.Sites("a", "b")...)
	dropRouterICMP(t, n)
	sites := startSites(t, n, options{mode: mode, peerMTU: func(_, _ *nstest.Site) int { return 0 }})
	a, b := sites[0], sites[1]
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("a -> b: %v", err)
	}
	waitMTU(t, a, b, 1500, 20*time.Second)
	type result struct {
		gbps float64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		g, err := n.Iperf3(a.Site, b.Site, overlayAddr(b.Site), 14*time.Second, "-b", "1G")
		done <- result{g, err}
	}()
	// the stream runs: a's bytes to b grow
	before := a.peerStatus(t, "b").TxBytes
	if err := nstest.WaitFor(15*time.Second, func() error {
		if a.peerStatus(t, "b").TxBytes < before+50<<20 {
			return fmt.Errorf("the stream has not started")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	setRouteMTU(t, n, 1400, false)
	shrunk := time.Now()
	// Noticed within a retransmission timeout and a few round trips, not
	// the 16 s of the confirmation probes; room for a loaded machine and
	// a switch built with the race detector.
	bound := 6 * time.Second
	if len(raceFlags) > 0 {
		bound = 12 * time.Second
	}
	var st dataplane.PeerStatus
	if err := nstest.WaitFor(bound, func() error {
		if st = a.peerStatus(t, "b"); st.MTU > 1400 {
			return fmt.Errorf("path MTU %d (%s, %s, last change %q)", st.MTU, st.MTUSource, st.Probe, st.MTUChange)
		}
		return nil
	}); err != nil {
		t.Fatalf("the shrink was not noticed within %v: %v", bound, err)
	}
	t.Logf("%s: noticed %v after the shrink: %q, %d checks", mode, time.Since(shrunk).Round(100*time.Millisecond), st.MTUChange, st.MTUChecks)
	// a check found it (the search after it may have raised the size
	// again since, so the last change may be "probed")
	if st.MTUChecks == 0 || st.MTUShrinks == 0 || (st.MTUChange != "loss-check" && st.MTUChange != "probed") {
		t.Errorf("last change %q, %d checks, %d shrinks: want a check and a shrink", st.MTUChange, st.MTUChecks, st.MTUShrinks)
	}
	waitMTU(t, a, b, 1400, 20*time.Second)
	r := <-done
	if r.err != nil || r.gbps <= 0 {
		t.Fatalf("the stream did not go on after the shrink: %v, %.2f Gbit/s", r.err, r.gbps)
	}
	t.Logf("%s: the stream carried %.2f Gbit/s over its 14 s", mode, r.gbps)

	// A forged ICMP, quoting a datagram of a's to b (from b's namespace:
	// the router's own ICMP is dropped).
	port := uint16(4500)
	if mode == "plain" {
		port = 4789
	}
	checks := st.MTUChecks
	forgeFragNeeded(t, b.Site, a.Addr, b.Addr, port, 1300)
	if err := nstest.WaitFor(5*time.Second, func() error {
		out, _ := a.Output("ip", "route", "get", b.Addr.String())
		if !strings.Contains(out, "mtu 1300") {
			return fmt.Errorf("a's kernel did not take the forged ICMP: %s", out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// vxswitch reads the kernel's report at its next housekeeping; a
	// check refuses it within a few round trips: two seconds are plenty,
	// and the size must hold for them
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if st = a.peerStatus(t, "b"); st.MTU < 1400-16 || st.MTUChange == "hint-check" {
			t.Fatalf("a forged ICMP lowered the path MTU: %d (%q)", st.MTU, st.MTUChange)
		}
	}
	if st.MTUChecks <= checks {
		t.Errorf("%d checks before the forged ICMP, %d after: it was not checked", checks, st.MTUChecks)
	}
}

// forgeFragNeeded sends, from site from's namespace, an ICMP "fragmentation
// needed" with the given MTU to dst, quoting a UDP datagram from dst:port
// to peer:port, as a router on the path would (or an attacker).
func forgeFragNeeded(t *testing.T, from *nstest.Site, dst, peer netip.Addr, port uint16, mtu int) {
	t.Helper()
	msg := make([]byte, 8+20+8)
	msg[0], msg[1] = 3, 4 // destination unreachable, fragmentation needed
	binary.BigEndian.PutUint16(msg[6:], uint16(mtu))
	quoted := encap.IPv4Fields{TotalLen: 1428, TTL: 64, Protocol: encap.ProtoUDP, Src: dst, Dst: peer, Flags: encap.IPv4FlagDF}
	quoted.Encode(msg[8:])
	binary.BigEndian.PutUint16(msg[28:], port)
	binary.BigEndian.PutUint16(msg[30:], port)
	binary.BigEndian.PutUint16(msg[32:], 1408)
	binary.BigEndian.PutUint16(msg[2:], ^encap.Checksum(msg, 0))
	err := from.Do(func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		return syscall.Sendto(fd, msg, 0, &syscall.SockaddrInet4{Addr: dst.As4()})
	})
	if err != nil {
		t.Fatalf("forged ICMP: %v", err)
	}
}
