package e2e

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/internal/nstest"
)

// TestStrongSwanKernelVXLAN is the interop the design aims at: one site is
// vxswitch; the other is a plain IPsec gateway (strongSwan charon with
// kernel-libipsec) whose Linux kernel vxlan device sends its VTEP traffic
// into the IPsec tunnel. A host behind vxswitch pings the host behind the
// kernel vxlan device, large pings (fragmented inside the tunnel) included,
// and TCP runs both ways; vxswitch negotiates the keys with IKEv2.
func TestStrongSwanKernelVXLAN(t *testing.T) {
	for _, suite := range []string{"aes128gcm16", "chacha20poly1305"} {
		t.Run(suite, func(t *testing.T) {
			n := nstest.New(t, nstest.SiteSpec{Name: "vx"}, nstest.SiteSpec{Name: "swan"})
			vxSite, sw := n.Sites[0], n.Sites[1]
			psk := "correct horse battery staple, e2e"
			vx, charon := swanGateway(t, n, suite, "aes128gcm16-prfsha256-x25519,aes128gcm16-prfsha256-ecp256", psk, "mtu = 1500\n")
			target := overlayAddr(sw).String()
			if err := nstest.WaitFor(10*time.Second, func() error { return vx.Ping(target, 56, 1, false) }); err != nil {
				list, _ := charon.Swanctl("--list-sas")
				t.Fatalf("ping the host behind strongSwan's kernel vxlan: %v\n%s\n%s\n%s", err, vx.stats(t), list, sw.Run("ip", "-s", "link", "show", "ipsec0"))
			}
			for _, size := range []int{1400, 1472, 4000} {
				if err := vx.Ping(target, size, 3, false); err != nil {
					t.Errorf("ping %d bytes: %v", size, err)
				}
			}
			if err := sw.Ping(overlayAddr(vxSite).String(), 3000, 3, false); err != nil {
				t.Errorf("ping from behind strongSwan, 3000 bytes: %v", err)
			}
			if _, err := n.Transfer(vxSite, sw, overlayAddr(sw), 5<<20, 30*time.Second); err != nil {
				t.Errorf("TCP vxswitch -> kernel vxlan behind strongSwan: %v", err)
			}
			if _, err := n.Transfer(sw, vxSite, overlayAddr(vxSite), 5<<20, 30*time.Second); err != nil {
				t.Errorf("TCP kernel vxlan behind strongSwan -> vxswitch: %v", err)
			}
			sas := vx.show(t, "sas")
			if !strings.Contains(sas, suite) {
				t.Errorf("vxswitch show sas lacks %s:\n%s", suite, sas)
			}
			// The traffic went through the Child SA: strongSwan counted it.
			list, _ := charon.Swanctl("--list-sas")
			if !regexp.MustCompile(`in\s+[0-9a-f]{8},\s+[1-9]\d* bytes`).MatchString(list) {
				t.Errorf("strongSwan's SA shows no traffic:\n%s", list)
			}
			t.Logf("strongSwan:\n%s\nvxswitch:\n%s", list, vx.show(t, "sas"))
		})
	}
}

// TestStrongSwanBlackHole: the strongSwan gateway behind a router that
// carries 1400 bytes and drops its own ICMP. strongSwan's data plane
// answers none of our probes, so vxswitch probes the path with padded IKE
// INFORMATIONAL requests, which charon answers, and finds the 1400 bytes;
// until then it sends at the base size. strongSwan's side is set up as an
// operator of that path would set it (its TUN's MTU below the path, since
// nothing tells charon what the path carries). DF 1472-byte pings, larger
// ones and TCP both ways pass, every one from the start.
func TestStrongSwanBlackHole(t *testing.T) {
	n := nstest.New(t, nstest.SiteSpec{Name: "vx"}, nstest.SiteSpec{Name: "swan"})
	vxSite, sw := n.Sites[0], n.Sites[1]
	setRouteMTU(t, n, 1400, false)
	dropRouterICMP(t, n)
	psk := "correct horse battery staple, e2e"
	vx, _ := swanGateway(t, n, "aes128gcm16", "aes128gcm16-prfsha256-x25519", psk, "\n"+probeTimers)
	if err := sw.Exec("ip", "link", "set", "ipsec0", "mtu", "1300"); err != nil {
		t.Fatal(err)
	}
	target := overlayAddr(sw).String()
	if err := nstest.WaitFor(10*time.Second, func() error { return vx.Ping(target, 56, 1, false) }); err != nil {
		t.Fatalf("ping the host behind strongSwan: %v", err)
	}
	// From the first: the base size carries them while the search runs.
	if err := vx.Ping(target, 1472, 3, true); err != nil {
		t.Errorf("DF 1472-byte pings while probing: %v", err)
	}
	var st dataplane.PeerStatus
	if err := nstest.WaitFor(30*time.Second, func() error {
		st = vx.peerStatus(t, "swan")
		if st.ProbeVia != "ike" || st.Probe != "search_complete" {
			return fmt.Errorf("probe %q via %q, MTU %d", st.Probe, st.ProbeVia, st.MTU)
		}
		return nil
	}); err != nil {
		t.Fatalf("strongSwan's path was not probed through IKE: %v\n%s", err, vx.show(t, "peers"))
	}
	if st.MTU > 1400 || st.MTU < 1400-16 {
		t.Errorf("path MTU to strongSwan %d, want within 16 bytes below 1400", st.MTU)
	}
	t.Logf("path MTU to strongSwan through IKE probes: %d (%d probes sent, %d acknowledged)", st.MTU, st.ProbesSent, st.ProbesAcked)
	for _, size := range []int{1472, 3000} {
		if err := vx.Ping(target, size, 3, size == 1472); err != nil {
			t.Errorf("pings of %d bytes: %v", size, err)
		}
	}
	if _, err := n.Transfer(vxSite, sw, overlayAddr(sw), 5<<20, 30*time.Second); err != nil {
		t.Errorf("TCP vxswitch -> strongSwan over the black hole: %v", err)
	}
	if _, err := n.Transfer(sw, vxSite, overlayAddr(vxSite), 5<<20, 30*time.Second); err != nil {
		t.Errorf("TCP strongSwan -> vxswitch over the black hole (MSS clamped): %v", err)
	}
	if down := vx.peerStatus(t, "swan").State; down != "up" {
		t.Errorf("peer state %q after probing through IKE", down)
	}
}

