package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/internal/require"
)

const promDir = "../../examples/prometheus"

// TestPrometheusRules runs promtool over examples/prometheus: the rules
// load (check rules) and do what their unit tests say (test rules).
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	require.That(t, err == nil, "promtool (Debian: prometheus) is not installed")
	for _, args := range [][]string{{"check", "rules", "vxswitch.rules.yml"}, {"test", "rules", "vxswitch.rules.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = promDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestPrometheusNamesExported: every metric a rule or the dashboard names
// is one the binary exports, every label a selector uses is one of that
// metric's, and every label value (or regexp) a selector matches is one
// the binary can export: counter and level names from
// dataplane.CounterCatalog, path MTU states and sources, suites,
// implementations, directions and limits.
func TestPrometheusNamesExported(t *testing.T) {
	labels := exportedMetrics(t)
	values := map[string][]string{
		"scope":          {"switch", "segment", "peer", "fdb", "reassembly", "ike"},
		"probe":          dataplane.PathMTUProbeStates(),
		"source":         dataplane.PathMTUSources(),
		"implementation": {"vaes", "stdlib", "stdlib-fips", "x/crypto"},
		"limit":          {"soft", "hard"},
		"result":         {"sent", "acked", "lost"},
	}
	for _, s := range crypto.Suites {
		values["suite"] = append(values["suite"], s.String())
	}
	for _, c := range dataplane.CounterCatalog() {
		if c.Level {
			values["name"] = append(values["name"], c.Name)
		} else {
			values["counter"] = append(values["counter"], c.Name)
		}
	}
	directions := map[string][]string{ // by metric: SAs go in and out, traffic rx and tx
		"vxswitch_sa_age_seconds": {"in", "out"}, "vxswitch_sas": {"in", "out"},
		"vxswitch_peer_packets_total": {"rx", "tx"}, "vxswitch_peer_bytes_total": {"rx", "tx"},
	}

	exprs := ruleExprs(t)
	exprs = append(exprs, dashboardExprs(t)...)
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found in the rules and the dashboard", len(exprs))
	}
	nameRE := regexp.MustCompile(`\bvxswitch_[a-z0-9_]+\b`)
	selRE := regexp.MustCompile(`\b(vxswitch_[a-z0-9_]+)\{([^}]*)\}`)
	matchRE := regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	for _, e := range exprs {
		for _, name := range nameRE.FindAllString(e, -1) {
			if _, ok := labels[name]; !ok {
				t.Errorf("%q: metric %s is not exported", e, name)
			}
		}
		for _, sel := range selRE.FindAllStringSubmatch(e, -1) {
			metric := sel[1]
			for _, m := range matchRE.FindAllStringSubmatch(sel[2], -1) {
				label, op, val := m[1], m[2], m[3]
				if !slices.Contains(labels[metric], label) {
					t.Errorf("%q: %s has no label %q (it has %v)", e, metric, label, labels[metric])
					continue
				}
				known := values[label]
				if label == "direction" {
					known = directions[metric]
				}
				if known == nil {
					continue // free values: site, peer, neighbor, id
				}
				switch op {
				case "=", "!=":
					if !slices.Contains(known, val) {
						t.Errorf("%q: %s{%s=%q}: the binary exports no such value (it has %v)", e, metric, label, val, known)
					}
				case "=~", "!~":
					re := regexp.MustCompile("^(?:" + val + ")$")
					if !slices.ContainsFunc(known, re.MatchString) {
						t.Errorf("%q: %s{%s=~%q} matches no value the binary exports", e, metric, label, val)
					}
				}
			}
		}
	}
}

// exportedMetrics maps every metric name the binary's collector describes
// to its labels (site included).
func exportedMetrics(t *testing.T) map[string][]string {
	ch := make(chan *prometheus.Desc, 64)
	newMetricsCollector(newFakeSwitch(), "s").Describe(ch)
	close(ch)
	descRE := regexp.MustCompile(`fqName: "([^"]+)".*constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for d := range ch {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read %s", d)
		}
		var ls []string
		for _, c := range strings.Split(m[2], ",") {
			if k, _, ok := strings.Cut(c, "="); ok {
				ls = append(ls, k)
			}
		}
		if m[3] != "" {
			ls = append(ls, strings.Split(m[3], ",")...)
		}
		out[m[1]] = ls
	}
	if len(out) < 10 {
		t.Fatalf("only %d metrics described", len(out))
	}
	return out
}

func ruleExprs(t *testing.T) []string {
	raw, err := os.ReadFile(filepath.Join(promDir, "vxswitch.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

// dashboardExprs are the "expr" strings of every panel target.
func dashboardExprs(t *testing.T) []string {
	raw, err := os.ReadFile(filepath.Join(promDir, "vxswitch-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if s, ok := c.(string); ok && k == "expr" {
					out = append(out, s)
				}
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}
