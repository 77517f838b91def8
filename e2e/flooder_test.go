package e2e

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/internal/nstest"
)

// The flooders of the hardening tests: raw IPv4 from an attacker's
// namespace (any source address, any port, so also "from" a peer whose
// own socket holds its port), Ethernet frames into a site's TAP, and
// forged ESP with a peer's real keys (a compromised site).

// pace calls send(i) rate times a second for d, or until stop is closed,
// and returns how many it sent.
func pace(rate int, d time.Duration, stop <-chan struct{}, send func(i int)) int {
	start := time.Now()
	sent := 0
	for {
		el := time.Since(start)
		if el >= d {
			return sent
		}
		select {
		case <-stop:
			return sent
		default:
		}
		for due := int(el.Seconds() * float64(rate)); sent < due; sent++ {
			send(sent)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// rawSender sends IPv4 packets whose header it writes itself.
type rawSender struct{ fd int }

// newRawSender opens a raw IPv4 socket (IP_HDRINCL) in s's namespace.
func newRawSender(t *testing.T, s *nstest.Site) *rawSender {
	t.Helper()
	var r rawSender
	err := s.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		r.fd = fd
		return err
	})
	if err != nil {
		t.Fatalf("raw socket in %s: %v", s.Name, err)
	}
	t.Cleanup(func() { unix.Close(r.fd) })
	return &r
}

// sendUDP sends payload from src to dst over UDP (checksum 0, as IPv4 allows).
func (r *rawSender) sendUDP(buf []byte, src, dst netip.AddrPort, payload []byte) {
	n := 28 + len(payload)
	pkt := buf[:n]
	ipv4Header(pkt, src.Addr(), dst.Addr(), unix.IPPROTO_UDP, 0, false, 0)
	binary.BigEndian.PutUint16(pkt[20:], src.Port())
	binary.BigEndian.PutUint16(pkt[22:], dst.Port())
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload)))
	binary.BigEndian.PutUint16(pkt[26:], 0)
	copy(pkt[28:], payload)
	unix.Sendto(r.fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.Addr().As4()})
}

