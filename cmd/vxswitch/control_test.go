package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/evpn"
)

func TestControlSocketFiles(t *testing.T) {
	checkGoroutines(t)
	_, path := startControl(t, newFakeSwitch())
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("got socket mode %v, want a socket with 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("got directory mode %v, want 0700", di.Mode().Perm())
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("got %d files in the socket directory, want only the socket", len(ents))
	}
}

func TestControlShow(t *testing.T) {
	checkGoroutines(t)
	sw := newFakeSwitch()
	_, path := startControl(t, sw)

	var fdb []dataplane.FDBEntry
	var peers []dataplane.PeerStatus
	var sas []dataplane.SAStatus
	var stats []dataplane.Counter
	for _, tt := range []struct {
		what      string
		got, want any
	}{
		{"fdb", &fdb, sw.fdb},
		{"peers", &peers, sw.peers},
		{"sas", &sas, sw.sas},
		{"stats", &stats, sw.stats},
	} {
		t.Run(tt.what, func(t *testing.T) {
			if err := show(path, tt.what, tt.what == "sas", tt.got); err != nil {
				t.Fatal(err)
			}
			if got := reflect.ValueOf(tt.got).Elem().Interface(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// rawSession speaks the protocol by hand.
func rawSession(t *testing.T, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func TestControlProtocol(t *testing.T) {
	checkGoroutines(t)
	sw := newFakeSwitch()
	sw.stats = nil // an empty table is [], not null
	_, path := startControl(t, sw)
	c, r := rawSession(t, path)

	// Several requests on one connection, each answered by one line.
	tests := []struct {
		req  string
		want string
	}{
		{`{"cmd":"show","what":"stats"}`, `{"ok":true,"data":[]}`},
		{`{"cmd":"show","what":"nope"}`, `{"ok":false,"error":"show: unknown table \"nope\" (want fdb, peers, sas, stats or evpn)"}`},
		{`{"cmd":"reboot"}`, `{"ok":false,"error":"unknown command \"reboot\" (want show or capture)"}`},
		{`{"cmd":"capture","point":"wire"}`, `{"ok":false,"error":"capture: unknown point \"wire\" (want tap, underlay or inner)"}`},
		{`{"cmd":"show","what":"peers"}`, `{"ok":true,"data":[{"name":"sakura"`},
	}
	for _, tt := range tests {
		if _, err := io.WriteString(c, tt.req+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", tt.req, err)
		}
		if !strings.HasPrefix(line, tt.want) {
			t.Errorf("%s: got %s, want %s", tt.req, line, tt.want)
		}
	}
	// A line that is not JSON ends the connection after an error.
	io.WriteString(c, "show fdb\n")
	line, _ := r.ReadString('\n')
	if !strings.HasPrefix(line, `{"ok":false,"error":"bad request: `) {
		t.Errorf("got %q, want a bad request error", line)
	}
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Errorf("got %v after a bad request, want EOF", err)
	}
}

func TestControlCaptureErrors(t *testing.T) {
	checkGoroutines(t)
	sw := newFakeSwitch()
	_, path := startControl(t, sw)
	for _, tt := range []struct{ req, want string }{
		{`{"cmd":"capture","point":"inner","vni":16777216}`, "capture: vni 16777216 is out of range (0..16777215)"},
		{`{"cmd":"capture","point":"tap","count":-1}`, "capture: count -1 is negative"},
		{`{"cmd":"capture"}`, `capture: unknown point ""`},
	} {
		c, r := rawSession(t, path)
		io.WriteString(c, tt.req+"\n")
		var resp controlResponse
		line, _ := r.ReadBytes('\n')
		if err := json.Unmarshal(line, &resp); err != nil {
			t.Fatalf("%s: %v", tt.req, err)
		}
		if resp.OK || !strings.HasPrefix(resp.Error, tt.want) {
			t.Errorf("%s: got %+v, want error %q", tt.req, resp, tt.want)
		}
	}
	select {
	case s := <-sw.sessions:
		t.Errorf("a refused capture started a session: %+v", s)
	default:
	}
}

func TestControlPermission(t *testing.T) {
	checkGoroutines(t)
	_, path := startControl(t, newFakeSwitch(), func(s *controlServer) {
		s.allowed = func(uid uint32) bool { return uid == 12345 } // not us
	})
	var fdb []dataplane.FDBEntry
	err := show(path, "fdb", false, &fdb)
	if !errors.Is(err, ErrControl) || !strings.Contains(err.Error(), "permission denied: uid") {
		t.Errorf("got %v, want permission denied", err)
	}
	if uid, err := peerUID(mustDialUnix(t, path)); err != nil {
		t.Errorf("peerUID: %v", err)
	} else if uid != uint32(os.Getuid()) {
		t.Errorf("got peer uid %d, want %d", uid, os.Getuid())
	}
}

func mustDialUnix(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := dialControl(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestControlStaleAndLive(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")

	// A socket nobody listens on any more is removed.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	s, err := listenControl(path, newFakeSwitch(), discardLogger())
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	go s.Serve(context.Background())

	// A live one is refused and left alone.
	if _, err := listenControl(path, newFakeSwitch(), discardLogger()); !errors.Is(err, ErrControlInUse) {
		t.Errorf("live socket: got %v, want ErrControlInUse", err)
	}
	var peers []dataplane.PeerStatus
	if err := show(path, "peers", false, &peers); err != nil {
		t.Errorf("the first server stopped answering: %v", err)
	}

	// Close removes the socket.
	s.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close: got %v, want the socket removed", err)
	}

	// A regular file is never removed.
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenControl(path, newFakeSwitch(), discardLogger()); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("regular file: got %v, want 'is not a socket'", err)
	}
	os.Remove(path)

	// Close leaves a socket that replaced ours alone.
	s1, err := listenControl(path, newFakeSwitch(), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	s2, err := listenControl(path, newFakeSwitch(), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	s1.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("closing the old server removed the new socket: %v", err)
	}
	s2.Close()
}

// vxlanPacket builds an inner packet as the inner capture point shows
// it: IPv4 | UDP 4789 | VXLAN | Ethernet | IPv4 | ICMP.
func vxlanPacket(t *testing.T, vni uint32, seq uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	inIP := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP{10, 11, 129, 1}, DstIP: net.IP{10, 11, 129, 2}}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: seq}
	outIP := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{172, 31, 0, 1}, DstIP: net.IP{172, 31, 0, 2}}
	udp := &layers.UDP{SrcPort: 54321, DstPort: 4789}
	udp.SetNetworkLayerForChecksum(outIP)
	vx := &layers.VXLAN{ValidIDFlag: true, VNI: vni}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, outIP, udp, vx, eth, inIP, icmp, gopacket.Payload("ping")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readPcap reads a whole pcap file.
func readPcap(t *testing.T, b []byte) (layers.LinkType, [][]byte) {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("pcap header: %v", err)
	}
	var pkts [][]byte
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return r.LinkType(), pkts
		}
		if err != nil {
			t.Fatalf("pcap packet %d: %v", len(pkts), err)
		}
		if ci.CaptureLength != len(data) || ci.Length < ci.CaptureLength {
			t.Errorf("packet %d: capture info %+v for %d bytes", len(pkts), ci, len(data))
		}
		pkts = append(pkts, data)
	}
}

// waitPcapPackets waits until the pcap file at path holds n whole packets
// (the capture client flushes whenever it has read all it was sent).
func waitPcapPackets(t *testing.T, path string, n int) {
	t.Helper()
	got := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		r, err := pcapgo.NewReader(bytes.NewReader(b))
		if err != nil {
			continue
		}
		for got = 0; ; got++ {
			if _, _, err := r.ReadPacketData(); err != nil {
				break
			}
		}
		if got >= n {
			return
		}
	}
	t.Fatalf("%s holds %d packets after 10s, want %d", path, got, n)
}

