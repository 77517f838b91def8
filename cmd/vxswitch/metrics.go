package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/evpn"
)

// metricsCollector exposes the switch's counters and peer states to
// Prometheus. It reads them at scrape time (the same atomic snapshot as
// `vxswitch show stats`), so the data path does no extra work.
type metricsCollector struct {
	sw   controlled
	evpn *evpn.Speaker // nil without [evpn]

	counters *prometheus.Desc
	levels   *prometheus.Desc
	peerUp   *prometheus.Desc
	peerMTU  *prometheus.Desc
	peerPkts *prometheus.Desc
	peerByte *prometheus.Desc
	probes   *prometheus.Desc
	pmtuInfo *prometheus.Desc
	pmtuChg  *prometheus.Desc
	pmtuChk  *prometheus.Desc
	bgpUp    *prometheus.Desc
	routes   *prometheus.Desc
	churn    *prometheus.Desc
	saAge    *prometheus.Desc
	saLife   *prometheus.Desc
	saCount  *prometheus.Desc
}

func newMetricsCollector(sw controlled, site string) *metricsCollector {
	constLabels := prometheus.Labels{"site": site}
	return &metricsCollector{
		sw: sw,
		counters: prometheus.NewDesc("vxswitch_events_total",
			"Counters of the switch by scope (switch, segment, peer, fdb, reassembly) and name: every drop reason has its own.",
			[]string{"scope", "id", "counter"}, constLabels),
		levels: prometheus.NewDesc("vxswitch_level",
			"Values of the switch that go up and down, by scope and name: FDB entries (fdb entries_learned, entries_static), reassemblies in progress and their memory (reassembly in_progress, memory_in_use), half-open IKE SAs (ike half_open).",
			[]string{"scope", "id", "name"}, constLabels),
		peerUp: prometheus.NewDesc("vxswitch_peer_up",
			"1 when the peer is up (its IKE SA established; always in plain mode).", []string{"peer"}, constLabels),
		peerMTU: prometheus.NewDesc("vxswitch_peer_path_mtu_bytes",
			"Path MTU to the peer: probed (RFC 8899), or configured and lowered by ICMP for a peer that is not probed.", []string{"peer"}, constLabels),
		peerPkts: prometheus.NewDesc("vxswitch_peer_packets_total",
			"Packets to and from the peer on the underlay.", []string{"peer", "direction"}, constLabels),
		peerByte: prometheus.NewDesc("vxswitch_peer_bytes_total",
			"Bytes to and from the peer on the underlay.", []string{"peer", "direction"}, constLabels),
		probes: prometheus.NewDesc("vxswitch_peer_pmtu_probes_total",
			"Path MTU probes to the peer (RFC 8899) by result: sent, acked, lost.", []string{"peer", "result"}, constLabels),
		pmtuInfo: prometheus.NewDesc("vxswitch_peer_pmtu_info",
			"1, labelled with where the peer's path MTU comes from and the probing state.", []string{"peer", "source", "probe"}, constLabels),
		pmtuChg: prometheus.NewDesc("vxswitch_peer_pmtu_changes_total",
			"Changes of the probed path MTU to the peer, down (the path shrank, or a black hole) and up.", []string{"peer", "direction"}, constLabels),
		pmtuChk: prometheus.NewDesc("vxswitch_peer_pmtu_checks_total",
			"Checks of the path MTU that a sign of loss (a TCP segment sent again) or an ICMP report started.", []string{"peer"}, constLabels),
		bgpUp: prometheus.NewDesc("vxswitch_evpn_session_up",
			"1 when the BGP session to the route reflector is established.", []string{"neighbor"}, constLabels),
		routes: prometheus.NewDesc("vxswitch_evpn_routes",
			"EVPN routes held from the fabric (in) and advertised (out), by route type and segment.", []string{"direction", "type", "vni"}, constLabels),
		churn: prometheus.NewDesc("vxswitch_evpn_route_changes_total",
			"Best-path changes received from the fabric.", nil, constLabels),
		saAge: prometheus.NewDesc("vxswitch_sa_age_seconds",
			"Age of the oldest installed ESP SA to the peer in each direction, by suite and AEAD implementation (vaes, stdlib, stdlib-fips, x/crypto).",
			[]string{"peer", "direction", "suite", "implementation"}, constLabels),
		saLife: prometheus.NewDesc("vxswitch_sa_lifetime_seconds",
			"Time limits of the peer's ESP SAs: soft (rekeyed from then on) and hard (packets refused from then on); absent where none is set.",
			[]string{"peer", "limit"}, constLabels),
		saCount: prometheus.NewDesc("vxswitch_sas",
			"Installed ESP SAs per peer and direction (two during a rekey).", []string{"peer", "direction"}, constLabels),
	}
}