// ipv4Header writes a 20-byte IPv4 header for a packet of len(pkt) bytes.
func ipv4Header(pkt []byte, src, dst netip.Addr, proto uint8, id uint16, moreFragments bool, offset int) {
	pkt[0], pkt[1] = 0x45, 0
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	binary.BigEndian.PutUint16(pkt[4:], id)
	frag := uint16(offset / 8)
	if moreFragments {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(pkt[6:], frag)
	pkt[8], pkt[9] = 64, proto
	pkt[10], pkt[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(pkt[12:16], s[:])
	copy(pkt[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pkt[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(pkt[10:], ^uint16(sum))
}

// ikeInit is a genuine IKE_SA_INIT request seen on the wire.
type ikeInit struct {
	msg  []byte // the IKE message, without a non-ESP marker
	port uint16 // the UDP port it was sent to
}

// captureIKEInit opens a packet socket on s's underlay and returns a
// function that waits for the first IKE_SA_INIT request (without a
// COOKIE) sent to s. Open it before the sites start.
func captureIKEInit(t *testing.T, s *nstest.Site) func(timeout time.Duration) ikeInit {
	t.Helper()
	var fd int
	err := s.Do(func() error {
		ifi, err := net.InterfaceByName(s.Dev)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_IP))
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, proto)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("packet socket on %s: %v", s.Name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return func(timeout time.Duration) ikeInit {
		t.Helper()
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		buf := make([]byte, 65536)
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil || n < 28 || buf[9] != unix.IPPROTO_UDP || netip.AddrFrom4([4]byte(buf[16:20])) != s.Addr {
				continue
			}
			ihl := int(buf[0]&0xf) * 4
			udp := buf[ihl:n]
			port := binary.BigEndian.Uint16(udp[2:])
			msg := udp[8:]
			if port == 4500 && len(msg) >= 4 && binary.BigEndian.Uint32(msg) == 0 {
				msg = msg[4:]
			} else if port != 500 {
				continue
			}
			// SPIr zero, IKE_SA_INIT (34), the initiator flag, a request, first payload SA (33).
			if len(msg) >= 28 && binary.BigEndian.Uint64(msg[8:]) == 0 && msg[18] == 34 && msg[19]&0x28 == 0x08 && msg[16] == 33 {
				return ikeInit{msg: append([]byte(nil), msg...), port: port}
			}
		}
		t.Fatalf("no IKE_SA_INIT to %s within %v", s.Name, timeout)
		return ikeInit{}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// spoofInits sends copies of init to dst, each from a random address in
// 10.0.0.0/8 and a random port with a random initiator SPI, rate a second
// for d (or until stop), and returns how many it sent.
func spoofInits(r *rawSender, dst netip.Addr, init ikeInit, rate int, d time.Duration, stop <-chan struct{}) int {
	rng := mrand.New(mrand.NewPCG(7, 11))
	buf := make([]byte, 65536)
	var payload []byte
	if init.port == 4500 {
		payload = append([]byte{0, 0, 0, 0}, init.msg...)
	} else {
		payload = append([]byte(nil), init.msg...)
	}
	spi := payload[len(payload)-len(init.msg):]
	return pace(rate, d, stop, func(int) {
		binary.BigEndian.PutUint64(spi, rng.Uint64())
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))}), uint16(1024+rng.IntN(60000)))
		r.sendUDP(buf, src, netip.AddrPortFrom(dst, init.port), payload)
	})
}

// forgeESP sends ESP to dst:4500 from src:4500: with spi 0, random SPIs
// (not ours, so unknown); otherwise spi with garbage after it (a valid SPI
// whose ICV cannot verify). rate a second for d.
func forgeESP(r *rawSender, src, dst netip.Addr, spi uint32, rate int, d time.Duration) int {
	rng := mrand.New(mrand.NewPCG(3, 5))
	buf := make([]byte, 2048)
	payload := make([]byte, 1200)
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	return pace(rate, d, nil, func(i int) {
		s := spi
		if s == 0 {
			s = rng.Uint32() | 0x01000000 // never a small SPI that could be ours by chance
		}
		binary.BigEndian.PutUint32(payload, s)
		binary.BigEndian.PutUint32(payload[4:], uint32(1e7+i))
		r.sendUDP(buf, netip.AddrPortFrom(src, 4500), netip.AddrPortFrom(dst, 4500), payload)
	})
}

// inboundSA returns a copy of the inbound SA that site s holds for peer,
// rebuilt as an outbound SA from the keys in `show sas --wireshark` (what
// the peer would send with), and how many packets s has had on it.
func inboundSA(t *testing.T, s *site, peer string) (*crypto.OutboundSA, uint64) {
	t.Helper()
	lines := s.show(t, "sas", "--wireshark")
	for _, sa := range sas(t, s) {
		if sa.Peer != peer || sa.Direction != "in" {
			continue
		}
		for _, line := range strings.Split(lines, "\n") {
			f := strings.Split(line, ",")
			if len(f) < 6 || strings.Trim(f[3], `"`) != fmt.Sprintf("0x%08x", sa.SPI) {
				continue
			}
			key, err := hex.DecodeString(strings.TrimPrefix(strings.Trim(f[5], `"`), "0x"))
			if err != nil {
				t.Fatal(err)
			}
			out, err := crypto.NewOutboundSA(crypto.SAConfig{SPI: sa.SPI, Suite: crypto.SuiteAES128GCM16, Keymat: key, ESN: sa.ESN})
			if err != nil {
				t.Fatal(err)
			}
			return out, sa.Packets
		}
	}
	t.Fatalf("%s has no inbound SA for %s:\n%s", s.Name, peer, lines)
	return nil, 0
}

// forgeFragments sends, inside sa (a peer's real SA), first fragments of
// inner datagrams from vtepSrc to vtepDst that never complete, each with a
// new IP ID, rate a second for d, from src:4500 to dst:4500, numbering from
// seq. The ESP is genuine: only the peer, or whoever holds its keys, can
// send it.
func forgeFragments(r *rawSender, sa *crypto.OutboundSA, seq uint64, src, dst, vtepSrc, vtepDst netip.Addr, rate int, d time.Duration) int {
	buf := make([]byte, 2048)
	esp := make([]byte, 2048)
	inner := make([]byte, 20+976) // a multiple of 8 after the header, as every fragment but the last
	return pace(rate, d, nil, func(i int) {
		ipv4Header(inner, vtepSrc, vtepDst, unix.IPPROTO_UDP, uint16(i), true, 0)
		binary.BigEndian.PutUint16(inner[20:], 4789)
		binary.BigEndian.PutUint16(inner[22:], 4789)
		binary.BigEndian.PutUint16(inner[24:], 3000)
		copy(esp[crypto.HeaderLen:], inner)
		n, err := sa.SealSeq(esp, len(inner), crypto.NextHeaderIPv4, seq+uint64(i))
		if err != nil {
			return
		}
		r.sendUDP(buf, netip.AddrPortFrom(src, 4500), netip.AddrPortFrom(dst, 4500), esp[:n])
	})
}

// floodMACs writes broadcast frames from a new random source MAC each
// into s's TAP (the host's side), rate a second for d.
func floodMACs(t *testing.T, s *nstest.Site, tap string, rate int, d time.Duration) int {
	t.Helper()
	var fd int
	err := s.Do(func() error {
		ifi, err := net.InterfaceByName(tap)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("packet socket on %s's %s: %v", s.Name, tap, err)
	}
	defer unix.Close(fd)
	rng := mrand.New(mrand.NewPCG(13, 17))
	frame := make([]byte, 60)
	for i := 0; i < 6; i++ {
		frame[i] = 0xff
	}
	binary.BigEndian.PutUint16(frame[12:], 0x88b5) // local experimental EtherType
	return pace(rate, d, nil, func(int) {
		v := rng.Uint64() // the source MAC, bytes 6-11
		binary.BigEndian.PutUint32(frame[6:], uint32(v))
		binary.BigEndian.PutUint16(frame[10:], uint16(v>>32))
		frame[6] = frame[6]&0xfc | 0x02 // unicast, locally administered
		unix.Write(fd, frame)
	})
}

// rssKiB is a process's resident set size in KiB.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal(errors.New("no VmRSS"))
	return 0
}

// udpRcvbufErrors is the UDP receive-buffer overflow count of s's namespace
// (/proc/net/snmp): datagrams the kernel dropped before vxswitch read them.
func udpRcvbufErrors(t *testing.T, s *nstest.Site) uint64 {
	t.Helper()
	out, err := s.Output("cat", "/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				return v
			}
		}
	}
	return 0
}
