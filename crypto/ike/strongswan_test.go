package ike

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/internal/nstest"
)

// These tests run strongSwan's charon (with kernel-libipsec: ESP in
// userspace over UDP) in one nstest site and vxswitch's IKE daemon in
// another, joined by nstest's routed underlay. They need root, ip, unshare,
// charon, swanctl and /dev/net/tun. They skip without them, unless
// VXSWITCH_REQUIRE_ALL is set.

const testPSK = "vxswitch interop secret"

var (
	vtepOurs = netip.MustParseAddr("172.31.7.1")
	vtepSwan = netip.MustParseAddr("172.31.7.2")
)

// ikeNet is the two sites of a test: ours (vxswitch's daemon) and swan
// (charon), each with its VTEP address on lo (there are no dummy
// interfaces on these machines).
type ikeNet struct {
	ours, swan *nstest.Site
}

func newIKENet(t *testing.T) *ikeNet {
	t.Helper()
	nstest.RequireRoot(t)
	for _, tool := range []string{"ip", "unshare", nstest.CharonPath, "swanctl"} {
		nstest.RequireTool(t, tool)
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		if os.Getenv("VXSWITCH_REQUIRE_ALL") != "" {
			t.Fatalf("strongSwan interop needs /dev/net/tun (VXSWITCH_REQUIRE_ALL is set): %v", err)
		}
		t.Skipf("strongSwan interop needs /dev/net/tun: %v", err)
	}
	n := nstest.New(t, nstest.Sites("ours", "swan")...)
	in := &ikeNet{ours: n.Sites[0], swan: n.Sites[1]}
	in.ours.Run("ip", "addr", "add", vtepOurs.String()+"/32", "dev", "lo")
	in.swan.Run("ip", "addr", "add", vtepSwan.String()+"/32", "dev", "lo")
	return in
}

// startSwan starts charon in the swan site. It is stopped in a cleanup
// that runs before its log directory is removed.
func (n *ikeNet) startSwan(t *testing.T, swanctlConf string) *nstest.Charon {
	t.Helper()
	c := n.swan.StartCharon(swanctlConf)
	t.Cleanup(func() { _ = c.Proc.Stop() })
	return c
}

// swanctl runs swanctl against charon and fails the test on error.
func swanctl(t *testing.T, c *nstest.Charon, args ...string) string {
	t.Helper()
	out, err := c.Swanctl(args...)
	if err != nil {
		t.Fatalf("swanctl %v: %v\n%s", args, err, out)
	}
	return out
}

func (n *ikeNet) swanctlConf(ikeProposal, espProposal string) string {
	return nstest.SwanctlConf(nstest.SwanConn{
		Local: n.swan.Addr, Remote: n.ours.Addr, LocalVTEP: vtepSwan, RemoteVTEP: vtepOurs,
		Proposals: ikeProposal, ESPProposals: espProposal, PSK: testPSK, DPDDelay: "5s", NoRekey: true,
	})
}

// chanHandler forwards Child SA events to the test.
type chanHandler struct {
	installed chan ChildSA
	deleted   chan [2]uint32
	up, down  chan string
}

func newChanHandler() *chanHandler {
	return &chanHandler{installed: make(chan ChildSA, 16), deleted: make(chan [2]uint32, 16), up: make(chan string, 4), down: make(chan string, 4)}
}
func (h *chanHandler) InstallChildSA(sa ChildSA) error { h.installed <- sa; return nil }
func (h *chanHandler) DeleteChildSA(_ string, in, out uint32) {
	h.deleted <- [2]uint32{in, out}
}
func (h *chanHandler) PeerUp(p string)   { h.up <- p }
func (h *chanHandler) PeerDown(p string) { h.down <- p }

func waitFor[T any](t *testing.T, ch chan T, what string, d time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timeout waiting for %s", what)
	}
	panic("unreachable")
}

// ours is our daemon inside the ours site.
type ours struct {
	d    *Daemon
	tr   *UDPTransport
	hold *holdTransport
	h    *chanHandler
	esp  chan []byte
	stop func() // ends the daemon and closes its sockets
}

