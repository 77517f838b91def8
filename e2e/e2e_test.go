// Package e2e runs vxswitch binaries in network namespaces against each
// other and against real peers (the Linux kernel's vxlan device), with
// traffic from the hosts' own stacks: ping, TCP with a checksum, captures.
package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/crypto/gcm"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/internal/nstest"
)

var vxswitchBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vxswitch-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vxswitchBin = filepath.Join(dir, "vxswitch")
	args := append(append([]string{"build"}, raceFlags...), "-o", vxswitchBin, "../cmd/vxswitch")
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build vxswitch: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// overlayAddr is site i's host address on the segment, 10.11.129.<i+1>.
func overlayAddr(s *nstest.Site) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 11, 129, byte(s.Index + 1)})
}

func vtepAddr(s *nstest.Site) netip.Addr {
	return netip.AddrFrom4([4]byte{172, 31, 0, byte(s.Index + 1)})
}

// site is a running vxswitch in a namespace.
type site struct {
	*nstest.Site
	proc    *nstest.Proc
	control string
	config  string
}

type options struct {
	mode          string // "esp" or "plain"
	suite         string
	overlayMTU    int
	peerMTU       func(from, to *nstest.Site) int
	extraPeers    string                      // raw TOML appended to every site's file
	siteExtra     func(s *nstest.Site) string // raw TOML appended to one site's file
	psk           string                      // the pre-shared key; default a fixed test key
	securityExtra string                      // raw TOML added to [security]
	ipv6          bool                        // IPv6 underlay (the sites' Addr6)
	metrics       bool                        // serve Prometheus metrics on 127.0.0.1:9129 in each site
	// endpoint gives the address a site reaches a peer at (default: the
	// peer's underlay address); remote_id is left to accept any identity.
	endpoint func(from, to *nstest.Site) string
	only     func(from, to *nstest.Site) bool
	// pki, when set, authenticates with certificates that `vxswitch pki`
	// made there (see makePKI) instead of the mesh PSK; crl adds a crl_file.
	pki string
	crl string
	// sitePSK, when set, gives each site a mesh PSK of its own (in
	// <dir>/<site>.psk) instead of the one shared by all.
	sitePSK func(s *nstest.Site) string
	// wrap, when set, runs vxswitch behind this command line (e.g. setpriv).
	wrap []string
	// user, when set, is site.user for the first site; its files (and
	// their directory) then belong to that user, as docs/security.md's model says.
	user string
	// segmentExtra is raw TOML added to every site's [[segment]].
	segmentExtra string
	// bin, when set, is the vxswitch binary to run instead of vxswitchBin.
	bin string
}