// swanGateway brings up the strongSwan gateway side of n (sites "vx" and
// "swan"): its VTEP on lo (no dummy interfaces here), charon keyed with
// psk for the ESP suite, and vxswitch on "vx" with the gateway as its one
// peer (peerExtra: more of its [[peer]] table, then anything after it).
// Once the Child SA is in, it adds the gateway's kernel vxlan device, whose
// packets to our VTEP are routed (table 220) into libipsec's ipsec0.
func swanGateway(t *testing.T, n *nstest.Net, suite, proposals, psk, peerExtra string) (*site, *nstest.Charon) {
	t.Helper()
	sw := n.Sites[1]
	vx, charon := startSwanPair(t, n, nstest.SwanConn{Proposals: proposals, ESPProposals: suite, PSK: psk, DPDDelay: "10s"}, nil,
		options{mode: "esp", suite: suite, psk: psk}, fmt.Sprintf("remote_id = %q\n%s", sw.Addr, peerExtra))
	waitSwanChild(t, n, charon, vx)
	return vx, charon
}

// startSwanPair starts charon on site 1 of n with conn (its addresses
// filled in here; files as StartCharonFiles takes them), its VTEP on lo,
// and vxswitch on site 0 with o and the gateway as its one peer
// (peerLines: the rest of that [[peer]] table, then anything after it).
func startSwanPair(t *testing.T, n *nstest.Net, conn nstest.SwanConn, files map[string]string, o options, peerLines string) (*site, *nstest.Charon) {
	t.Helper()
	vxSite, sw := n.Sites[0], n.Sites[1]
	swVTEP := vtepAddr(sw)
	sw.Run("ip", "addr", "add", swVTEP.String()+"/32", "dev", "lo")
	conn.Local, conn.Remote, conn.LocalVTEP, conn.RemoteVTEP = sw.Addr, vxSite.Addr, swVTEP, vtepAddr(vxSite)
	charon := sw.StartCharonFiles(nstest.SwanctlConf(conn), files)
	o.only = func(_, _ *nstest.Site) bool { return false }
	o.extraPeers = fmt.Sprintf("[[peer]]\nname = \"swan\"\nendpoint = %q\nvtep = %q\n%s", sw.Addr, swVTEP, peerLines)
	sites := startSites(t, &nstest.Net{Core: n.Core, Sites: n.Sites[:1]}, o)
	return sites[0], charon
}

// addSwanVXLAN adds the strongSwan gateway's kernel vxlan device (site 1
// of n) toward vxswitch's VTEP (site 0); its packets are routed (table
// 220) into libipsec's ipsec0.
func addSwanVXLAN(t *testing.T, n *nstest.Net) {
	t.Helper()
	vxSite, sw := n.Sites[0], n.Sites[1]
	if err := sw.KernelVXLAN(nstest.VXLAN{Dev: "vx129", VNI: 129, Local: vtepAddr(sw), Remotes: []netip.Addr{vtepAddr(vxSite)},
		MTU: 1500, Address: netip.PrefixFrom(overlayAddr(sw), 24)}); err != nil {
		t.Fatal(err)
	}
	// The kernel VTEP leaves its inner checksums unfinished (libipsec
	// copies packets as they are): vxswitch finishes them.
}
