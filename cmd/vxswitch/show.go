package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/evpn"
)

// controlGlob finds the sockets of running switches when neither -S nor a
// configuration is given.
var controlGlob = filepath.Join(defaultControlDir, "*.sock")

// resolveSocket picks the control socket: -S, else the configuration's
// site.control, else the only socket in /run/vxswitch.
func resolveSocket(socket, config string) (string, error) {
	switch {
	case socket != "" && config != "":
		return "", usagef("give -S socket or a configuration file, not both")
	case socket != "":
		return socket, nil
	case config != "":
		return controlPath(config)
	}
	matches, _ := filepath.Glob(controlGlob)
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return "", fmt.Errorf("no control socket matches %s: is vxswitch running? (or give -S socket or -c site.toml)", controlGlob)
	}
	return "", fmt.Errorf("several switches run here (%s): pick one with -S socket or -c site.toml", strings.Join(matches, ", "))
}

func (c *cli) show(args []string) error {
	fs := c.newFlags("show", "fdb|peers|sas|stats|evpn [--json] [--all] [--wireshark [-w file]] [-S socket | -c site.toml]")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	all := fs.Bool("all", false, "show stats: counters at zero too (--json always has them all)")
	wireshark := fs.Bool("wireshark", false, "show sas: the SAs with their keys, as Wireshark/tshark esp_sa entries")
	wfile := fs.String("w", "", "with --wireshark: write the entries to this new file, mode 0600, instead of standard output")
	socket := fs.String("S", "", "control socket path")
	config := fs.String("c", "", "configuration file, to find the control socket")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef("what to show? fdb, peers, sas, stats or evpn")
	case len(pos) > 1:
		return usagef("unexpected argument %q", pos[1])
	}
	what := pos[0]
	switch what {
	case "fdb", "peers", "sas", "stats", "evpn":
	default:
		return usagef("cannot show %q: want fdb, peers, sas, stats or evpn", what)
	}
	if *wireshark && what != "sas" {
		return usagef("--wireshark applies to show sas only")
	}
	if *wireshark && *asJSON {
		return usagef("--wireshark and --json exclude each other")
	}
	if *wfile != "" && !*wireshark {
		return usagef("-w goes with --wireshark")
	}
	path, err := resolveSocket(*socket, *config)
	if err != nil {
		return err
	}

	var table any
	switch what {
	case "fdb":
		table = new([]dataplane.FDBEntry)
	case "peers":
		table = new([]dataplane.PeerStatus)
	case "sas":
		table = new([]dataplane.SAStatus)
	case "stats":
		table = new([]dataplane.Counter)
	case "evpn":
		table = new(evpn.Status)
	}
	if err := show(path, what, *wireshark, table); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(table)
	}
	switch t := table.(type) {
	case *[]dataplane.FDBEntry:
		return writeFDB(c.stdout, *t)
	case *[]dataplane.PeerStatus:
		return writePeers(c.stdout, *t)
	case *[]dataplane.SAStatus:
		if *wireshark && *wfile != "" {
			return writeWiresharkFile(*wfile, *t)
		}
		if *wireshark {
			return writeWireshark(c.stdout, *t)
		}
		return writeSAs(c.stdout, *t)
	case *[]dataplane.Counter:
		return writeStats(c.stdout, *t, *all)
	case *evpn.Status:
		return writeEVPN(c.stdout, *t)
	}
	return nil
}

// writeEVPN prints the route reflector sessions, then the routes in and
// out per type and segment.
func writeEVPN(w io.Writer, st evpn.Status) error {
	tw := newTable(w, "NEIGHBOR", "STATE", "UP", "RECEIVED", "ACCEPTED")
	for _, s := range st.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", s.Neighbor, s.State, cmp.Or(s.Uptime, "-"), s.Received, s.Accepted)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w, "ROUTES", "IN", "OUT")
	keys := map[string]bool{}
	for k := range st.RoutesIn {
		keys[k] = true
	}
	for k := range st.RoutesOut {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", k, st.RoutesIn[k], st.RoutesOut[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w, "SEGMENT", "ROUTE TARGETS", "FROM")
	for _, vni := range slices.Sorted(maps.Keys(st.RouteTargets)) {
		rts := st.RouteTargets[vni]
		fmt.Fprintf(tw, "%d\t%s\t%s\n", vni, strings.Join(rts.Targets, " "), rts.From())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\npeers from routes: %d %v; remote MACs installed: %d; route changes: %d; refused: %d; duplicate MACs: %d\n",
		st.Peers, st.Discovered, st.Installed, st.Churn, st.Refused, st.Duplicate)
	return nil
}

func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

func writeFDB(w io.Writer, es []dataplane.FDBEntry) error {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].VNI != es[j].VNI {
			return es[i].VNI < es[j].VNI
		}
		return es[i].MAC < es[j].MAC
	})
	tw := newTable(w, "VNI", "MAC", "PORT", "TYPE", "AGE", "MOVES")
	for _, e := range es {
		kind, age := "learned", formatAge(e.Age)
		if e.Static {
			kind, age = "static", "-"
		}
		if e.Control {
			kind = "evpn" // a control plane's: the fabric's routes
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\n", e.VNI, e.MAC, e.Port, kind, age, e.Moves)
	}
	return tw.Flush()
}

