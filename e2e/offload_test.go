package e2e

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/internal/nstest"
)

// tcpChecksumErrors is the kernel's count of TCP segments received with a
// bad checksum in s's namespace (nstat's TcpInCsumErrors).
func tcpChecksumErrors(t *testing.T, s *site) int {
	t.Helper()
	out := s.Run("nstat", "-az", "TcpInCsumErrors")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "TcpInCsumErrors" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no TcpInCsumErrors in nstat's output:\n%s", out)
	return 0
}

// TestChecksumOffloadTCP: three esp sites, c with offloads off. a's TAP
// leaves the TCP checksums of the segments it cuts unfinished: toward b,
// whose probes say it takes them, they cross so (b's kernel finishes or
// trusts them); toward c they are finished first. TCP runs both ways with
// no checksum error at any receiver.
func TestChecksumOffloadTCP(t *testing.T) {
	nstest.RequireTool(t, "iperf3")
	n := nstest.New(t, nstest.Sites("a", "b", "c")...)
	sites := startSites(t, n, options{mode: "esp", siteExtra: func(s *nstest.Site) string {
		if s.Name == "c" {
			return "[switch]\noffload = false\n"
		}
		return ""
	}})
	a, b, c := sites[0], sites[1], sites[2]
	for _, to := range []*site{b, c} {
		if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(to.Site).String(), 56, 1, false) }); err != nil {
			t.Fatalf("a -> %s: %v", to.Name, err)
		}
	}
	// The probes that carry the flag go out once the SA is up.
	if err := nstest.WaitFor(15*time.Second, func() error {
		if !a.peerStatus(t, "b").ChecksumOffload {
			return errors.New("a does not know yet that b takes unfinished checksums")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range [][2]*site{{a, b}, {a, c}, {b, a}, {c, a}} {
		g, err := n.Iperf3(dir[0].Site, dir[1].Site, overlayAddr(dir[1].Site), 3*time.Second)
		if err != nil || g <= 0 {
			t.Fatalf("iperf3 %s -> %s: %.2f Gbit/s, %v", dir[0].Name, dir[1].Name, g, err)
		}
		t.Logf("TCP %s -> %s: %.2f Gbit/s", dir[0].Name, dir[1].Name, g)
	}
	if v := statValue(t, a, "peer b", "tx_checksum_offload"); v == 0 {
		t.Errorf("a sent b no segment with its checksum left partial:\n%s", grep(a.stats(t), "checksum"))
	}
	if st := a.peerStatus(t, "c"); st.ChecksumOffload || st.ProbesAcked == 0 {
		t.Errorf("a says c takes unfinished checksums (%v; c has offload = false) after %d probes c answered", st.ChecksumOffload, st.ProbesAcked)
	}
	if v := statValue(t, a, "peer c", "tx_checksum_offload"); v != 0 {
		t.Errorf("a left %d checksums partial toward c, whose offloads are off", v)
	}
	if v := counterSum(t, a, "tx_checksum_finished"); v == 0 {
		t.Errorf("a finished no checksum, though c does not take them:\n%s", grep(a.stats(t), "checksum"))
	}
	for _, s := range sites {
		if e := tcpChecksumErrors(t, s); e != 0 {
			t.Errorf("%s: %d TCP segments with a bad checksum", s.Name, e)
		}
	}
}