// Describe implements prometheus.Collector.
func (m *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.counters, m.levels, m.peerUp, m.peerMTU, m.peerPkts, m.peerByte, m.probes, m.pmtuInfo, m.pmtuChg, m.pmtuChk, m.bgpUp, m.routes, m.churn, m.saAge, m.saLife, m.saCount} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.sw.Stats() {
		scope, id, _ := strings.Cut(c.Scope, " ")
		if c.Level {
			ch <- prometheus.MustNewConstMetric(m.levels, prometheus.GaugeValue, float64(c.Value), scope, id, c.Name)
			continue
		}
		ch <- prometheus.MustNewConstMetric(m.counters, prometheus.CounterValue, float64(c.Value), scope, id, c.Name)
	}
	for _, p := range m.sw.Peers() {
		up := 0.0
		if p.State == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.peerUp, prometheus.GaugeValue, up, p.Name)
		ch <- prometheus.MustNewConstMetric(m.peerMTU, prometheus.GaugeValue, float64(p.MTU), p.Name)
		ch <- prometheus.MustNewConstMetric(m.peerPkts, prometheus.CounterValue, float64(p.TxPackets), p.Name, "tx")
		ch <- prometheus.MustNewConstMetric(m.peerPkts, prometheus.CounterValue, float64(p.RxPackets), p.Name, "rx")
		ch <- prometheus.MustNewConstMetric(m.peerByte, prometheus.CounterValue, float64(p.TxBytes), p.Name, "tx")
		ch <- prometheus.MustNewConstMetric(m.peerByte, prometheus.CounterValue, float64(p.RxBytes), p.Name, "rx")
		ch <- prometheus.MustNewConstMetric(m.probes, prometheus.CounterValue, float64(p.ProbesSent), p.Name, "sent")
		ch <- prometheus.MustNewConstMetric(m.probes, prometheus.CounterValue, float64(p.ProbesAcked), p.Name, "acked")
		ch <- prometheus.MustNewConstMetric(m.probes, prometheus.CounterValue, float64(p.ProbesLost), p.Name, "lost")
		ch <- prometheus.MustNewConstMetric(m.pmtuInfo, prometheus.GaugeValue, 1, p.Name, p.MTUSource, p.Probe)
		ch <- prometheus.MustNewConstMetric(m.pmtuChg, prometheus.CounterValue, float64(p.MTUShrinks), p.Name, "down")
		ch <- prometheus.MustNewConstMetric(m.pmtuChg, prometheus.CounterValue, float64(p.MTUGrows), p.Name, "up")
		ch <- prometheus.MustNewConstMetric(m.pmtuChk, prometheus.CounterValue, float64(p.MTUChecks), p.Name)
	}
	m.collectSAs(ch)
	if m.evpn == nil {
		return
	}
	st := m.evpn.Status()
	for _, s := range st.Sessions {
		up := 0.0
		if s.State == "established" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.bgpUp, prometheus.GaugeValue, up, s.Neighbor)
	}
	for dir, rs := range map[string]map[string]int{"in": st.RoutesIn, "out": st.RoutesOut} {
		for k, n := range rs {
			typ, vni, _ := strings.Cut(k, " vni ")
			ch <- prometheus.MustNewConstMetric(m.routes, prometheus.GaugeValue, float64(n), dir, typ, vni)
		}
	}
	ch <- prometheus.MustNewConstMetric(m.churn, prometheus.CounterValue, float64(st.Churn))
}

// collectSAs sends the SA gauges: per peer and direction the oldest SA's
// age (labelled with its suite and implementation), the count, and the
// peer's time limits.
func (m *metricsCollector) collectSAs(ch chan<- prometheus.Metric) {
	type key struct{ peer, dir string }
	oldest := map[key]dataplane.SAStatus{}
	count := map[key]int{}
	limits := map[string][2]time.Duration{}
	for _, sa := range m.sw.SAs() {
		k := key{sa.Peer, sa.Direction}
		if o, ok := oldest[k]; !ok || sa.Age > o.Age {
			oldest[k] = sa
		}
		count[k]++
		limits[sa.Peer] = [2]time.Duration{sa.SoftLifetime, sa.HardLifetime}
	}
	for k, sa := range oldest {
		ch <- prometheus.MustNewConstMetric(m.saAge, prometheus.GaugeValue, sa.Age.Seconds(), k.peer, k.dir, sa.Suite, sa.Implementation)
		ch <- prometheus.MustNewConstMetric(m.saCount, prometheus.GaugeValue, float64(count[k]), k.peer, k.dir)
	}
	for peer, l := range limits {
		for i, name := range []string{"soft", "hard"} {
			if l[i] > 0 {
				ch <- prometheus.MustNewConstMetric(m.saLife, prometheus.GaugeValue, l[i].Seconds(), peer, name)
			}
		}
	}
}

// serveMetrics serves /metrics on addr until ctx is done and returns the
// bound address; with pprof, net/http/pprof's /debug/pprof/ too. The
// listener is opened before it returns, so a bad address fails the start.
func serveMetrics(ctx context.Context, addr string, pprofToo bool, sw controlled, speaker *evpn.Speaker, site string, log *slog.Logger) (net.Addr, error) {
	reg := prometheus.NewRegistry()
	mc := newMetricsCollector(sw, site)
	mc.evpn = speaker
	reg.MustRegister(mc, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if pprofToo {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	// Idle keep-alive connections (a scraper that went away) do not pile up.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics on http://" + ln.Addr().String() + "/metrics")
	return ln.Addr(), nil
}