func formatAge(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func writePeers(w io.Writer, ps []dataplane.PeerStatus) error {
	tw := newTable(w, "NAME", "ENDPOINT", "VTEP", "MTU", "MTU-FROM", "PROBE", "PROBES(SENT/ACK/LOST)", "STATE", "TX-PKTS", "TX-BYTES", "TX-FRAGS", "RX-PKTS", "RX-BYTES", "IKE SA")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n",
			p.Name, p.Endpoint, p.VTEP, p.MTU, p.MTUSource, probeState(p), fmt.Sprintf("%d/%d/%d", p.ProbesSent, p.ProbesAcked, p.ProbesLost), p.State, p.TxPackets, p.TxBytes, p.Fragments, p.RxPackets, p.RxBytes, cmp.Or(p.IKE, "-"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// When and why the path MTU last changed, and why a peer is not up
	// (or was not, last time): below the table.
	for _, p := range ps {
		if p.MTUChange != "" {
			if _, err := fmt.Fprintf(w, "%s: path MTU %d since %s ago (%s); %d down, %d up, %d checks\n", p.Name, p.MTU,
				formatAge(time.Since(p.MTUChangedAt)), p.MTUChange, p.MTUShrinks, p.MTUGrows, p.MTUChecks); err != nil {
				return err
			}
		}
		if p.LastError != "" {
			if _, err := fmt.Fprintf(w, "%s: last error %s ago: %s\n", p.Name, formatAge(time.Since(p.LastErrorAt)), p.LastError); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeSAs(w io.Writer, sas []dataplane.SAStatus) error {
	tw := newTable(w, "PEER", "DIR", "SPI", "SUITE", "IMPL", "ESN", "AGE", "PACKETS", "BYTES")
	for _, s := range sas {
		esn := "no"
		if s.ESN {
			esn = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t0x%08x\t%s\t%s\t%s\t%s\t%d\t%d\n", s.Peer, s.Direction, s.SPI, s.Suite, s.Implementation, esn,
			s.Age.Round(time.Second), s.Packets, s.Bytes)
	}
	return tw.Flush()
}

// writeWireshark prints one esp_sa line per SA, ready for
// ~/.config/wireshark/esp_sa or tshark -o "uat:esp_sa:...".
func writeWireshark(w io.Writer, sas []dataplane.SAStatus) error {
	for _, s := range sas {
		if s.Wireshark == "" {
			continue
		}
		if _, err := fmt.Fprintln(w, s.Wireshark); err != nil {
			return err
		}
	}
	return nil
}

// writeWiresharkFile writes the esp_sa entries to a new file that only its
// owner may read (the keys decrypt the traffic).
func writeWiresharkFile(path string, sas []dataplane.SAStatus) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := writeWireshark(f, sas); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeStats prints the counters, those at zero only with all.
func writeStats(w io.Writer, cs []dataplane.Counter, all bool) error {
	tw := newTable(w, "SCOPE", "COUNTER", "VALUE")
	hidden := 0
	for _, c := range cs {
		if c.Value == 0 && !all {
			hidden++
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\n", c.Scope, c.Name, c.Value)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if hidden > 0 {
		_, err := fmt.Fprintf(w, "(%d counters at zero not shown: --all)\n", hidden)
		return err
	}
	return nil
}

// probeState is the PROBE column: the state, and "/ike" when the probes
// travel in IKE.
func probeState(p dataplane.PeerStatus) string {
	if p.ProbeVia == "ike" {
		return p.Probe + "/ike"
	}
	return p.Probe
}