// holdTransport passes messages to the UDP transport, except that while
// collide is set it holds our CREATE_CHILD_SA messages until it has both a
// request and a response, then sends the request first: both sides then
// see the other's rekey request while their own is outstanding.
type holdTransport struct {
	inner   *UDPTransport
	mu      sync.Mutex
	collide bool
	held    []packet
	// requestHeld is signalled when a request of ours is held, so a test
	// starts the peer's rekey only once ours is outstanding (a fixed sleep
	// lost that race on a loaded machine, and the rekeys did not collide)
	requestHeld chan struct{}
	// respDelay sends the held response this long after the request
	respDelay time.Duration
}

// holdRekey holds our next CREATE_CHILD_SA request, lets start begin
// ours, and returns once that request is held.
func (o *ours) holdRekey(t *testing.T, start func(*Daemon), respDelay time.Duration) {
	t.Helper()
	o.hold.mu.Lock()
	o.hold.collide = true
	o.hold.respDelay = respDelay
	o.hold.requestHeld = make(chan struct{}, 1)
	held := o.hold.requestHeld
	o.hold.mu.Unlock()
	start(o.d)
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("our rekey request was not sent within 10s")
	}
}

func (h *holdTransport) Send(from, to netip.AddrPort, msg []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	hd, err := DecodeHeader(msg)
	if !h.collide || err != nil || hd.Exchange != ExchCreateChildSA {
		return h.inner.Send(from, to, msg)
	}
	h.held = append(h.held, packet{from: from, to: to, msg: bytes.Clone(msg)})
	if !hd.IsResponse() && h.requestHeld != nil {
		select {
		case h.requestHeld <- struct{}{}:
		default:
		}
	}
	var req, resp *packet
	for i := range h.held {
		if hh, _ := DecodeHeader(h.held[i].msg); hh.IsResponse() {
			resp = &h.held[i]
		} else {
			req = &h.held[i]
		}
	}
	if req == nil || resp == nil {
		return nil
	}
	h.collide = false
	h.inner.Send(req.from, req.to, req.msg)
	if h.respDelay == 0 {
		h.inner.Send(resp.from, resp.to, resp.msg)
	} else {
		r := *resp
		time.AfterFunc(h.respDelay, func() { h.inner.Send(r.from, r.to, r.msg) })
	}
	h.held = nil
	return nil
}

