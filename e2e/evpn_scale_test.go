package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/internal/nstest"
)

// gobgpReflector runs gobgpd (Debian gobgpd) on site rr as a route
// reflector for every underlay address, with its gRPC API on loopback for
// the gobgp CLI.
func gobgpReflector(t *testing.T, rr *nstest.Site, asn int) func(args ...string) string {
	t.Helper()
	gobgpd := nstest.RequireTool(t, "gobgpd")
	gobgp := nstest.RequireTool(t, "gobgp")
	dir := t.TempDir()
	conf := filepath.Join(dir, "gobgpd.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[global.config]
  as = %d
  router-id = %q
[[peer-groups]]
  [peer-groups.config]
    peer-group-name = "fabric"
    peer-as = %d
  [peer-groups.route-reflector.config]
    route-reflector-client = true
    route-reflector-cluster-id = %q
  [[peer-groups.afi-safis]]
    [peer-groups.afi-safis.config]
      afi-safi-name = "l2vpn-evpn"
[[dynamic-neighbors]]
  [dynamic-neighbors.config]
    prefix = "192.0.2.0/24"
    peer-group = "fabric"
`, asn, rr.Addr, asn, rr.Addr)), 0o600)
	p := rr.Start(gobgpd, "-f", conf, "-t", "toml", "--api-hosts", "127.0.0.1:50051")
	cli := func(args ...string) string {
		t.Helper()
		out, err := rr.Output(append([]string{gobgp}, args...)...)
		if err != nil {
			t.Fatalf("gobgp %v: %v\n%s\n%s", args, err, out, p.Output())
		}
		return out
	}
	if err := nstest.WaitFor(10*time.Second, func() error {
		_, err := rr.Output(gobgp, "global")
		return err
	}); err != nil {
		t.Fatalf("gobgpd: %v\n%s", err, p.Output())
	}
	return cli
}

// gobgpFabric is two plain vxswitch sites, a and b, that name only a
// gobgpd reflector on site rr (with cli its gobgp CLI), and no [[peer]].
func gobgpFabric(t *testing.T) (*nstest.Net, *nstest.Site, func(...string) string, *site, *site) {
	t.Helper()
	n := nstest.New(t, nstest.Sites("a", "b", "rr")...)
	rr := n.Sites[2]
	cli := gobgpReflector(t, rr, 65000)
	fabric := &nstest.Net{Core: n.Core, Sites: n.Sites[:2]}
	sites := startSites(t, fabric, options{mode: "plain",
		only:       func(_, _ *nstest.Site) bool { return false },
		extraPeers: fmt.Sprintf("[evpn]\nasn = 65000\nroute_reflectors = [%q]\n", rr.Addr.String())})
	return n, rr, cli, sites[0], sites[1]
}

// TestEVPNHundredsOfSites: GoBGP's own daemon is the reflector, and its
// CLI injects the type-3 routes of 300 more sites: two vxswitch sites make
// every one of them a peer of the segment (a flood list of 301) and drop
// them when the routes are withdrawn. GoBGP's CLI also decodes what
// vxswitch advertises: RD, route target, encapsulation and PMSI tunnel.
func TestEVPNHundredsOfSites(t *testing.T) {
	_, _, cli, a, b := gobgpFabric(t)
	if err := nstest.WaitFor(30*time.Second, func() error {
		if st := evpnStatus(t, a); st.Peers != 1 {
			return fmt.Errorf("a: peers from routes %v", st.Discovered)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, a.show(t, "evpn"))
	}
	// What vxswitch advertises, as GoBGP's CLI decodes it.
	rib := cli("global", "rib", "-a", "evpn")
	// RD router_id:VNI (router_id defaults to site.vtep); in plain mode the
	// originating router IP and tunnel endpoint are the underlay address.
	want := fmt.Sprintf("[type:multicast][rd:%s:129][etag:0][ip:%s]", vtepAddr(a.Site), a.Addr)
	if !strings.Contains(rib, want) || !strings.Contains(rib, "[65000:129], [65000:268435585], [VXLAN]") || !strings.Contains(rib, fmt.Sprintf("Pmsi: type: ingress-repl, label: 129, tunnel-id: %s", a.Addr)) {
		t.Errorf("GoBGP's RIB lacks %s with RTs 65000:129 and 65000:268435585 (RFC 8365), VXLAN and the PMSI tunnel:\n%s\n%s", want, rib, cli("neighbor"))
	}
	const extra = 300
	addr := func(i int) string { return fmt.Sprintf("10.99.%d.%d", i/250, i%250+1) }
	start := time.Now()
	for i := 0; i < extra; i++ {
		ip := addr(i)
		cli("global", "rib", "add", "-a", "evpn", "multicast", ip, "etag", "0", "rd", ip+":129", "rt", "65000:129",
			"encap", "vxlan", "pmsi", "ingress-repl", "129", ip, "nexthop", ip)
	}
	injected := time.Since(start)
	for _, s := range []*site{a, b} {
		if err := nstest.WaitFor(30*time.Second, func() error {
			if st := evpnStatus(t, s); st.Peers != extra+1 {
				return fmt.Errorf("%s: %d peers from routes", s.Name, st.Peers)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d sites' routes injected in %v; both vxswitch sites had %d peers %v after the first", extra, injected.Round(100*time.Millisecond), extra+1, time.Since(start).Round(100*time.Millisecond))
	var peers []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(a.show(t, "peers", "--json")), &peers); err != nil || len(peers) != extra+1 {
		t.Errorf("a's peer table has %d rows (%v), want %d", len(peers), err, extra+1)
	}
	if err := a.Ping(overlayAddr(b.Site).String(), 56, 2, false); err != nil {
		t.Errorf("a -> b among %d peers: %v", extra+1, err)
	}
	// Withdrawn: they go.
	for i := 0; i < extra; i++ {
		ip := addr(i)
		cli("global", "rib", "del", "-a", "evpn", "multicast", ip, "etag", "0", "rd", ip+":129")
	}
	if err := nstest.WaitFor(30*time.Second, func() error {
		if st := evpnStatus(t, a); st.Peers != 1 {
			return fmt.Errorf("a still has %d peers from routes", st.Peers)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// TestEVPNFlapStorm (make bench-evpn; skipped unless VXSWITCH_EVPN_SCALE is
// set): TCP between two vxswitch sites of a gobgpd fabric while GoBGP's
// CLI keeps announcing and withdrawing the type-3 and type-2 routes of 100
// other sites, against the same load without the storm. Target: 0.8x.
func TestEVPNFlapStorm(t *testing.T) {
	if os.Getenv("VXSWITCH_EVPN_SCALE") == "" {
		t.Skip("set VXSWITCH_EVPN_SCALE=1 (make bench-evpn) to measure")
	}
	nstest.RequireTool(t, "iperf3")
	n, rr, _, a, b := gobgpFabric(t)
	if err := nstest.WaitFor(30*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
		t.Fatalf("a -> b: %v", err)
	}
	load := func() float64 {
		g, err := n.Iperf3(a.Site, b.Site, overlayAddr(b.Site), 10*time.Second)
		if err != nil {
			t.Fatalf("iperf3: %v", err)
		}
		return g
	}
	base := load()
	// churn runs gobgp twice per step until stopped: with real route
	// changes, or (the control) with as many read-only queries, since each
	// gobgp process costs CPU on these 2 cores whatever it asks.
	churn := func(changes bool) (float64, int) {
		stop := make(chan struct{})
		done := make(chan int, 1)
		go func() {
			count := 0
			for round := 0; ; round++ {
				for i := 0; i < 100; i++ {
					select {
					case <-stop:
						done <- count
						return
					default:
					}
					ip := fmt.Sprintf("10.98.0.%d", i+1)
					op := "add"
					if round%2 == 1 {
						op = "del"
					}
					if changes {
						rr.Output("gobgp", "global", "rib", op, "-a", "evpn", "multicast", ip, "etag", "0", "rd", ip+":129", "rt", "65000:129",
							"encap", "vxlan", "pmsi", "ingress-repl", "129", ip, "nexthop", ip)
						rr.Output("gobgp", "global", "rib", op, "-a", "evpn", "macadv", fmt.Sprintf("02:98:00:00:00:%02x", i+1), "0.0.0.0",
							"etag", "0", "label", "129", "rd", ip+":129", "rt", "65000:129", "encap", "vxlan", "nexthop", ip)
					} else {
						rr.Output("gobgp", "global", "rib", "summary", "-a", "evpn")
						rr.Output("gobgp", "global", "rib", "summary", "-a", "evpn")
					}
					count += 2
				}
			}
		}()
		time.Sleep(2 * time.Second)
		g := load()
		close(stop)
		return g, <-done
	}
	control, queries := churn(false)
	storm, changes := churn(true)
	st := evpnStatus(t, a)
	t.Logf("TCP a -> b: %.2f Gbit/s quiet; %.2f with %d gobgp queries (the driver's own cost); %.2f during %d route changes (%.2fx of the control, %.2fx of quiet); a saw %d best-path changes",
		base, control, queries, storm, changes, storm/control, storm/base, st.Churn)
	fmt.Printf("EVPN flap storm: %.2f Gbit/s quiet, %.2f with the driver's queries alone, %.2f during %d route changes: %.2fx of the control (target 0.8x), %.2fx of quiet\n",
		base, control, storm, changes, storm/control, storm/base)
	if storm < 0.8*control {
		t.Errorf("%.2fx of the control's throughput during the storm (target 0.8x)", storm/control)
	}
}

// TestEVPNHundredSites (make bench-evpn; skipped unless VXSWITCH_EVPN_SCALE
// is set): 100 vxswitch processes, each in a namespace of its own with its
// own data plane, name only a gobgpd reflector and no [[peer]]. It prints
// how long they take to converge to full flood lists (99 peers each, target
// 30 s), checks pings between sites far apart in the list, and how long a
// stopped site takes to leave all 99 flood lists. Both modes: in esp, IKE is
// brought up on demand by the pings alone.
func TestEVPNHundredSites(t *testing.T) {
	if os.Getenv("VXSWITCH_EVPN_SCALE") == "" {
		t.Skip("set VXSWITCH_EVPN_SCALE=1 (make bench-evpn) to measure")
	}
	const count = 100
	for _, mode := range []string{"plain", "esp"} {
		t.Run(mode, func(t *testing.T) {
			n := nstest.New(t, append(nstest.N(count), nstest.SiteSpec{Name: "rr"})...)
			rr := n.Sites[count]
			cli := gobgpReflector(t, rr, 65000)
			fabric := &nstest.Net{Core: n.Core, Sites: n.Sites[:count]}
			start := time.Now()
			sites := startSites(t, fabric, options{mode: mode, metrics: true,
				only:       func(_, _ *nstest.Site) bool { return false },
				extraPeers: fmt.Sprintf("[evpn]\nasn = 65000\nroute_reflectors = [%q]\n", rr.Addr.String())})
			running := time.Since(start)
			slowest := waitEVPNPeers(t, sites, count-1, 90*time.Second)
			converged := time.Since(start)
			if est := strings.Count(cli("neighbor"), "Establ"); est != count {
				t.Errorf("gobgpd has %d established sessions, want %d:\n%s", est, count, cli("neighbor"))
			}
			heap := 0.0
			for _, s := range sites {
				h, _ := goMetrics(t, s)
				heap += h
			}
			// Pairs across the list, each way; 8000 bytes (fragmented) too.
			for _, pair := range [][2]int{{0, count - 1}, {count - 1, 0}, {count / 2, 1}, {7, count - 3}} {
				a, b := sites[pair[0]], sites[pair[1]]
				if err := nstest.WaitFor(20*time.Second, func() error { return a.Ping(overlayAddr(b.Site).String(), 56, 1, false) }); err != nil {
					t.Errorf("%s -> %s: %v", a.Name, b.Name, err)
				} else if err := a.Ping(overlayAddr(b.Site).String(), 8000, 2, false); err != nil {
					t.Errorf("%s -> %s, 8000 bytes: %v", a.Name, b.Name, err)
				}
			}
			// A site stops: it leaves every flood list (its routes withdrawn).
			gone := sites[count-1]
			stopped := time.Now()
			if err := gone.proc.Stop(); err != nil {
				t.Errorf("stop %s: %v", gone.Name, err)
			}
			waitEVPNPeers(t, sites[:count-1], count-2, 30*time.Second)
			t.Logf("%s: %d sites running %v after the first start; the slowest had %d peers %v after that (%v in all); %.0f MiB of Go heap in all",
				mode, count, running.Round(100*time.Millisecond), count-1, slowest.Round(100*time.Millisecond), converged.Round(100*time.Millisecond), heap)
			fmt.Printf("EVPN %d sites (%s, one process and data plane each, gobgpd reflector): full flood lists (%d peers each) %.1f s after the first site started (target 30 s); a stopped site left all %d flood lists in %.1f s; %.1f MiB of Go heap per site\n",
				count, mode, count-1, converged.Seconds(), count-1, time.Since(stopped).Seconds(), heap/count)
		})
	}
}

// waitEVPNPeers waits until every site has want peers from routes, and
// returns how long after the call the last one got there.
func waitEVPNPeers(t *testing.T, sites []*site, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	pending := append([]*site(nil), sites...)
	var last time.Duration
	for len(pending) > 0 {
		if time.Since(start) > limit {
			st := evpnStatus(t, pending[0])
			t.Fatalf("%d sites short of %d peers after %v; %s has %d: sessions %+v", len(pending), want, limit, pending[0].Name, st.Peers, st.Sessions)
		}
		var still []*site
		for _, s := range pending {
			if evpnStatus(t, s).Peers == want {
				last = time.Since(start)
				continue
			}
			still = append(still, s)
		}
		pending = still
		if len(pending) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return last
}