func TestCaptureCount(t *testing.T) {
	checkGoroutines(t)
	sw := newFakeSwitch()
	_, path := startControl(t, sw)
	out := filepath.Join(t.TempDir(), "inner.pcap")

	var want [][]byte
	for i := range 5 {
		want = append(want, vxlanPacket(t, 129, uint16(i)))
	}
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- runMain(context.Background(), []string{"capture", "-S", path, "-p", "inner", "-s", "129", "-n", "3", "-w", out}, io.Discard, &stderr)
	}()
	s := nextSession(t, sw)
	if s.point != dataplane.CaptureInner || s.vni != 129 {
		t.Errorf("got session at %v vni %d, want inner 129", s.point, s.vni)
	}
	for _, p := range want {
		s.c <- dataplane.CapturedPacket{Time: time.Now(), VNI: 129, Data: p}
	}
	if code := <-done; code != exitOK {
		t.Fatalf("got exit code %d, want 0; stderr: %s", code, stderr.String())
	}
	s.waitClosed(t)
	if got := stderr.String(); got != "3 packets captured\n" {
		t.Errorf("got stderr %q", got)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("got pcap file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(out)
	lt, pkts := readPcap(t, b)
	if lt != layers.LinkTypeRaw {
		t.Errorf("got link type %v, want raw IP", lt)
	}
	if len(pkts) != 3 {
		t.Fatalf("got %d packets, want 3", len(pkts))
	}
	for i, p := range pkts {
		if !bytes.Equal(p, want[i]) {
			t.Errorf("packet %d differs", i)
		}
		// An independent decoder sees IPv4/UDP/VXLAN/Ethernet/IPv4/ICMP.
		pkt := gopacket.NewPacket(p, layers.LayerTypeIPv4, gopacket.Default)
		vx, _ := pkt.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		icmp, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if vx == nil || vx.VNI != 129 || icmp == nil || icmp.Seq != uint16(i) {
			t.Errorf("packet %d decodes as %v", i, pkt)
		}
	}
}

func TestCaptureStdoutTAP(t *testing.T) {
	checkGoroutines(t)
	sw := newFakeSwitch()
	_, path := startControl(t, sw)
	var stdout bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(context.Background(), []string{"capture", "-p", "tap", "-n", "2", "-w", "-", "-S", path}, &stdout, io.Discard)
	}()
	s := nextSession(t, sw)
	frame := vxlanPacket(t, 1, 1)[36:] // the inner Ethernet frame
	big := make([]byte, captureSnapLen+100)
	s.c <- dataplane.CapturedPacket{Time: time.Now(), Data: frame}
	s.c <- dataplane.CapturedPacket{Time: time.Now(), Data: big}
	if code := <-done; code != exitOK {
		t.Fatalf("got exit code %d, want 0", code)
	}
	lt, pkts := readPcap(t, stdout.Bytes())
	if lt != layers.LinkTypeEthernet || len(pkts) != 2 {
		t.Fatalf("got link type %v and %d packets, want Ethernet and 2", lt, len(pkts))
	}
	if pkt := gopacket.NewPacket(pkts[0], layers.LayerTypeEthernet, gopacket.Default); pkt.Layer(layers.LayerTypeICMPv4) == nil {
		t.Errorf("frame decodes as %v", pkt)
	}
	if len(pkts[1]) != captureSnapLen {
		t.Errorf("got %d bytes of an oversized packet, want the snap length %d", len(pkts[1]), captureSnapLen)
	}
}