func (n *ikeNet) startOurs(t *testing.T, suite crypto.Suite, ikeSuite string, initiate bool, endpointPort uint16, mod func(*Config)) *ours {
	t.Helper()
	o := &ours{h: newChanHandler(), esp: make(chan []byte, 64), hold: &holdTransport{}}
	cfg := Config{
		PSK: []byte(testPSK), Suite: suite, IKESuite: ikeSuite,
		Peers: []PeerConfig{{Name: "swan", Endpoint: netip.AddrPortFrom(n.swan.Addr, endpointPort),
			LocalVTEP: vtepOurs, RemoteVTEP: vtepSwan, Initiate: initiate}},
		DPDInterval:       -1,
		RetransmitTimeout: 500 * time.Millisecond,
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	var err error
	if o.d, err = New(cfg, o.hold, o.h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan struct{})
	o.stop = func() {
		cancel()
		<-done
		o.tr.close()
	}
	err = n.ours.Do(func() error {
		// A daemon stopped a moment ago may still hold the ports: its
		// sockets close once their blocked reads return.
		var tr Transport
		var err error
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			tr, err = ListenUDP(ctx, o.d, netip.AddrPortFrom(n.ours.Addr, 500), netip.AddrPortFrom(n.ours.Addr, 4500))
			if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			return err
		}
		o.tr = tr.(*UDPTransport)
		o.hold.inner = o.tr
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	o.tr.SetESP(func(_, _ netip.AddrPort, pkt []byte) {
		select {
		case o.esp <- append([]byte(nil), pkt...):
		default:
		}
	})
	go func() { o.d.Run(ctx); close(done) }()
	return o
}

var spiLine = regexp.MustCompile(`(?m)^\s+(in|out)\s+([0-9a-f]{8})`)

// checkSwanSA checks swanctl --list-sas against our Child SA.
func checkSwanSA(t *testing.T, s *nstest.Charon, c ChildSA, wantAlg string) {
	t.Helper()
	out := swanctl(t, s, "--list-sas")
	t.Logf("swanctl --list-sas:\n%s", out)
	if !strings.Contains(out, "TUNNEL-in-UDP") {
		t.Errorf("child SA is not TUNNEL-in-UDP")
	}
	if !strings.Contains(out, wantAlg) {
		t.Errorf("child SA algorithm: want %s", wantAlg)
	}
	want := map[string]string{"in": fmt.Sprintf("%08x", c.OutSPI), "out": fmt.Sprintf("%08x", c.InSPI)}
	found := map[string]bool{}
	for _, m := range spiLine.FindAllStringSubmatch(out, -1) {
		if m[2] == want[m[1]] {
			found[m[1]] = true
		}
	}
	if !found["in"] || !found["out"] {
		t.Errorf("strongSwan SPIs do not mirror ours (our in %08x, out %08x)", c.InSPI, c.OutSPI)
	}
}

// espTunnel is a test-side ESP implementation (RFC 4303 tunnel mode, RFC
// 4106/7634 AEAD, 32-bit sequence numbers) used to check that both sides
// derived the same keys, independently of package crypto.
type espTunnel struct {
	out, in cipher.AEAD
	outSalt []byte
	inSalt  []byte
	seq     uint32
	sa      ChildSA
}

func newESPTunnel(t *testing.T, c ChildSA) *espTunnel {
	t.Helper()
	mk := func(km []byte) cipher.AEAD {
		key := km[:c.Suite.KeyLen()]
		if c.Suite == crypto.SuiteChaCha20Poly1305 {
			a, err := chacha20poly1305.New(key)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		b, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		a, err := cipher.NewGCM(b)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	return &espTunnel{out: mk(c.OutKeymat), in: mk(c.InKeymat), outSalt: c.OutKeymat[c.Suite.KeyLen():],
		inSalt: c.InKeymat[c.Suite.KeyLen():], sa: c}
}

func (e *espTunnel) seal(inner []byte) []byte {
	e.seq++
	pt := append([]byte(nil), inner...)
	padLen := (4 - (len(pt)+2)%4) % 4
	for i := 1; i <= padLen; i++ {
		pt = append(pt, byte(i))
	}
	pt = append(pt, byte(padLen), 4) // next header: IPv4
	hdr := make([]byte, 16)
	binary.BigEndian.PutUint32(hdr[0:4], e.sa.OutSPI)
	binary.BigEndian.PutUint32(hdr[4:8], e.seq)
	binary.BigEndian.PutUint64(hdr[8:16], uint64(e.seq))
	nonce := append(append([]byte(nil), e.outSalt...), hdr[8:16]...)
	return e.out.Seal(hdr, nonce, pt, hdr[:8])
}

func (e *espTunnel) open(pkt []byte) ([]byte, error) {
	if len(pkt) < 16+16 || binary.BigEndian.Uint32(pkt[0:4]) != e.sa.InSPI {
		return nil, errors.New("not our SPI")
	}
	nonce := append(append([]byte(nil), e.inSalt...), pkt[8:16]...)
	pt, err := e.in.Open(nil, nonce, pkt[16:], pkt[:8])
	if err != nil {
		return nil, err
	}
	padLen := int(pt[len(pt)-2])
	if pt[len(pt)-1] != 4 || padLen+2 > len(pt) {
		return nil, errors.New("bad ESP trailer")
	}
	return pt[:len(pt)-2-padLen], nil
}

// innerUDP builds an IPv4/UDP packet.
func innerUDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 28+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	b[8] = 64
	b[9] = 17
	copy(b[12:16], src.AsSlice())
	copy(b[16:20], dst.AsSlice())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[10:12], ^uint16(sum))
	binary.BigEndian.PutUint16(b[20:22], sport)
	binary.BigEndian.PutUint16(b[22:24], dport)
	binary.BigEndian.PutUint16(b[24:26], uint16(8+len(payload)))
	copy(b[28:], payload)
	return b
}

// checkTraffic sends ESP both ways through strongSwan's libipsec: one
// packet we seal to a UDP socket in strongSwan's namespace, one packet from
// that socket back to our VTEP, which libipsec seals and we open.
func (n *ikeNet) checkTraffic(t *testing.T, o *ours, c ChildSA, tag string) {
	t.Helper()
	var conn *net.UDPConn
	err := n.swan.Do(func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(vtepSwan, 4789)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	e := newESPTunnel(t, c)
	want := "to strongSwan " + tag
	// up to three packets (fresh sequence numbers): one loss is not a
	// key mismatch, three are
	buf := make([]byte, 2000)
	var got int
	var from netip.AddrPort
	for try := 0; ; try++ {
		pkt := e.seal(innerUDP(vtepOurs, vtepSwan, 40000, 4789, []byte(want)))
		if err := o.tr.SendESP(c.Local, c.Remote, pkt); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		got, from, err = conn.ReadFromUDPAddrPort(buf)
		if err == nil {
			break
		}
		if try == 2 {
			t.Fatalf("strongSwan did not deliver our ESP packets (keys or SPIs differ): %v", err)
		}
	}
	if string(buf[:got]) != want || from.Addr() != vtepOurs {
		t.Errorf("strongSwan delivered %q from %v, want %q from %v", buf[:got], from, want, vtepOurs)
	}
	// and back: libipsec encrypts with its outbound keys, we open
	for len(o.esp) > 0 {
		<-o.esp
	}
	back := "from strongSwan " + tag
	if _, err := conn.WriteToUDPAddrPort([]byte(back), netip.AddrPortFrom(vtepOurs, 4789)); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case p := <-o.esp:
			inner, err := e.open(p)
			if err != nil {
				continue // e.g. a packet of an older SA
			}
			if len(inner) < 28 || string(inner[28:]) != back || netip.AddrFrom4([4]byte(inner[12:16])) != vtepSwan {
				t.Fatalf("opened ESP from strongSwan: got %x", inner)
			}
			return
		case <-deadline:
			t.Fatalf("no ESP packet from strongSwan that our keys open")
		}
	}
}

func swanAlg(s crypto.Suite) string {
	switch s {
	case crypto.SuiteAES128GCM16:
		return "AES_GCM_16-128"
	case crypto.SuiteAES256GCM16:
		return "AES_GCM_16-256"
	}
	return "CHACHA20_POLY1305"
}

// forceChildRekey makes our daemon rekey its Child SA now.
func forceChildRekey(d *Daemon) {
	d.mu.Lock()
	for _, sa := range d.sas {
		for _, c := range sa.children {
			if c.state == childInstalled {
				c.rekeyAt = time.Time{}
			}
		}
	}
	d.mu.Unlock()
}

func forceIKERekey(d *Daemon) {
	d.mu.Lock()
	for _, sa := range d.sas {
		if sa.state == stEstablished {
			sa.rekeyAt = time.Time{}
		}
	}
	d.mu.Unlock()
}

// waitRekeyed waits for a new Child SA and the delete of the old one.
func waitRekeyed(t *testing.T, o *ours, old ChildSA) ChildSA {
	t.Helper()
	c := waitFor(t, o.h.installed, "rekeyed child SA", 15*time.Second)
	del := waitFor(t, o.h.deleted, "delete of the old child SA", 15*time.Second)
	if del[0] != old.InSPI {
		t.Errorf("deleted SA %08x, want the old %08x", del[0], old.InSPI)
	}
	if c.InSPI == old.InSPI {
		t.Errorf("rekey kept the SPI")
	}
	return c
}

func TestStrongSwanInterop(t *testing.T) {
	cases := []struct {
		name      string
		ike       string // our IKE proposal
		swanIKE   string // strongSwan's, when different
		wantIKE   string // the negotiated IKE algorithms, when not ike
		suite     crypto.Suite
		weInit    bool
		port      uint16
		swanRekey bool
		cookie    bool
	}{
		{name: "we-initiate/aes128gcm16/x25519", ike: "aes128gcm16-prfsha256-x25519", suite: crypto.SuiteAES128GCM16, weInit: true, port: 4500},
		{name: "we-initiate/chacha20poly1305/ecp256-port500", ike: "aes128gcm16-prfsha256-ecp256", suite: crypto.SuiteChaCha20Poly1305, weInit: true, port: 500},
		{name: "we-initiate/aes256gcm16/chacha-ike-ecp384", ike: "chacha20poly1305-prfsha384-ecp384", suite: crypto.SuiteAES256GCM16, weInit: true, port: 4500},
		{name: "we-initiate/invalid-ke", ike: "aes256gcm16-prfsha512-x25519-ecp256", swanIKE: "aes256gcm16-prfsha512-ecp256", wantIKE: "aes256gcm16-prfsha512-ecp256", suite: crypto.SuiteAES128GCM16, weInit: true, port: 4500},
		{name: "swan-initiates/aes128gcm16/x25519", ike: "aes128gcm16-prfsha256-x25519", suite: crypto.SuiteAES128GCM16, port: 4500, swanRekey: true},
		{name: "swan-initiates/chacha20poly1305/ecp256", ike: "aes128gcm16-prfsha256-ecp256", suite: crypto.SuiteChaCha20Poly1305, port: 4500, swanRekey: true},
		{name: "swan-initiates/invalid-ke+cookie", ike: "aes128gcm16-prfsha256-ecp256", swanIKE: "aes128gcm16-prfsha256-x25519-ecp256", wantIKE: "aes128gcm16-prfsha256-ecp256", suite: crypto.SuiteAES128GCM16, port: 4500, cookie: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newIKENet(t)
			swanIKE := tc.swanIKE
			if swanIKE == "" {
				swanIKE = tc.ike
			}
			group := swanIKE[strings.LastIndex(swanIKE, "-")+1:]
			s := n.startSwan(t, n.swanctlConf(swanIKE, tc.suite.String()+"-"+group+","+tc.suite.String()))
			o := n.startOurs(t, tc.suite, tc.ike, tc.weInit, tc.port, func(c *Config) {
				if tc.cookie {
					c.CookieThreshold = -1
				}
			})
			if !tc.weInit {
				swanctl(t, s, "--initiate", "--child", "vx", "--timeout", "10")
			}
			c := waitFor(t, o.h.installed, "child SA", 15*time.Second)
			waitFor(t, o.h.up, "PeerUp", time.Second)
			if c.ESN {
				t.Errorf("ESN negotiated with libipsec, which has none")
			}
			wantIKE := tc.wantIKE
			if wantIKE == "" {
				wantIKE = tc.ike
			}
			if got := o.d.SAs()[0].Algorithms; got != wantIKE {
				t.Errorf("IKE algorithms: got %s, want %s", got, wantIKE)
			}
			checkSwanSA(t, s, c, swanAlg(tc.suite))
			n.checkTraffic(t, o, c, "first")
			// Log is the last 200 lines; at nstest's debug levels the
			// whole log up to here is about half of that
			logText := s.Log()
			if tc.cookie && !strings.Contains(logText, "IKE_SA_INIT response 0 [ N(COOKIE) ]") {
				t.Errorf("charon log shows no COOKIE challenge")
			}
			if tc.swanIKE != "" && !strings.Contains(logText, "N(INVAL_KE)") {
				t.Errorf("charon log shows no INVALID_KE_PAYLOAD")
			}

			// our Child SA rekey (PFS), then strongSwan's
			forceChildRekey(o.d)
			c = waitRekeyed(t, o, c)
			checkSwanSA(t, s, c, swanAlg(tc.suite))
			n.checkTraffic(t, o, c, "after our child rekey")
			if tc.swanRekey {
				swanctl(t, s, "--rekey", "--child", "vx")
				c = waitRekeyed(t, o, c)
				checkSwanSA(t, s, c, swanAlg(tc.suite))
				n.checkTraffic(t, o, c, "after strongSwan's child rekey")
			}

			// IKE SA rekeys: ours, then strongSwan's; a Child rekey over the
			// new IKE SA proves both derived the same SK_d
			before := o.d.SAs()[0]
			forceIKERekey(o.d)
			waitIKERekeyed(t, o, before)
			if tc.swanRekey {
				before = o.d.SAs()[0]
				swanctl(t, s, "--rekey", "--ike", "vx")
				waitIKERekeyed(t, o, before)
			}
			forceChildRekey(o.d)
			c = waitRekeyed(t, o, c)
			checkSwanSA(t, s, c, swanAlg(tc.suite))
			n.checkTraffic(t, o, c, "after IKE rekey")
			select {
			case p := <-o.h.down:
				t.Errorf("PeerDown(%s) during rekeys", p)
			default:
			}

			// strongSwan closes the IKE SA: we see PeerDown
			swanctl(t, s, "--terminate", "--ike", "vx", "--timeout", "5")
			waitFor(t, o.h.down, "PeerDown after terminate", 10*time.Second)
		})
	}
}

