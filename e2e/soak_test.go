package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/internal/nstest"
)

// metricsBody fetches a site's Prometheus metrics (options.metrics) from
// inside its namespace; each call its own connection, closed after.
func metricsBody(t *testing.T, s *site) (io.ReadCloser, error) {
	t.Helper()
	client := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, // a connection left open is a goroutine in the site
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return s.Dial(network, addr, 5*time.Second)
		},
	}}
	resp, err := client.Get("http://127.0.0.1:9129/metrics")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// goMetrics reads the Go runtime's heap in use and goroutine count from a
// site's Prometheus endpoint (options.metrics).
func goMetrics(t *testing.T, s *site) (heapMiB float64, goroutines int) {
	t.Helper()
	body, err := metricsBody(t, s)
	if err != nil {
		t.Errorf("metrics of %s: %v", s.Name, err)
		return 0, 0
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_heap_inuse_bytes":
			heapMiB = v / (1 << 20)
		case "go_goroutines":
			goroutines = int(v)
		}
	}
	return heapMiB, goroutines
}

// TestSoak (make soak; skipped unless VXSWITCH_SOAK gives a duration, e.g.
// 10m) runs three esp sites for that long with a Child SA rekey every 30 s,
// an IKE SA rekey every 2 minutes and a MAC that moves between b and c
// every second, carrying iperf3 TCP a -> b (1 Gbit/s) and a sequenced
// iperf3 UDP stream c -> a: no datagram may go missing, tx_drop_no_sa stays
// 0, and each site's heap and goroutines, sampled every 10 s and printed as
// a table, stay steady.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("VXSWITCH_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set VXSWITCH_SOAK to a duration (make soak: 10m) to run")
	}
	iperf3 := nstest.RequireTool(t, "iperf3")
	n := nstest.New(t, nstest.Sites("a", "b", "c")...)
	sites := startSites(t, n, options{mode: "esp", metrics: true,
		securityExtra: "child_lifetime = \"30s\"\nlifetime = \"2m\"\n"})
	a, b, c := sites[0], sites[1], sites[2]
	target := func(s *nstest.Site) string { return overlayAddr(s).String() }
	if err := nstest.WaitFor(20*time.Second, func() error { return n.PingMesh(target, 56, 1, false) }); err != nil {
		t.Fatalf("mesh: %v", err)
	}
	secs := strconv.Itoa(int(d.Seconds()))
	tcpSrv := b.Start(iperf3, "-s", "-1", "-B", overlayAddr(b.Site).String(), "-p", "5201")
	udpSrv := a.Start(iperf3, "-s", "-1", "-B", overlayAddr(a.Site).String(), "-p", "5202")
	defer tcpSrv.Stop()
	defer udpSrv.Stop()
	time.Sleep(500 * time.Millisecond)
	tcp := a.Start(iperf3, "-c", overlayAddr(b.Site).String(), "-p", "5201", "-b", "1G", "-t", secs, "-J")
	udp := c.Start(iperf3, "-c", overlayAddr(a.Site).String(), "-p", "5202", "-u", "-b", "50M", "-l", "1200", "-w", "8M", "-t", secs, "-J")

	// The MAC that moves: a macvlan "VM" on b, then on c, every second.
	const vmMAC, vmIP = "02:00:5e:00:01:65", "10.11.129.101"
	move := func(to *site, from *site) error {
		if from != nil {
			from.Exec("ip", "link", "del", "vm0")
		}
		for _, args := range [][]string{
			{"ip", "link", "add", "vm0", "link", "vx129", "address", vmMAC, "type", "macvlan", "mode", "bridge"},
			{"ip", "addr", "add", vmIP + "/24", "dev", "vm0"},
			{"ip", "link", "set", "vm0", "up"},
		} {
			if err := to.Exec(args...); err != nil {
				return err
			}
		}
		// One packet announces it (as a gratuitous ARP would).
		return to.Exec("ping", "-c", "1", "-W", "1", "-I", "vm0", overlayAddr(a.Site).String())
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%8s", "t")
	for _, s := range sites {
		fmt.Fprintf(&table, " %10s %6s", s.Name+" heap", "gor.")
	}
	fmt.Fprintf(&table, " %6s %8s\n", "moves", "rekeys")
	type sample struct {
		heap float64
		gor  int
	}
	var first, last []sample
	start := time.Now()
	spi := findOutSPI(t, a)
	noSA := map[string]uint64{}
	for _, s := range sites {
		noSA[s.Name] = counterSum(t, s, "tx_drop_no_sa") // before the mesh was up
	}
	rekeys, moves, moveErrs := 0, 0, 0
	var at *site
	for i := 0; time.Since(start) < d; i++ {
		to := b
		if at == b {
			to = c
		}
		if err := move(to, at); err != nil {
			moveErrs++
		}
		at = to
		moves++
		if s := findOutSPI(t, a); s != spi {
			rekeys++
			spi = s
		}
		if i%10 == 0 {
			var row []sample
			fmt.Fprintf(&table, "%8s", time.Since(start).Round(time.Second))
			for _, s := range sites {
				h, g := goMetrics(t, s)
				row = append(row, sample{h, g})
				fmt.Fprintf(&table, " %9.1fM %6d", h, g)
			}
			fmt.Fprintf(&table, " %6d %8d\n", moves, rekeys)
			if first == nil && time.Since(start) > 30*time.Second {
				first = row // after the warm-up
			}
			last = row
		}
		time.Sleep(time.Second - time.Since(start)%time.Second)
	}
	t.Log(table.String())
	fmt.Println(table.String())

	if err := tcp.Wait(); err != nil {
		t.Errorf("iperf3 TCP: %v\n%s", err, tcp.Output())
	}
	if err := udp.Wait(); err != nil {
		t.Errorf("iperf3 UDP: %v\n%s", err, udp.Output())
	}
	var res struct {
		End struct {
			Sum struct {
				Packets     int `json:"packets"`
				LostPackets int `json:"lost_packets"`
			} `json:"sum"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(udp.Output()), &res); err != nil {
		t.Fatalf("iperf3 UDP JSON: %v", err)
	}
	lost, packets := res.End.Sum.LostPackets, res.End.Sum.Packets
	if err := json.Unmarshal([]byte(tcp.Output()), &res); err != nil {
		t.Fatalf("iperf3 TCP JSON: %v", err)
	}
	t.Logf("UDP: %d datagrams, %d lost; TCP: %.2f Gbit/s; %d MAC moves (%d failed), %d rekeys of a's first SA seen",
		packets, lost, res.End.SumReceived.BitsPerSecond/1e9, moves, moveErrs, rekeys)
	if packets == 0 || lost != 0 {
		t.Errorf("UDP stream: %d of %d datagrams lost", lost, packets)
	}
	if moveErrs > 0 {
		t.Errorf("%d of %d MAC moves failed to announce", moveErrs, moves)
	}
	if want := int(d / (40 * time.Second)); rekeys < want {
		t.Errorf("only %d rekeys seen in %v", rekeys, d)
	}
	for _, s := range sites {
		if v := counterSum(t, s, "tx_drop_no_sa") - noSA[s.Name]; v != 0 {
			t.Errorf("%s: tx_drop_no_sa rose by %d", s.Name, v)
		}
	}
	for i, s := range sites {
		if first == nil {
			break
		}
		if last[i].gor > first[i].gor+5 {
			t.Errorf("%s: goroutines grew from %d to %d", s.Name, first[i].gor, last[i].gor)
		}
		if last[i].heap > 2*first[i].heap+8 {
			t.Errorf("%s: heap grew from %.1f MiB to %.1f MiB", s.Name, first[i].heap, last[i].heap)
		}
	}
}