// startSites writes a config for every site of n (one segment, VNI 129,
// every other site a peer) and starts vxswitch on each.
func startSites(t *testing.T, n *nstest.Net, o options) []*site {
	t.Helper()
	dir := t.TempDir()
	psk := filepath.Join(dir, "mesh.psk")
	if o.psk == "" {
		o.psk = "correct horse battery staple, e2e"
	}
	if err := os.WriteFile(psk, []byte(o.psk+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if o.overlayMTU == 0 {
		o.overlayMTU = 1500
	}
	if o.suite == "" {
		o.suite = "aes128gcm16"
	}
	var sites []*site
	under := func(s *nstest.Site) string {
		if o.ipv6 {
			return s.Addr6.String()
		}
		return s.Addr.String()
	}
	for _, s := range n.Sites {
		var b strings.Builder
		fmt.Fprintf(&b, "[site]\nname = %q\nlisten = %q\nvtep = %q\ncontrol = %q\n", s.Name, under(s), vtepAddr(s), filepath.Join(dir, s.Name+".sock"))
		if o.metrics {
			b.WriteString("metrics = \"127.0.0.1:9129\"\npprof = true\n")
		}
		if o.user != "" && s == n.Sites[0] {
			fmt.Fprintf(&b, "user = %q\n", o.user)
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "[[segment]]\nvni = 129\ntap = \"vx129\"\nmtu = %d\naddress = \"%s/24\"\n%s\n", o.overlayMTU, overlayAddr(s), o.segmentExtra)
		if o.pki != "" {
			fmt.Fprintf(&b, "[security]\nmode = %q\nsuite = %q\nauth = \"certificate\"\nca_file = %q\ncert_file = %q\nkey_file = %q\n",
				o.mode, o.suite, filepath.Join(o.pki, "ca", "ca.pem"), filepath.Join(o.pki, s.Name, s.Name+".pem"), filepath.Join(o.pki, s.Name, s.Name+".key"))
			if o.crl != "" {
				fmt.Fprintf(&b, "crl_file = %q\n", o.crl)
			}
			fmt.Fprintf(&b, "%s\n", o.securityExtra)
		} else {
			file := psk
			if o.user != "" && s == n.Sites[0] {
				// Its own copy, which it owns: the others' files stay root's.
				file = filepath.Join(dir, s.Name+"-own.psk")
				if err := os.WriteFile(file, []byte(o.psk+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if o.sitePSK != nil {
				file = filepath.Join(dir, s.Name+".psk")
				if err := os.WriteFile(file, []byte(o.sitePSK(s)+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			fmt.Fprintf(&b, "[security]\nmode = %q\nsuite = %q\npsk_file = %q\n%s\n", o.mode, o.suite, file, o.securityExtra)
		}
		for _, p := range n.Sites {
			if p == s || (o.only != nil && !o.only(s, p)) {
				continue
			}
			mtu := 1500
			if o.peerMTU != nil {
				mtu = o.peerMTU(s, p)
			}
			ep := under(p)
			if o.endpoint != nil {
				ep = o.endpoint(s, p)
			}
			fmt.Fprintf(&b, "[[peer]]\nname = %q\nendpoint = %q\nvtep = %q\n", p.Name, ep, vtepAddr(p))
			if mtu > 0 { // 0: unset, probed up to the local link's MTU
				fmt.Fprintf(&b, "mtu = %d\n", mtu)
			}
			b.WriteString("\n")
		}
		b.WriteString(o.extraPeers)
		if o.siteExtra != nil {
			b.WriteString(o.siteExtra(s))
		}
		cfg := filepath.Join(dir, s.Name+".toml")
		if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if o.user != "" && s == n.Sites[0] {
			files := []string{dir, cfg}
			if o.pki == "" {
				files = append(files, filepath.Join(dir, s.Name+"-own.psk"))
			}
			chownTo(t, o.user, files...)
			// The user must reach its files (docs/security.md: /etc/vxswitch).
			if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
				t.Fatal(err)
			}
		}
		st := &site{Site: s, control: filepath.Join(dir, s.Name+".sock"), config: cfg}
		bin := vxswitchBin
		if o.bin != "" {
			bin = o.bin
		}
		argv := append(append([]string{}, o.wrap...), bin, "run", "-c", cfg, "-log-level", "debug")
		st.proc = s.Start(argv...)
		sites = append(sites, st)
		t.Cleanup(func() {
			if out := st.proc.Output(); strings.Contains(out, "WARNING: DATA RACE") || strings.Contains(out, "panic:") {
				t.Errorf("vxswitch on %s reported a race or panic:\n%s", st.Name, out)
			}
		})
	}
	for _, st := range sites {
		err := nstest.WaitFor(10*time.Second, func() error {
			if done, err := st.proc.Exited(); done {
				return fmt.Errorf("vxswitch exited: %v\n%s", err, st.proc.Output())
			}
			_, err := st.Output("ip", "-br", "addr", "show", "vx129")
			return err
		})
		if err != nil {
			t.Fatalf("site %s: %v", st.Name, err)
		}
	}
	return sites
}

// show runs `vxswitch show what` against a site's control socket.
func (s *site) show(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, vxswitchBin, append([]string{"show"}, append(args, "-S", s.control)...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vxswitch show %v on %s: %v\n%s", args, s.Name, err, out)
	}
	return string(out)
}

// counter reads one counter from `show stats --json` by scope and name.
func (s *site) stats(t *testing.T) string { return s.show(t, "stats") }

func TestTwoSitesPlain(t *testing.T) {
	n := nstest.New(t, nstest.SiteSpec{Name: "a", MTU: 1400}, nstest.SiteSpec{Name: "b", MTU: 1400})
	sites := startSites(t, n, options{mode: "plain", metrics: true, peerMTU: func(_, _ *nstest.Site) int { return 1400 }})
	a, b := sites[0], sites[1]
	pingAll(t, n, a, b)

	// Prometheus metrics from inside the site.
	rc, err := metricsBody(t, a)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer rc.Close()
	body, _ := io.ReadAll(rc)
	for _, want := range []string{`vxswitch_peer_up{peer="b",site="a"} 1`, `vxswitch_events_total{counter="tx_packets",id="b",scope="peer",site="a"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// pingAll checks ping both ways, a 1472-byte ping with DF (a full
// 1500-byte overlay packet) and an 8000-byte ping (overlay fragments), and a
// TCP transfer with a checksum.
func pingAll(t *testing.T, n *nstest.Net, a, b *site) {
	t.Helper()
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("first ping a->b: %v\n%s\n%s", err, a.stats(t), b.stats(t))
	}
	for _, c := range []struct {
		from, to *site
		size     int
		df       bool
	}{{a, b, 56, false}, {b, a, 56, false}, {a, b, 1472, true}, {b, a, 1472, true}, {a, b, 8000, false}, {b, a, 8000, false}} {
		if err := c.from.Ping(overlayAddr(c.to.Site).String(), c.size, 5, c.df); err != nil {
			t.Errorf("ping %s->%s size %d df %v: %v", c.from.Name, c.to.Name, c.size, c.df, err)
		}
	}
	res, err := n.Transfer(a.Site, b.Site, overlayAddr(b.Site), 20<<20, 30*time.Second)
	if err != nil {
		t.Errorf("TCP transfer a->b: %v", err)
	} else {
		t.Logf("TCP transfer a->b: %+v", res)
	}
	if t.Failed() {
		t.Logf("a stats:\n%s\nb stats:\n%s", a.stats(t), b.stats(t))
	}
}

func TestTwoSitesESP(t *testing.T) {
	for _, suite := range []string{"aes128gcm16", "aes256gcm16", "chacha20poly1305"} {
		t.Run(suite, func(t *testing.T) {
			n := nstest.New(t, nstest.SiteSpec{Name: "a", MTU: 1400}, nstest.SiteSpec{Name: "b", MTU: 1400})
			sites := startSites(t, n, options{mode: "esp", suite: suite, peerMTU: func(_, _ *nstest.Site) int { return 1400 }})
			a, b := sites[0], sites[1]
			pingAll(t, n, a, b)
			if !strings.Contains(a.stats(t), "tx_fragments") {
				t.Errorf("a's stats show no tx_fragments after 8000-byte pings:\n%s", a.stats(t))
			}
			sas := a.show(t, "sas")
			if !strings.Contains(sas, suite) {
				t.Errorf("show sas lacks %s:\n%s", suite, sas)
			}
			// the AEAD each SA runs on: crypto/gcm's assembly on this CI's
			// processor, x/crypto for ChaCha20
			impl := map[string]string{"aes128gcm16": gcm.Implementation(), "aes256gcm16": gcm.Implementation(), "chacha20poly1305": "x/crypto"}[suite]
			if !regexp.MustCompile(suite + `\s+` + regexp.QuoteMeta(impl) + `\s`).MatchString(sas) {
				t.Errorf("show sas does not say %s runs on %s:\n%s", suite, impl, sas)
			}
			if peers := a.show(t, "peers"); !strings.Contains(peers, "prfsha256-x25519") {
				t.Errorf("show peers lacks the IKE SA:\n%s", peers)
			}
		})
	}
}

// seedSites are the six sites of the original inter-cloud demo.
var seedSites = []string{"makuhari", "sakura", "idcf", "bitisle", "rise", "starbed"}

func TestSixSitesESP(t *testing.T) {
	specs := make([]nstest.SiteSpec, len(seedSites))
	for i, name := range seedSites {
		specs[i] = nstest.SiteSpec{Name: name}
	}
	specs[4].MTU = 1400 // rise sits behind a smaller path
	n := nstest.New(t, specs...)
	mtu := func(from, to *nstest.Site) int { return min(from.MTU, to.MTU) }
	sites := startSites(t, n, options{mode: "esp", peerMTU: mtu})
	target := func(s *nstest.Site) string { return overlayAddr(s).String() }
	// Keys are negotiated at start; give the mesh a moment, then every pair.
	if err := nstest.WaitFor(20*time.Second, func() error { return n.PingMesh(target, 56, 1, false) }); err != nil {
		t.Fatalf("six-site mesh: %v\n%s", err, sites[0].show(t, "peers"))
	}
	if err := n.PingMesh(target, 1472, 2, true); err != nil {
		t.Errorf("six-site mesh, 1472 bytes with DF: %v", err)
	}

	// A broadcast from makuhari reaches each other site exactly once.
	conns := make([]interface {
		ReadFrom([]byte) (int, net.Addr, error)
		SetReadDeadline(time.Time) error
		Close() error
	}, len(sites))
	for i, s := range sites[1:] {
		pc, err := s.ListenPacket("udp4", "0.0.0.0:9999")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		conns[i+1] = pc
	}
	err := sites[0].Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 11, 129, 1)})
		if err != nil {
			return err
		}
		defer c.Close()
		rc, _ := c.SyscallConn()
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1) })
		_, err = c.WriteToUDP([]byte("vxswitch-broadcast-once"), &net.UDPAddr{IP: net.IPv4(10, 11, 129, 255), Port: 9999})
		return err
	})
	if err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	// the broadcast is on its way to every site at once: the first read
	// waits up to 4 s, the later ones find theirs queued (and a second
	// copy would have come by then too)
	end := time.Now().Add(4 * time.Second)
	for i, s := range sites[1:] {
		pc := conns[i+1]
		got := 0
		buf := make([]byte, 256)
		deadline := time.Now().Add(500 * time.Millisecond)
		if end.After(deadline) {
			deadline = end
		}
		pc.SetReadDeadline(deadline)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			if string(buf[:n]) == "vxswitch-broadcast-once" {
				got++
			}
		}
		if got != 1 {
			t.Errorf("site %s received the broadcast %d times, want 1", s.Name, got)
		}
	}
}

func TestKernelVXLANInterop(t *testing.T) {
	n := nstest.New(t, nstest.SiteSpec{Name: "vx", MTU: 1400}, nstest.SiteSpec{Name: "kernel", MTU: 1400})
	only := func(from, to *nstest.Site) bool { return from.Name == "vx" }
	sites := startSites(t, &nstest.Net{Core: n.Core, Sites: n.Sites[:1]}, options{mode: "plain", only: only,
		extraPeers: fmt.Sprintf("[[peer]]\nname = \"kernel\"\nendpoint = %q\nvtep = %q\nmtu = 1400\n", n.Sites[1].Addr, n.Sites[1].Addr)})
	k := n.Sites[1]
	err := k.KernelVXLAN(nstest.VXLAN{Dev: "vx129", VNI: 129, Remotes: []netip.Addr{n.Sites[0].Addr}, MTU: 1500,
		Address: netip.PrefixFrom(overlayAddr(k), 24)})
	if err != nil {
		t.Fatal(err)
	}
	// The kernel leaves the inner TCP checksum to offload (CHECKSUM_PARTIAL)
	// and veth carries it unfinished to our socket (a NIC would finish it on
	// the wire): vxswitch finishes it (rx_checksum_finished, checked below).
	vx := sites[0]
	if err := nstest.WaitFor(10*time.Second, func() error { return vx.Ping(overlayAddr(k).String(), 56, 1, false) }); err != nil {
		t.Fatalf("vxswitch -> kernel vxlan: %v\n%s", err, vx.stats(t))
	}
	for _, c := range []struct {
		from *nstest.Site
		to   netip.Addr
		size int
		df   bool
	}{
		// The kernel VTEP answers an inner DF packet bigger than its path
		// with ICMP itself (vxlan PMTU check), so its 1472 goes without DF.
		{vx.Site, overlayAddr(k), 1472, true}, {k, overlayAddr(vx.Site), 1472, false}, {vx.Site, overlayAddr(k), 8000, false}, {k, overlayAddr(vx.Site), 8000, false}} {
		if err := c.from.Ping(c.to.String(), c.size, 3, c.df); err != nil {
			t.Errorf("ping %s -> %v size %d: %v", c.from.Name, c.to, c.size, err)
		}
	}
	if _, err := n.Transfer(k, vx.Site, overlayAddr(vx.Site), 10<<20, 30*time.Second); err != nil {
		t.Errorf("TCP kernel -> vxswitch: %v", err)
	}
	if got := statValue(t, vx, "peer kernel", "rx_checksum_finished"); got == 0 {
		t.Error("rx_checksum_finished is 0: the kernel VTEP's partial checksums were not seen (or the test no longer makes them)")
	}
	if t.Failed() {
		t.Logf("vxswitch stats:\n%s", vx.stats(t))
	}
}

// TestMACMove moves a host (same IP, same MAC) from one site to another,
// as a VM migrating between clouds; traffic follows at once.
func TestMACMove(t *testing.T) {
	n := nstest.New(t, nstest.Sites("a", "b", "c")...)
	sites := startSites(t, n, options{mode: "esp"})
	a, b, c := sites[0], sites[1], sites[2]
	target := func(s *nstest.Site) string { return overlayAddr(s).String() }
	if err := nstest.WaitFor(20*time.Second, func() error { return n.PingMesh(target, 56, 1, false) }); err != nil {
		t.Fatalf("mesh: %v", err)
	}
	const vmMAC, vmIP = "02:00:5e:00:01:64", "10.11.129.100"
	up := func(s *site) {
		t.Helper()
		for _, args := range [][]string{
			{"ip", "link", "add", "vm0", "link", "vx129", "address", vmMAC, "type", "macvlan", "mode", "bridge"},
			{"ip", "addr", "add", vmIP + "/24", "dev", "vm0"},
			{"ip", "link", "set", "vm0", "up"},
		} {
			if err := s.Exec(args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	up(b)
	if err := nstest.WaitFor(5*time.Second, func() error { return a.Ping(vmIP, 56, 1, false) }); err != nil {
		t.Fatalf("a -> vm on b: %v", err)
	}
	// Migrate: the VM disappears from b and comes up on c, announcing
	// itself with one packet (as a gratuitous ARP would).
	if err := b.Exec("ip", "link", "del", "vm0"); err != nil {
		t.Fatal(err)
	}
	up(c)
	if err := c.Exec("ping", "-c", "1", "-W", "1", "-I", "vm0", overlayAddr(a.Site).String()); err != nil {
		t.Fatalf("vm on c -> a: %v", err)
	}
	start := time.Now()
	if err := nstest.WaitFor(time.Second, func() error { return a.Ping(vmIP, 56, 1, false) }); err != nil {
		t.Fatalf("traffic did not follow the move within a second: %v\n%s", err, a.show(t, "fdb"))
	}
	t.Logf("traffic followed the move in %v", time.Since(start).Round(time.Millisecond))
	fdb := a.show(t, "fdb")
	if !strings.Contains(fdb, vmMAC) || !regexp.MustCompile(vmMAC+`\s+c\b`).MatchString(fdb) {
		t.Errorf("a's fdb does not show %s on c:\n%s", vmMAC, fdb)
	}
}

// TestBadUnderlayInput floods a site's underlay socket with garbage,
// truncated and forged ESP while real traffic runs: everything bad is
// counted and dropped, the switch keeps forwarding.
func TestBadUnderlayInput(t *testing.T) {
	n := nstest.New(t, nstest.Sites("a", "b", "x")...)
	sites := startSites(t, &nstest.Net{Core: n.Core, Sites: n.Sites[:2]}, options{mode: "esp"})
	a, b := sites[0], sites[1]
	attacker := n.Sites[2]
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("a -> b: %v", err)
	}
	spi := findOutSPI(t, a)
	done := make(chan error, 1)
	go func() {
		_, err := n.Transfer(a.Site, b.Site, overlayAddr(b.Site), 50<<20, 60*time.Second)
		done <- err
	}()
	err := attacker.Do(func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: b.Addr.AsSlice(), Port: 4500})
		if err != nil {
			return err
		}
		defer c.Close()
		rng := mrand.New(mrand.NewPCG(1, 2))
		pkt := make([]byte, 2000)
		for i := 0; i < 20000; i++ {
			size := 1 + rng.IntN(1500)
			for j := range pkt[:size] {
				pkt[j] = byte(rng.Uint32())
			}
			switch i % 4 {
			case 0: // forged ESP on the live SPI: must fail authentication
				if size < 40 {
					size = 40
				}
				binary.BigEndian.PutUint32(pkt, spi)
				binary.BigEndian.PutUint32(pkt[4:], uint32(1e6+i))
			case 1: // truncated ESP
				binary.BigEndian.PutUint32(pkt, spi)
				size = 1 + rng.IntN(20)
			case 2: // IKE garbage behind the non-ESP marker
				binary.BigEndian.PutUint32(pkt, 0)
			}
			c.Write(pkt[:size])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("transfer during the flood: %v", err)
	}
	if err := a.Ping(overlayAddr(b.Site).String(), 56, 3, false); err != nil {
		t.Errorf("ping after the flood: %v", err)
	}
	stats := b.stats(t)
	for _, c := range []string{"rx_drop_auth", "rx_drop_unknown_spi"} {
		if !strings.Contains(stats, c) {
			t.Errorf("b's stats lack %s:\n%s", c, stats)
		}
	}
	t.Logf("b's stats after the flood:\n%s", stats)
}

// sas reads a site's `show sas --json` (no keys).
func sas(t *testing.T, s *site) []dataplane.SAStatus {
	t.Helper()
	var out []dataplane.SAStatus
	if err := json.Unmarshal([]byte(s.show(t, "sas", "--json")), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// findOutSPI returns a's outbound SPI (b's inbound) from show sas --json.
func findOutSPI(t *testing.T, a *site) uint32 {
	for _, s := range sas(t, a) {
		if s.Direction == "out" {
			return s.SPI
		}
	}
	t.Fatal("no outbound SA")
	return 0
}

// TestCaptureInner captures the decrypted, reassembled tunnel-inner
// packets inside a running switch and has tshark decode them.
func TestCaptureInner(t *testing.T) {
	tshark := nstest.RequireTool(t, "tshark")
	n := nstest.New(t, nstest.SiteSpec{Name: "a", MTU: 1400}, nstest.SiteSpec{Name: "b", MTU: 1400})
	sites := startSites(t, n, options{mode: "esp", peerMTU: func(_, _ *nstest.Site) int { return 1400 }})
	a, b := sites[0], sites[1]
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("a -> b: %v", err)
	}
	pcap := filepath.Join(t.TempDir(), "inner.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	capture := exec.CommandContext(ctx, vxswitchBin, "capture", "-S", b.control, "-p", "inner", "-n", "6", "-w", pcap)
	capOut := &strings.Builder{}
	capture.Stdout, capture.Stderr = capOut, capOut
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	// the pcap header comes once the switch has the capture session
	if err := nstest.WaitFor(10*time.Second, func() error {
		if fi, err := os.Stat(pcap); err != nil || fi.Size() < 24 {
			return fmt.Errorf("no pcap header in %s yet (%v)", pcap, err) // capOut is the capture's until it exits
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(overlayAddr(b.Site).String(), 3000, 3, false); err != nil {
		t.Fatal(err)
	}
	if err := capture.Wait(); err != nil {
		t.Fatalf("capture: %v\n%s", err, capOut)
	}
	out, err := exec.Command(tshark, "-r", pcap, "-T", "fields", "-e", "ip.src", "-e", "vxlan.vni", "-e", "eth.src", "-e", "icmp.type").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 6 {
		t.Fatalf("tshark decoded %d packets, want 6:\n%s", len(lines), out)
	}
	icmp := 0
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) < 3 || !strings.HasPrefix(f[1], "129") {
			t.Errorf("packet without VXLAN VNI 129: %q", l)
			continue
		}
		if len(f) == 4 && strings.Contains(f[0], "172.31.0.1") && f[3] == "8" {
			icmp++
		}
	}
	if icmp == 0 {
		t.Errorf("no reassembled 3000-byte ICMP echo from a's VTEP in the inner capture:\n%s", out)
	}
}

// TestPathMTUFollowsKernel configures a peer MTU larger than the real path:
// once the kernel reports the smaller path (EMSGSIZE locally, ICMP
// "fragmentation needed" from the router), the peer's MTU follows it and
// full-size overlay packets get through, fragmented inside the tunnel.
func TestPathMTUFollowsKernel(t *testing.T) {
	// a's own link is 1400 (local EMSGSIZE); b's link is 1500 but the path
	// to a is 1400 (the router answers with ICMP).
	n := nstest.New(t, nstest.SiteSpec{Name: "a", MTU: 1400}, nstest.SiteSpec{Name: "b", MTU: 1500})
	sites := startSites(t, n, options{mode: "esp"}) // peer mtu 1500 both ways: wrong for this path
	a, b := sites[0], sites[1]
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("a -> b: %v", err)
	}
	for _, c := range []struct{ from, to *site }{{a, b}, {b, a}} {
		err := nstest.WaitFor(10*time.Second, func() error {
			return c.from.Ping(overlayAddr(c.to.Site).String(), 1472, 1, true)
		})
		if err != nil {
			t.Errorf("%s -> %s 1472 DF never got through: %v\n%s", c.from.Name, c.to.Name, err, c.from.show(t, "peers"))
			continue
		}
		if err := c.from.Ping(overlayAddr(c.to.Site).String(), 1472, 5, true); err != nil {
			t.Errorf("%s -> %s 1472 DF after the path MTU was learnt: %v", c.from.Name, c.to.Name, err)
		}
		// The reports speed the probing search, which ends on them.
		var peers string
		if err := nstest.WaitFor(10*time.Second, func() error {
			if peers = c.from.show(t, "peers"); !strings.Contains(peers, " 1400 ") {
				return errors.New("no 1400")
			}
			return nil
		}); err != nil {
			t.Errorf("%s's peer table does not show the 1400 path MTU:\n%s", c.from.Name, peers)
		}
	}
}

// TestSiteRestartAndKill: in a mesh, kill one site and the others keep
// talking; restart it and traffic to it recovers with fresh SAs.
func TestSiteRestartAndKill(t *testing.T) {
	n := nstest.New(t, nstest.Sites("a", "b", "c")...)
	sites := startSites(t, n, options{mode: "esp"})
	a, b, c := sites[0], sites[1], sites[2]
	target := func(s *nstest.Site) string { return overlayAddr(s).String() }
	if err := nstest.WaitFor(20*time.Second, func() error { return n.PingMesh(target, 56, 1, false) }); err != nil {
		t.Fatalf("mesh: %v", err)
	}
	oldSAs := a.show(t, "sas")

	// Restart the site with the highest VTEP (a responder to both others).
	if err := c.proc.Stop(); err != nil {
		t.Logf("stop c: %v", err)
	}
	if err := a.Ping(overlayAddr(b.Site).String(), 56, 3, false); err != nil {
		t.Errorf("a -> b with c down: %v", err)
	}
	c.proc = c.Start(vxswitchBin, "run", "-c", c.config)
	start := time.Now()
	for _, from := range []*site{a, b} {
		// the time is logged; the bound is for a loaded machine
		err := nstest.WaitFor(20*time.Second, func() error { return from.Ping(overlayAddr(c.Site).String(), 56, 1, false) })
		if err != nil {
			t.Fatalf("%s -> restarted c: %v\n%s", from.Name, err, from.show(t, "peers"))
		}
	}
	t.Logf("traffic to the restarted site recovered in %v", time.Since(start).Round(100*time.Millisecond))
	if newSAs := a.show(t, "sas"); newSAs == oldSAs {
		t.Errorf("a's SAs did not change across c's restart:\n%s", newSAs)
	}

	// Kill a site for good: the other two keep talking.
	if err := b.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := a.Ping(overlayAddr(c.Site).String(), 56, 2, false); err != nil {
			t.Errorf("a -> c after b died: %v", err)
		}
		if err := c.Ping(overlayAddr(a.Site).String(), 56, 2, false); err != nil {
			t.Errorf("c -> a after b died: %v", err)
		}
	}
}

// TestRekeyUnderLoad rekeys the Child SAs (and the IKE SA) several times
// while iperf3 sends UDP at a steady rate: make-before-break rekeying loses
// no datagram, and iperf3's count agrees.
func TestRekeyUnderLoad(t *testing.T) {
	iperf3 := nstest.RequireTool(t, "iperf3")
	n := nstest.New(t, nstest.Sites("a", "b")...)
	sites := startSites(t, n, options{mode: "esp",
		securityExtra: "child_lifetime = \"4s\"\nlifetime = \"9s\"\n"})
	a, b := sites[0], sites[1]
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("a -> b: %v", err)
	}
	spiBefore := findOutSPI(t, a)
	server := b.Start(iperf3, "-s", "-1", "-B", overlayAddr(b.Site).String())
	defer server.Stop()
	if err := b.WaitListen(5201, 10*time.Second, server); err != nil {
		t.Fatal(err)
	}
	// 50 Mbit/s: a rate a switch built with the race detector keeps up
	// with on a loaded machine, so a lost datagram is the rekey's
	out, err := a.Output(iperf3, "-c", overlayAddr(b.Site).String(), "-u", "-b", "50M", "-l", "1200", "-w", "8M", "-t", "12", "-J")
	if err != nil {
		t.Fatalf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		End struct {
			Sum struct {
				Packets     int     `json:"packets"`
				LostPackets int     `json:"lost_packets"`
				Seconds     float64 `json:"seconds"`
			} `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("iperf3 JSON: %v", err)
	}
	spiAfter := findOutSPI(t, a)
	t.Logf("iperf3: %d datagrams, %d lost; outbound SPI %08x -> %08x", res.End.Sum.Packets, res.End.Sum.LostPackets, spiBefore, spiAfter)
	if spiAfter == spiBefore {
		t.Errorf("no rekey happened during the run (SPI still %08x)", spiBefore)
	}
	if res.End.Sum.Packets == 0 {
		t.Fatal("iperf3 sent nothing")
	}
	if res.End.Sum.LostPackets != 0 {
		t.Errorf("lost %d of %d datagrams across rekeys\n%s\n%s", res.End.Sum.LostPackets, res.End.Sum.Packets, a.stats(t), b.stats(t))
	}
	for _, s := range []*site{a, b} {
		if st := s.stats(t); strings.Contains(st, "rx_drop_") {
			t.Errorf("%s dropped packets around a rekey:\n%s", s.Name, st)
		}
	}
}

// TestIPv6Underlay runs both modes over an IPv6 underlay with a 1400-byte
// path: IKEv2 and ESP in UDP over IPv6, fragments inside the tunnel.
func TestIPv6Underlay(t *testing.T) {
	for _, mode := range []string{"plain", "esp"} {
		t.Run(mode, func(t *testing.T) {
			n := nstest.New(t, nstest.SiteSpec{Name: "a", MTU: 1400}, nstest.SiteSpec{Name: "b", MTU: 1400})
			sites := startSites(t, n, options{mode: mode, ipv6: true, peerMTU: func(_, _ *nstest.Site) int { return 1400 }})
			pingAll(t, n, sites[0], sites[1])
		})
	}
}

// TestJumboOverlay: a 9000-byte overlay over a 1400-byte underlay. Whole
// 9000-byte IP packets cross with DF set (fragmented inside the tunnel
// only), and TCP with a 9000 MTU flows.
func TestJumboOverlay(t *testing.T) {
	for _, mode := range []string{"esp", "plain"} {
		t.Run(mode, func(t *testing.T) {
			n := nstest.New(t, nstest.SiteSpec{Name: "a", MTU: 1400}, nstest.SiteSpec{Name: "b", MTU: 1400})
			sites := startSites(t, n, options{mode: mode, overlayMTU: 9000, peerMTU: func(_, _ *nstest.Site) int { return 1400 }})
			a, b := sites[0], sites[1]
			if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
				t.Fatalf("a -> b: %v", err)
			}
			for _, c := range []struct{ from, to *site }{{a, b}, {b, a}} {
				if err := c.from.Ping(overlayAddr(c.to.Site).String(), 8972, 3, true); err != nil {
					t.Errorf("%s -> %s 8972 bytes with DF: %v", c.from.Name, c.to.Name, err)
				}
			}
			if _, err := n.Transfer(a.Site, b.Site, overlayAddr(b.Site), 20<<20, 30*time.Second); err != nil {
				t.Errorf("TCP over the jumbo overlay: %v", err)
			}
		})
	}
}

// TestReloadAddsSite grows a running ESP mesh by one site: the two running
// sites get the new peer on SIGHUP while they keep talking to each other
// without a lost packet, and the new site reaches both.
func TestReloadAddsSite(t *testing.T) {
	n := nstest.New(t, nstest.Sites("a", "b", "c")...)
	notC := func(from, to *nstest.Site) bool { return from.Name == "c" || to.Name != "c" }
	sites := startSites(t, n, options{mode: "esp", only: notC})
	a, b, c := sites[0], sites[1], sites[2]
	if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("a -> b: %v", err)
	}
	// a pings b throughout the reload: 100 pings, 5 s; the reload comes
	// once the first three have been answered.
	mark := len(a.proc.Output())
	pinger := a.Start("ping", "-n", "-c", "100", "-i", "0.05", overlayAddr(b.Site).String())
	if err := pinger.WaitOutput(0, "icmp_seq=3 ", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*site{a, b} {
		cfg, err := os.ReadFile(s.config)
		if err != nil {
			t.Fatal(err)
		}
		add := fmt.Sprintf("[[peer]]\nname = %q\nendpoint = %q\nvtep = %q\n", c.Name, c.Addr, vtepAddr(c.Site))
		if err := os.WriteFile(s.config, append(cfg, add...), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.proc.WaitOutput(mark, "reload: peers replaced", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if ended, err := pinger.Exited(); ended {
		t.Fatalf("the pings ended (%v) before a had reloaded: the test proves nothing; a slow machine?", err)
	}
	for _, s := range []*site{a, b} {
		if err := nstest.WaitFor(20*time.Second, func() error { return c.Ping(overlayAddr(s.Site).String(), 56, 1, false) }); err != nil {
			t.Errorf("new site c -> %s: %v\n%s", s.Name, err, s.show(t, "peers"))
		}
	}
	if err := pinger.Wait(); err != nil || !strings.Contains(pinger.Output(), " 0% packet loss") {
		t.Errorf("a -> b during the reload: %v\n%s", err, pinger.Output())
	}
}