// TestStrongSwanDPD: strongSwan vanishes (its link goes down); our
// liveness check declares the peer down; when it returns we reconnect.
func TestStrongSwanDPD(t *testing.T) {
	n := newIKENet(t)
	s := n.startSwan(t, n.swanctlConf("aes128gcm16-prfsha256-x25519", "aes128gcm16"))
	o := n.startOurs(t, crypto.SuiteAES128GCM16, "aes128gcm16-prfsha256-x25519", true, 4500, func(c *Config) {
		c.DPDInterval = time.Second
		c.RetransmitTries = 2
		c.RetryInterval = time.Second
	})
	c := waitFor(t, o.h.installed, "child SA", 15*time.Second)
	waitFor(t, o.h.up, "PeerUp", time.Second)
	n.checkTraffic(t, o, c, "before")
	n.swan.Run("ip", "link", "set", n.swan.Dev, "down")
	waitFor(t, o.h.down, "PeerDown after failed liveness checks", 20*time.Second)
	if del := waitFor(t, o.h.deleted, "child SA delete", time.Second); del[0] != c.InSPI {
		t.Errorf("deleted %08x, want %08x", del[0], c.InSPI)
	}
	// bringing the link up does not restore the underlay routes that
	// going down removed
	n.swan.Run("ip", "link", "set", n.swan.Dev, "up")
	n.swan.Run("ip", "route", "replace", nstest.RouterAddr.String()+"/32", "dev", n.swan.Dev)
	n.swan.Run("ip", "route", "replace", "default", "via", nstest.RouterAddr.String(), "dev", n.swan.Dev)
	c = waitFor(t, o.h.installed, "child SA after the peer returned", 30*time.Second)
	waitFor(t, o.h.up, "PeerUp again", time.Second)
	checkSwanSA(t, s, c, swanAlg(crypto.SuiteAES128GCM16))
	n.checkTraffic(t, o, c, "after")
}

