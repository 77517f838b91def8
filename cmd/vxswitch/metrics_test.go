package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetrics scrapes /metrics and decodes it with Prometheus' own text
// parser: the counters and peer gauges of the switch are there, labelled.
func TestMetrics(t *testing.T) {
	sw := newFakeSwitch()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := serveMetrics(ctx, "127.0.0.1:0", false, sw, nil, "makuhari", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if r, err := http.Get("http://" + addr.String() + "/debug/pprof/heap"); err != nil {
		t.Error(err)
	} else if r.Body.Close(); r.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without site.pprof: %s, want 404", r.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	find := func(name string, labels map[string]string) (float64, bool) {
		f := families[name]
		if f == nil {
			return 0, false
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
		return 0, false
	}
	for _, c := range sw.stats {
		scope, id, _ := strings.Cut(c.Scope, " ")
		name, labels := "vxswitch_events_total", map[string]string{"site": "makuhari", "scope": scope, "id": id, "counter": c.Name}
		if c.Level { // levels are gauges
			name, labels = "vxswitch_level", map[string]string{"site": "makuhari", "scope": scope, "id": id, "name": c.Name}
		}
		v, ok := find(name, labels)
		if !ok || v != float64(c.Value) {
			t.Errorf("%s %s/%s: got %v %v, want %d", name, c.Scope, c.Name, v, ok, c.Value)
		}
	}
	if f := families["vxswitch_level"]; f == nil || f.GetType().String() != "GAUGE" {
		t.Error("vxswitch_level is not a gauge")
	}
	for _, p := range sw.peers {
		want := 0.0
		if p.State == "up" {
			want = 1
		}
		if v, ok := find("vxswitch_peer_up", map[string]string{"peer": p.Name}); !ok || v != want {
			t.Errorf("vxswitch_peer_up{peer=%s} = %v %v, want %v", p.Name, v, ok, want)
		}
		if v, ok := find("vxswitch_peer_path_mtu_bytes", map[string]string{"peer": p.Name}); !ok || v != float64(p.MTU) {
			t.Errorf("vxswitch_peer_path_mtu_bytes{peer=%s} = %v, want %d", p.Name, v, p.MTU)
		}
		if v, ok := find("vxswitch_peer_packets_total", map[string]string{"peer": p.Name, "direction": "tx"}); !ok || v != float64(p.TxPackets) {
			t.Errorf("vxswitch_peer_packets_total{peer=%s,tx} = %v, want %d", p.Name, v, p.TxPackets)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vxswitch_sa_age_seconds", map[string]string{"peer": "sakura", "direction": "out", "suite": "aes128gcm16", "implementation": "vaes"}, 90},
		{"vxswitch_sas", map[string]string{"peer": "sakura", "direction": "in"}, 1},
		{"vxswitch_sa_lifetime_seconds", map[string]string{"peer": "sakura", "limit": "soft"}, 3000},
		{"vxswitch_sa_lifetime_seconds", map[string]string{"peer": "sakura", "limit": "hard"}, 3600},
	} {
		if v, ok := find(c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v %v, want %v", c.name, c.labels, v, ok, c.want)
		}
		if f := families[c.name]; f == nil || f.GetType().String() != "GAUGE" {
			t.Errorf("%s is not a gauge", c.name)
		}
	}
	if _, err := serveMetrics(ctx, "127.0.0.1:notaport", false, sw, nil, "x", slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a bad metrics address started")
	}
}

// TestPprof: with site.pprof the metrics listener also serves Go's
// profiles, and a heap profile comes back in pprof's format (gzip).
func TestPprof(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := serveMetrics(ctx, "127.0.0.1:0", true, newFakeSwitch(), nil, "x", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		t.Errorf("heap profile: %s, %d bytes starting % x", resp.Status, len(body), body[:min(len(body), 4)])
	}
}