func TestCaptureClientGoes(t *testing.T) {
	checkGoroutines(t)
	sw := newFakeSwitch()
	_, path := startControl(t, sw)
	c, r := rawSession(t, path)
	io.WriteString(c, `{"cmd":"capture","point":"underlay"}`+"\n")
	s := nextSession(t, sw)
	if line, _ := r.ReadString('\n'); line != `{"ok":true}`+"\n" {
		t.Fatalf("got %q", line)
	}
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	s.c <- dataplane.CapturedPacket{Time: time.Now(), Data: []byte{0x45, 0, 0, 20}}
	if data, _, err := pr.ReadPacketData(); err != nil || len(data) != 4 {
		t.Fatalf("got %x, %v", data, err)
	}
	c.Close() // no count: the capture runs until the client goes
	s.waitClosed(t)
}

func TestCaptureServerStops(t *testing.T) {
	checkGoroutines(t)
	sw := newFakeSwitch()
	srv, path := startControl(t, sw)
	out := filepath.Join(t.TempDir(), "x.pcap")
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- runMain(context.Background(), []string{"capture", "-S", path, "-p", "inner", "-n", "10", "-w", out}, io.Discard, &stderr)
	}()
	s := nextSession(t, sw)
	s.c <- dataplane.CapturedPacket{Time: time.Now(), Data: vxlanPacket(t, 5, 1)}
	waitPcapPackets(t, out, 1)
	srv.Close()
	s.waitClosed(t)
	if code := <-done; code != exitRuntime {
		t.Errorf("got exit code %d, want 1 (fewer packets than asked)", code)
	}
	if !strings.Contains(stderr.String(), "the switch ended the capture after 1 of 10 packets") {
		t.Errorf("got stderr %q", stderr.String())
	}
	b, _ := os.ReadFile(out)
	if _, pkts := readPcap(t, b); len(pkts) != 1 {
		t.Errorf("got %d packets, want the 1 sent before the stop", len(pkts))
	}
}

func TestCaptureInterrupted(t *testing.T) {
	checkGoroutines(t)
	sw := newFakeSwitch()
	_, path := startControl(t, sw)
	out := filepath.Join(t.TempDir(), "x.pcap")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"capture", "-S", path, "-p", "inner", "-w", out}, io.Discard, io.Discard)
	}()
	s := nextSession(t, sw)
	for i := range 20 {
		s.c <- dataplane.CapturedPacket{Time: time.Now(), Data: vxlanPacket(t, 5, uint16(i))}
	}
	waitPcapPackets(t, out, 20)
	cancel() // as SIGINT does
	if code := <-done; code != exitOK {
		t.Errorf("got exit code %d, want 0", code)
	}
	s.waitClosed(t)
	b, _ := os.ReadFile(out)
	if _, pkts := readPcap(t, b); len(pkts) != 20 {
		t.Errorf("got %d packets, want 20", len(pkts))
	}
}

// TestWriteEVPNRouteTargets: show evpn lists each segment's route targets
// in VNI order and says which are set by hand.
func TestWriteEVPNRouteTargets(t *testing.T) {
	var b bytes.Buffer
	st := evpn.Status{RouteTargets: map[encap.VNI]evpn.SegmentRouteTargets{
		1000: {Targets: []string{"65000:1000", "65000:268436456"}}, 129: {Targets: []string{"4200000001:129"}, Manual: true}}}
	if err := writeEVPN(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	rows := regexp.MustCompile(`(?m)^129\s+4200000001:129\s+set by hand\n1000\s+65000:1000 65000:268436456\s+derived$`)
	if !rows.MatchString(out) {
		t.Errorf("show evpn:\n%s", out)
	}
}