func waitIKERekeyed(t *testing.T, o *ours, before IKESAInfo) {
	t.Helper()
	for i := 0; i < 100; i++ {
		sas := o.d.SAs()
		if len(sas) == 1 && sas[0].State == "established" && sas[0].SPIi != before.SPIi && len(sas[0].Children) == 1 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("IKE SA not rekeyed: %+v", o.d.SAs())
}

// TestStrongSwanRekeyCollision: both sides rekey the same Child SA at once
// (RFC 7296 §2.8.1). Afterwards exactly one new Child SA is left on each
// side, the same one, and it carries traffic.
func TestStrongSwanRekeyCollision(t *testing.T) {
	n := newIKENet(t)
	s := n.startSwan(t, n.swanctlConf("aes128gcm16-prfsha256-x25519", "aes128gcm16-x25519,aes128gcm16"))
	o := n.startOurs(t, crypto.SuiteAES128GCM16, "aes128gcm16-prfsha256-x25519", true, 4500, nil)
	first := waitFor(t, o.h.installed, "child SA", 15*time.Second)
	// our answer to charon's request a moment after our request: charon
	// hands each message to a worker thread, and one that reached it
	// first could still be taken second
	o.holdRekey(t, forceChildRekey, 200*time.Millisecond)
	swanctl(t, s, "--rekey", "--child", "vx")
	// each side installs the SA of its own exchange and of the peer's; the
	// redundant one and the old one are deleted
	// (installs and deletes come on two channels, so a delete may be read
	// before the install that preceded it)
	live := map[uint32]ChildSA{first.InSPI: first}
	gone := map[uint32]bool{}
	installs, deletes := 0, 0
	event := func(deadline <-chan time.Time) bool {
		select {
		case c := <-o.h.installed:
			installs++
			if !gone[c.InSPI] {
				live[c.InSPI] = c
			}
		case d := <-o.h.deleted:
			deletes++
			gone[d[0]] = true
			delete(live, d[0])
		case <-deadline:
			return false
		}
		return true
	}
	// Either both exchanges complete (charon sees the collision): two
	// installs, and two deletes (the redundant SA and the old one); or,
	// on a loaded machine, charon takes our answer to its request before
	// our request and refuses that with TEMPORARY_FAILURE, as the SA it
	// would rekey is going: one install, one delete.
	collided := func() bool { return installs >= 2 && deletes >= 2 }
	refused := func() bool {
		return installs >= 1 && deletes >= 1 && strings.Contains(s.Log(), "N(TEMP_FAIL)")
	}
	deadline := time.After(15 * time.Second)
	for !collided() && !refused() {
		if !event(time.After(100 * time.Millisecond)) { // quiet: look at charon's log again
			select {
			case <-deadline:
				t.Fatalf("after the collision: %d installs, %d deletes, live SAs %v", installs, deletes, live)
			default:
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // anything more would be a mistake
	for len(o.h.deleted)+len(o.h.installed) > 0 {
		event(nil)
	}
	if collided() {
		if installs != 2 || deletes != 2 || !strings.Contains(s.Log(), "collision") {
			t.Errorf("%d installs and %d deletes, want 2 and 2, and charon's log of the collision", installs, deletes)
		}
	} else {
		t.Logf("charon refused our rekey with TEMPORARY_FAILURE (it had taken our answer to its own first)")
		if installs != 1 || deletes != 1 {
			t.Errorf("%d installs and %d deletes, want 1 and 1", installs, deletes)
		}
	}
	if len(live) != 1 {
		for spi := range live {
			t.Logf("live: %08x", spi)
		}
		t.Fatalf("live SAs after the collision: got %d, want 1", len(live))
	}
	var c ChildSA
	for _, c = range live {
	}
	// strongSwan's deletes may still be on their way
	waitSwanCount(t, s, "INSTALLED, TUNNEL", 1)
	checkSwanSA(t, s, c, "AES_GCM_16-128")
	n.checkTraffic(t, o, c, "after the collision")
}

// waitSwanCount waits up to 10 s until swanctl --list-sas shows what
// want times (an error if it never does).
func waitSwanCount(t *testing.T, s *nstest.Charon, what string, want int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out := swanctl(t, s, "--list-sas")
		cnt := strings.Count(out, what)
		if cnt == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("swanctl --list-sas shows %q %d times after 10s, want %d:\n%s", what, cnt, want, out)
			return
		}
	}
}

// TestStrongSwanIKERekeyCollision: both sides rekey the IKE SA at once.
// vxswitch answers TEMPORARY_FAILURE to a rekey that collides with its own
// (RFC 7296 §2.25). Which of the outcomes the RFC allows charon reaches
// depends on the order its worker threads take our request and our answer:
// it sees the collision and lets ours win, or it takes our refusal first
// and then our request as an ordinary rekey, or it refuses ours too and
// one side retries. The test asserts what every outcome must leave: one
// IKE SA on each side, the same one, not the old one, its Child SA
// rekeyable over it and carrying traffic, and the peer never down.
func TestStrongSwanIKERekeyCollision(t *testing.T) {
	n := newIKENet(t)
	s := n.startSwan(t, n.swanctlConf("aes128gcm16-prfsha256-x25519", "aes128gcm16-x25519,aes128gcm16"))
	o := n.startOurs(t, crypto.SuiteAES128GCM16, "aes128gcm16-prfsha256-x25519", true, 4500, nil)
	c := waitFor(t, o.h.installed, "child SA", 15*time.Second)
	before := o.d.SAs()[0]
	o.holdRekey(t, forceIKERekey, 0)
	swanctl(t, s, "--rekey", "--ike", "vx")
	waitIKERekeyed(t, o, before)
	switch log := s.Log(); {
	case strings.Contains(log, "detected IKE_REKEY collision"):
		t.Logf("outcome: charon saw the collision")
	case strings.Contains(log, "N(TEMP_FAIL)"):
		t.Logf("outcome: charon took our refusal before our request")
	default:
		t.Logf("outcome: neither collision nor refusal in charon's log (one side retried)")
	}
	waitSwanIKESA(t, s, o, before)
	forceChildRekey(o.d)
	c = waitRekeyed(t, o, c)
	checkSwanSA(t, s, c, "AES_GCM_16-128")
	n.checkTraffic(t, o, c, "after the IKE rekey collision")
	select {
	case p := <-o.h.down:
		t.Errorf("PeerDown(%s)", p)
	default:
	}
}

// waitSwanIKESA waits until strongSwan holds exactly one IKE SA, the one
// our daemon holds, and not before (the old one deleted). The bound is
// our Delete's retransmissions (RetransmitTimeout 500 ms, 5 tries: 15.5 s)
// plus a retry of a refused rekey (RetryInterval 5 s: at most 7.5 s).
func waitSwanIKESA(t *testing.T, s *nstest.Charon, o *ours, before IKESAInfo) {
	t.Helper()
	var out string
	var sas []IKESAInfo
	for deadline := time.Now().Add(25 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out = swanctl(t, s, "--list-sas")
		sas = o.d.SAs()
		if len(sas) == 1 && strings.Count(out, "ESTABLISHED, IKEv2") == 1 &&
			strings.Contains(out, fmt.Sprintf("%016x_i", sas[0].SPIi)) &&
			!strings.Contains(out, fmt.Sprintf("%016x_i", before.SPIi)) {
			return
		}
	}
	t.Fatalf("after 25 s our IKE SAs %+v (old %016x) are not strongSwan's one:\n%s", sas, before.SPIi, out)
}

// TestStrongSwanRestart: vxswitch restarts while strongSwan holds the old
// SAs. strongSwan's liveness check reaches the new daemon, which initiates
// with INITIAL_CONTACT; strongSwan replaces its stale SAs and traffic flows.
func TestStrongSwanRestart(t *testing.T) {
	n := newIKENet(t)
	s := n.startSwan(t, n.swanctlConf("aes128gcm16-prfsha256-x25519", "aes128gcm16"))
	o := n.startOurs(t, crypto.SuiteAES128GCM16, "aes128gcm16-prfsha256-x25519", false, 4500, nil)
	swanctl(t, s, "--initiate", "--child", "vx", "--timeout", "10")
	c := waitFor(t, o.h.installed, "child SA", 15*time.Second)
	n.checkTraffic(t, o, c, "before the restart")
	o.stop()
	o2 := n.startOurs(t, crypto.SuiteAES128GCM16, "aes128gcm16-prfsha256-x25519", false, 4500, nil)
	c2 := waitFor(t, o2.h.installed, "child SA after the restart (strongSwan dpd_delay 5s)", 20*time.Second)
	// INITIAL_CONTACT: charon drops the stale SAs in a job of its own
	waitSwanCount(t, s, "ESTABLISHED, IKEv2", 1)
	checkSwanSA(t, s, c2, "AES_GCM_16-128")
	n.checkTraffic(t, o2, c2, "after the restart")
}
