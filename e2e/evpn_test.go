package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/evpn"
	"github.com/vxswitch/vxswitch/internal/nstest"
)

// frrReflector runs FRR's bgpd (Debian frr; no zebra) on site rr as the
// fabric's route reflector for l2vpn evpn: every address of the underlay
// may connect (a listen range), as the fabric's sites are many.
func frrReflector(t *testing.T, rr *nstest.Site, asn int, extra string) *nstest.Proc {
	t.Helper()
	bgpd := "/usr/lib/frr/bgpd"
	if _, err := os.Stat(bgpd); err != nil {
		nstest.RequireTool(t, "frr-bgpd-not-installed") // skips, or fails under VXSWITCH_REQUIRE_ALL
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`hostname rr
log stdout informational
!
router bgp %d
 bgp router-id %s
 bgp cluster-id %s
 no bgp default ipv4-unicast
 no bgp ebgp-requires-policy
 neighbor fabric peer-group
 neighbor fabric remote-as %d
 neighbor fabric timers 3 9
 bgp listen range 192.0.2.0/24 peer-group fabric
 %s
 address-family l2vpn evpn
  neighbor fabric activate
  neighbor fabric route-reflector-client
 exit-address-family
!
`, asn, rr.Addr, rr.Addr, asn, extra)
	path := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := rr.Start(bgpd, "-f", path, "-i", filepath.Join(dir, "bgpd.pid"), "--vty_socket", dir,
		"-z", filepath.Join(dir, "zserv.api"), "-Z", "-S", "-A", "127.0.0.1", "-P", "0")
	if err := nstest.WaitFor(10*time.Second, func() error {
		if done, err := p.Exited(); done {
			return fmt.Errorf("bgpd exited: %v\n%s", err, p.Output())
		}
		out, _ := rr.Output("ss", "-Hltn", "sport = :179")
		if !strings.Contains(out, ":179") {
			return errors.New("bgpd not listening yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// evpnStatus reads show evpn --json.
func evpnStatus(t *testing.T, s *site) evpn.Status {
	t.Helper()
	var st evpn.Status
	if err := json.Unmarshal([]byte(s.show(t, "evpn", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// fdbPort returns the port a site's FDB has mac on, and whether the entry
// came from EVPN.
func fdbPort(t *testing.T, s *site, mac string) (port string, fromEVPN bool) {
	t.Helper()
	var es []struct {
		MAC     string `json:"mac"`
		Port    string `json:"port"`
		Control bool   `json:"control"`
	}
	if err := json.Unmarshal([]byte(s.show(t, "fdb", "--json")), &es); err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.MAC == mac {
			return e.Port, e.Control
		}
	}
	return "", false
}

// TestEVPNRouteReflector: four sites that name only an FRR route reflector
// find each other through BGP EVPN and form the full mesh (esp and plain):
// every pair pings, 8000-byte pings too; a MAC learnt at one site is in
// every other's FDB (from EVPN) within a second, follows a move, and is
// withdrawn when it ages out; a site that stops leaves every flood list.
func TestEVPNRouteReflector(t *testing.T) {
	for _, mode := range []string{"esp", "plain"} {
		t.Run(mode, func(t *testing.T) {
			n := nstest.New(t, nstest.Sites("a", "b", "c", "d", "rr")...)
			rr := n.Sites[4]
			frrReflector(t, rr, 65000, "")
			fabric := &nstest.Net{Core: n.Core, Sites: n.Sites[:4]}
			sites := startSites(t, fabric, options{mode: mode,
				only:       func(_, _ *nstest.Site) bool { return false }, // no [[peer]] at all
				extraPeers: fmt.Sprintf("[switch]\nage_time = \"6s\"\n\n[evpn]\nasn = 65000\nroute_reflectors = [%q]\n", rr.Addr.String())})
			a, b, c, d := sites[0], sites[1], sites[2], sites[3]
			start := time.Now()
			for _, s := range sites {
				if err := nstest.WaitFor(30*time.Second, func() error {
					st := evpnStatus(t, s)
					if len(st.Sessions) != 1 || st.Sessions[0].State != "established" {
						return fmt.Errorf("sessions %+v", st.Sessions)
					}
					if st.Peers != 3 {
						return fmt.Errorf("%d peers from routes: %v", st.Peers, st.Discovered)
					}
					return nil
				}); err != nil {
					t.Fatalf("%s: %v\n%s", s.Name, err, s.show(t, "evpn"))
				}
			}
			t.Logf("every site has its session and three peers from routes after %v", time.Since(start).Round(100*time.Millisecond))
			target := func(s *nstest.Site) string { return overlayAddr(s).String() }
			if err := nstest.WaitFor(30*time.Second, func() error { return fabric.PingMesh(target, 56, 1, false) }); err != nil {
				t.Fatalf("mesh: %v\n%s", err, a.show(t, "peers"))
			}
			if err := fabric.PingMesh(target, 8000, 1, false); err != nil {
				t.Errorf("8000-byte pings: %v", err)
			}
			t.Logf("a's view:\n%s", a.show(t, "evpn"))

			// A MAC learnt at a: in every other site's FDB, from EVPN, within a second.
			const vmMAC, vmIP = "02:00:5e:00:02:01", "10.11.129.200"
			vmUp := func(s *site) {
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
				// It speaks (as a gratuitous ARP would); after a move the
				// others still send to its old site until the new route
				// arrives, so the first answers may go astray.
				if err := nstest.WaitFor(5*time.Second, func() error {
					return s.Exec("ping", "-c", "1", "-W", "1", "-I", "vm0", overlayAddr(b.Site).String())
				}); err != nil {
					t.Fatal(err)
				}
			}
			vmUp(a)
			learnt := time.Now()
			aName := "evpn-" + evpnVTEP(a, mode)
			for _, s := range []*site{b, c, d} {
				if err := nstest.WaitFor(time.Second-time.Since(learnt), func() error {
					if port, ev := fdbPort(t, s, vmMAC); port != aName || !ev {
						return fmt.Errorf("%s's FDB has %s on %q (from EVPN: %v)", s.Name, vmMAC, port, ev)
					}
					return nil
				}); err != nil {
					t.Errorf("within a second of learning: %v\n%s", err, s.show(t, "fdb"))
				}
			}
			t.Logf("the MAC learnt at a was in b, c and d's FDBs after %v", time.Since(learnt).Round(10*time.Millisecond))

			// It moves to c: every other site follows.
			if err := a.Exec("ip", "link", "del", "vm0"); err != nil {
				t.Fatal(err)
			}
			moved := time.Now()
			vmUp(c)
			cName := "evpn-" + evpnVTEP(c, mode)
			for _, s := range []*site{a, b, d} {
				if err := nstest.WaitFor(2*time.Second, func() error {
					if port, ev := fdbPort(t, s, vmMAC); port != cName || !ev {
						return fmt.Errorf("%s's FDB has %s on %q (from EVPN: %v)", s.Name, vmMAC, port, ev)
					}
					return nil
				}); err != nil {
					t.Errorf("after the move: %v\n%s\n%s", err, s.show(t, "fdb"), c.show(t, "evpn"))
				}
			}
			t.Logf("the move to c was followed %v after the VM came up there", time.Since(moved).Round(10*time.Millisecond))
			if err := b.Ping(vmIP, 56, 1, false); err != nil {
				t.Errorf("b -> the moved VM: %v", err)
			}

			// It goes quiet and ages out at c (6 s): withdrawn everywhere.
			if err := c.Exec("ip", "link", "del", "vm0"); err != nil {
				t.Fatal(err)
			}
			gone := time.Now()
			for _, s := range []*site{a, b, d} {
				if err := nstest.WaitFor(15*time.Second, func() error {
					if port, _ := fdbPort(t, s, vmMAC); port != "" {
						return fmt.Errorf("%s's FDB still has %s on %s", s.Name, vmMAC, port)
					}
					return nil
				}); err != nil {
					t.Errorf("after aging out: %v", err)
				}
			}
			t.Logf("withdrawn everywhere %v after the VM went quiet (age_time 6s)", time.Since(gone).Round(100*time.Millisecond))

			// d stops: it leaves every flood list.
			if err := d.proc.Stop(); err != nil {
				t.Logf("stop d: %v", err)
			}
			stopped := time.Now()
			dName := "evpn-" + evpnVTEP(d, mode)
			for _, s := range []*site{a, b, c} {
				if err := nstest.WaitFor(15*time.Second, func() error {
					if st := evpnStatus(t, s); st.Peers != 2 {
						return fmt.Errorf("%s still has %v", s.Name, st.Discovered)
					}
					if strings.Contains(s.show(t, "peers"), dName) {
						return fmt.Errorf("%s still lists %s", s.Name, dName)
					}
					return nil
				}); err != nil {
					t.Errorf("after d stopped: %v", err)
				}
			}
			t.Logf("d left every flood list %v after it stopped", time.Since(stopped).Round(100*time.Millisecond))
			if err := a.Ping(overlayAddr(b.Site).String(), 56, 1, false); err != nil {
				t.Errorf("a -> b after d left: %v", err)
			}
		})
	}
}

// evpnVTEP is the originating router IP a site advertises: its VTEP in esp
// mode, its underlay address in plain mode.
func evpnVTEP(s *site, mode string) string {
	if mode == "esp" {
		return vtepAddr(s.Site).String()
	}
	return s.Addr.String()
}
