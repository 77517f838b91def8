package crypto

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/vxswitch/vxswitch/internal/nstest"
	"github.com/vxswitch/vxswitch/internal/testframe"
)

// tsharkFrame is one overlay frame of the capture and what tshark must
// find in it once decrypted.
type tsharkFrame struct {
	vni      uint32
	src, dst net.HardwareAddr
}

// innerPacket builds the ESP payload the dataplane would seal: inner IPv4
// (VTEP to VTEP) / UDP to 4789 / VXLAN / Ethernet / IPv4 / ICMP echo.
func innerPacket(t *testing.T, f tsharkFrame, id uint16) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{172, 31, 0, 1}, DstIP: net.IP{172, 31, 0, 2}, Id: id}
	udp := &layers.UDP{SrcPort: 49152 + layers.UDPPort(id), DstPort: 4789}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	hostIP := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4,
		SrcIP: net.IP{10, 11, 129, 1}, DstIP: net.IP{10, 11, 129, 2}}
	return testframe.Serialize(t, ip, udp,
		&layers.VXLAN{ValidIDFlag: true, VNI: f.vni},
		&layers.Ethernet{SrcMAC: f.src, DstMAC: f.dst, EthernetType: layers.EthernetTypeIPv4},
		hostIP,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: id},
		gopacket.Payload(bytes.Repeat([]byte("vxswitch"), 8)),
	)
}

// TestTsharkDecrypts seals VXLAN-in-IPv4 packets with AES-GCM, writes them
// as ESP-in-UDP (port 4500) to a pcap, and has tshark decrypt them with
// the SA line from WiresharkSA: tshark must show the inner IPv4, UDP,
// VXLAN and Ethernet layers with the VNIs and MACs we put in.
//
// Caveats of tshark 4.0 (Debian 12): it does not verify the GCM ICV (it
// decrypts in CTR mode and shows the ICV unchecked), so this test proves
// the framing, key, salt and IV, not the AAD; and it cannot decrypt
// ChaCha20-Poly1305 ESP at all (added in later releases). The published
// vectors (TestVectors) cover the AAD, ESN and ChaCha20-Poly1305. ESN is
// invisible to tshark for the same reason: the high bits only enter the
// AAD, so the ESN SA below decrypts like the other.
func TestTsharkDecrypts(t *testing.T) {
	tshark := nstest.RequireTool(t, "tshark")
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.2")
	frames := []tsharkFrame{
		{129, net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x01}, net.HardwareAddr{0x02, 0, 0, 0, 0x02, 0x02}},
		{130, net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01}, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{0xabcdef, net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}, net.HardwareAddr{0x02, 0x66, 0x77, 0x88, 0x99, 0x00}},
	}
	sas := []SAConfig{
		{SPI: 0xc0de0128, Suite: SuiteAES128GCM16, Keymat: testKeymat(SuiteAES128GCM16, 0x30)},
		{SPI: 0xc0de0256, Suite: SuiteAES256GCM16, Keymat: testKeymat(SuiteAES256GCM16, 0x60), ESN: true},
	}

	dir := t.TempDir()
	pcapPath := filepath.Join(dir, "esp.pcap")
	f, err := os.Create(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	var uat strings.Builder
	type want struct {
		spi uint32
		tsharkFrame
	}
	var wants []want
	ts := time.Unix(1_800_000_000, 0)
	for _, cfg := range sas {
		o, err := NewOutboundSA(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ESN {
			o.seq.Store(1<<32 - 2) // cross the 2^32 boundary
		}
		uat.WriteString(o.WiresharkSA(src, dst) + "\n")
		for i, fr := range frames {
			inner := innerPacket(t, fr, uint16(i+1))
			buf := make([]byte, HeaderLen+len(inner)+MaxTrailerLen)
			copy(buf[HeaderLen:], inner)
			n, err := o.Seal(buf, len(inner), NextHeaderIPv4)
			if err != nil {
				t.Fatal(err)
			}
			outer := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Flags: layers.IPv4DontFragment,
				SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
			udp := &layers.UDP{SrcPort: 4500, DstPort: 4500}
			if err := udp.SetNetworkLayerForChecksum(outer); err != nil {
				t.Fatal(err)
			}
			frame := testframe.Serialize(t,
				&layers.Ethernet{SrcMAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4},
				outer, udp, gopacket.Payload(buf[:n]))
			ts = ts.Add(time.Millisecond)
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(frame), Length: len(frame)}, frame); err != nil {
				t.Fatal(err)
			}
			wants = append(wants, want{cfg.SPI, fr})
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// A private configuration directory: tshark reads esp_sa (the UAT) and
	// preferences from it. UDP port 4500 is dissected as UDP-encapsulated
	// ESP by default. Negative control first: without the SA lines tshark
	// must not find any VXLAN.
	run := func(uatText string) []byte {
		conf := t.TempDir()
		if err := os.WriteFile(filepath.Join(conf, "esp_sa"), []byte(uatText), 0o600); err != nil {
			t.Fatal(err)
		}
		prefs := "esp.enable_encryption_decode: TRUE\n"
		if err := os.WriteFile(filepath.Join(conf, "preferences"), []byte(prefs), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tshark, "-r", pcapPath, "-n",
			"-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,",
			"-e", "esp.spi", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport",
			"-e", "vxlan.vni", "-e", "eth.src", "-e", "eth.dst", "-e", "icmp.type")
		// WIRESHARK_CONFIG_DIR makes conf the personal configuration directory.
		cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+conf)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, stderr.String())
		}
		return out
	}
	if out := run(""); bytes.Contains(out, []byte("4789")) {
		t.Fatalf("tshark decrypted without the SA:\n%s", out)
	}
	out := run(uat.String())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(wants) {
		t.Fatalf("tshark printed %d lines, want %d:\n%s", len(lines), len(wants), out)
	}
	for i, line := range lines {
		fields := strings.Split(line, "|")
		w := wants[i]
		if len(fields) != 8 {
			t.Fatalf("frame %d: got %q", i+1, line)
		}
		wantFields := []string{
			fmt.Sprintf("0x%08x", w.spi),
			"192.0.2.1,172.31.0.1,10.11.129.1",
			"198.51.100.2,172.31.0.2,10.11.129.2",
			"4500,4789",
			strconv.FormatUint(uint64(w.vni), 10),
			"52:54:00:00:00:01," + w.src.String(),
			"52:54:00:00:00:02," + w.dst.String(),
			"8",
		}
		for j, wf := range wantFields {
			if fields[j] != wf {
				t.Errorf("frame %d field %d: got %q, want %q\n(line %q)", i+1, j, fields[j], wf, line)
			}
		}
	}
	if t.Failed() {
		t.Logf("esp_sa:\n%s", uat.String())
		v, _ := exec.Command(tshark, "-r", pcapPath, "-V", "-c", "1").CombinedOutput()
		t.Logf("tshark -V of frame 1 (without the SA):\n%s", v)
	}
}
