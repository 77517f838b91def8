package encap

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/vxswitch/vxswitch/internal/nstest"
)

// icmpFrame builds an inner Ethernet/IPv4/ICMP echo request of n bytes
// with gopacket.
func icmpFrame(t *testing.T, n int, src net.HardwareAddr, seq uint16) []byte {
	t.Helper()
	data := make([]byte, n-14-20-8)
	for i := range data {
		data[i] = byte(i)
	}
	return serialize(t,
		&layers.Ethernet{SrcMAC: src, DstMAC: gpDstMAC, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Id: seq, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IPv4(10, 9, 0, 1), DstIP: net.IPv4(10, 9, 0, 2)},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 0x77, Seq: seq},
		gopacket.Payload(data))
}

// TestTsharkDecodesVXLAN writes a pcap of Ethernet/IPv4/UDP:4789/VXLAN/
// Ethernet/IPv4/ICMP packets built by EncapIP (the tunnel-inner packets of
// ESP mode, with an outer Ethernet put in front for the capture), one of
// them split by FragmentIPv4, and checks that tshark, with IPv4 reassembly
// on, decodes VXLAN and the inner Ethernet of every packet and reassembles
// the fragmented one.
func TestTsharkDecodesVXLAN(t *testing.T) {
	tshark := nstest.RequireTool(t, "tshark")
	tun := Tunnel{Src: testSrc4, Dst: testDst4}
	outer := func(pkt []byte) []byte { return withOuterEthernet(pkt, EtherTypeIPv4) }

	type want struct {
		vni       VNI
		innerSrc  net.HardwareAddr
		fragments int
		frameLen  int
	}
	cases := []want{
		{vni: 100, innerSrc: net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 1}, frameLen: 98},
		{vni: 0xabcdef, innerSrc: net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 2}, frameLen: 1514},
		{vni: 300, innerSrc: net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 3}, frameLen: 4000, fragments: 3},
	}
	var packets [][]byte
	for i, c := range cases {
		frame := icmpFrame(t, c.frameLen, c.innerSrc, uint16(i+1))
		buf := make([]byte, 64+len(frame))
		copy(buf[64:], frame)
		start, err := EncapIP(buf, 64, len(frame), c.vni, &tun, uint16(0x1000+i))
		if err != nil {
			t.Fatalf("EncapIP() error = %v", err)
		}
		pkt := buf[start:]
		if c.fragments == 0 {
			packets = append(packets, outer(pkt))
			continue
		}
		out := make([][]byte, 8)
		sizes := make([]int, len(out))
		for j := range out {
			out[j] = make([]byte, 1500)
		}
		n, err := FragmentIPv4(pkt, 1500, uint16(0x2000+i), out, sizes)
		if err != nil {
			t.Fatalf("FragmentIPv4() error = %v", err)
		}
		if n != c.fragments {
			t.Fatalf("FragmentIPv4() made %d fragments, want %d", n, c.fragments)
		}
		// Send them out of order: last, first, middle.
		order := []int{n - 1}
		for j := 0; j < n-1; j++ {
			order = append(order, j)
		}
		for _, j := range order {
			packets = append(packets, outer(out[j][:sizes[j]]))
		}
	}

	path := filepath.Join(t.TempDir(), "vxlan.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatalf("write pcap header: %v", err)
	}
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, p := range packets {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(p), Length: len(p)}
		if err := w.WritePacket(ci, p); err != nil {
			t.Fatalf("write packet %d: %v", i, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(tshark, "-n", "-r", path, "-o", "ip.defragment:TRUE", "-o", "ip.check_checksum:TRUE", "-Y", "vxlan",
		"-T", "fields", "-E", "separator=/t", "-E", "aggregator=,",
		"-e", "vxlan.vni", "-e", "eth.src", "-e", "ip.src", "-e", "icmp.type", "-e", "icmp.seq",
		"-e", "ip.fragment.count", "-e", "ip.reassembled.length", "-e", "_ws.expert", "-e", "ip.checksum.status")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	t.Logf("tshark output:\n%s", outb)
	lines := strings.Split(strings.TrimSpace(string(outb)), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("tshark shows %d VXLAN packets, want %d (one per datagram, the fragmented one once reassembled)", len(lines), len(cases))
	}
	for i, c := range cases {
		fields := strings.Split(lines[i], "\t")
		for len(fields) < 9 {
			fields = append(fields, "")
		}
		if got, want := fields[0], fmt.Sprint(uint32(c.vni)); got != want {
			t.Errorf("packet %d: vxlan.vni = %q, want %q", i, got, want)
		}
		// eth.src lists the outer then the inner Ethernet source.
		if got, want := fields[1], "02:00:00:00:00:0a,"+c.innerSrc.String(); got != want {
			t.Errorf("packet %d: eth.src = %q, want %q (outer, inner)", i, got, want)
		}
		if got, want := fields[2], testSrc4.String()+",10.9.0.1"; got != want {
			t.Errorf("packet %d: ip.src = %q, want %q (tunnel, inner)", i, got, want)
		}
		if got := fields[3]; got != "8" {
			t.Errorf("packet %d: icmp.type = %q, want 8 (echo request)", i, got)
		}
		if got, want := fields[4], fmt.Sprint(i+1); got != want {
			t.Errorf("packet %d: icmp.seq = %q, want %q", i, got, want)
		}
		if c.fragments > 0 {
			if got, want := fields[5], fmt.Sprint(c.fragments); got != want {
				t.Errorf("packet %d: ip.fragment.count = %q, want %q", i, got, want)
			}
			if got, want := fields[6], fmt.Sprint(c.frameLen+InnerIPv4Overhead-IPv4MinHeaderLen); got != want {
				t.Errorf("packet %d: ip.reassembled.length = %q, want %q", i, got, want)
			}
		}
		// Wireshark's checksum status: 1 is good (outer and inner IPv4).
		if got := fields[8]; got != "1,1" {
			t.Errorf("packet %d: ip.checksum.status = %q, want \"1,1\"", i, got)
		}
		if fields[7] != "" {
			t.Errorf("packet %d: tshark expert info %q, want none (bad checksum or malformed?)", i, fields[7])
		}
	}
}
