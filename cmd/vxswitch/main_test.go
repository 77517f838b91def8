package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/dataplane"
)

// invoke runs the CLI and returns its exit code and output.
func invoke(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{nil, "usage: vxswitch <command>"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"run"}, "-c site.toml is required"},
		{[]string{"run", "-c", "x.toml", "extra"}, `unexpected argument "extra"`},
		{[]string{"run", "-c", "x.toml", "-log-level", "loud"}, "invalid value \"loud\" for flag -log-level"},
		{[]string{"check"}, "-c site.toml is required"},
		{[]string{"check", "-x"}, "flag provided but not defined: -x"},
		{[]string{"show"}, "what to show? fdb, peers, sas, stats or evpn"},
		{[]string{"show", "routes"}, `cannot show "routes"`},
		{[]string{"show", "fdb", "peers"}, `unexpected argument "peers"`},
		{[]string{"show", "fdb", "--wireshark"}, "--wireshark applies to show sas only"},
		{[]string{"show", "sas", "--wireshark", "--json"}, "--wireshark and --json exclude each other"},
		{[]string{"show", "fdb", "-S", "a.sock", "-c", "b.toml"}, "give -S socket or a configuration file, not both"},
		{[]string{"show", "fdb", "-S"}, "flag needs an argument: -S"},
		{[]string{"capture", "-w", "x.pcap"}, "-p tap|underlay|inner is required"},
		{[]string{"capture", "-p", "wire", "-w", "x.pcap"}, `-p "wire": want tap, underlay or inner`},
		{[]string{"capture", "-p", "inner"}, "-w out.pcap (or -w - for standard output) is required"},
		{[]string{"capture", "-p", "inner", "-s", "16777216", "-w", "x"}, "-s 16777216: a VNI is 0..16777215"},
		{[]string{"capture", "-p", "inner", "-s", "-1", "-w", "x"}, `invalid value "-1" for flag -s`},
		{[]string{"capture", "-p", "inner", "-n", "-5", "-w", "x"}, "-n -5: count may not be negative"},
		{[]string{"capture", "-p", "inner", "-w", "x", "now"}, `unexpected argument "now"`},
		{[]string{"version", "--short"}, "flag provided but not defined: -short"},
		{[]string{"version", "x"}, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := invoke(t, tt.args...)
			if code != exitUsage {
				t.Errorf("got exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("got stderr %q, want it to contain %q", stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("got stdout %q, want none", stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"show", "-h"}, {"capture", "--help"}} {
		code, stdout, stderr := invoke(t, args...)
		if code != exitOK || !strings.Contains(stdout+stderr, "usage: vxswitch") {
			t.Errorf("%v: got exit code %d, output %q %q, want 0 and usage", args, code, stdout, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	old := version
	version = "v1.2.3-test"
	defer func() { version = old }()
	code, stdout, _ := invoke(t, "version")
	if code != exitOK || !strings.HasPrefix(stdout, "vxswitch v1.2.3-test go") {
		t.Errorf("got %d %q, want 0 and the version", code, stdout)
	}
}

func TestCheck(t *testing.T) {
	files := sixSites(t, t.TempDir())
	code, stdout, stderr := invoke(t, "check", "-c", files["makuhari"])
	for _, want := range []string{
		"ok: site makuhari, esp aes128gcm16, listen 192.0.2.1 port 4500, segments 129/vx129, 5 peers, control /run/vxswitch/makuhari.sock\n",
		"  TAP vx129: segment 129, MTU 1500, address 10.11.129.1/24\n",
		"  UDP 192.0.2.1:4500: ESP and IKE (non-ESP marker); UDP 192.0.2.1:500: IKE\n",
		"  peer sakura: endpoint 198.51.100.2:4500, vtep 172.31.0.2, path MTU probed up to 1400, the mesh PSK\n",
		files["makuhari"] + ": warning: 5 peers share the mesh PSK",
	} {
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("got %d %q %q, want 0 and %q", code, stdout, stderr, want)
		}
	}

	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte(conf{peer: "[[peer]]\nname = \"a\"\nendpoint = \"198.51.100.9\"\nmtu = 70000\n"}.String()), 0o644)
	code, stdout, stderr = invoke(t, "check", "-c", bad)
	if code != exitRuntime || stdout != "" || !strings.Contains(stderr, `peer[0] "a".mtu: 70000 is out of range (576..65535)`) {
		t.Errorf("got %d %q %q, want 1 and the mtu error", code, stdout, stderr)
	}
	code, _, stderr = invoke(t, "check", "-c", filepath.Join(t.TempDir(), "missing.toml"))
	if code != exitRuntime || !strings.Contains(stderr, "no such file") {
		t.Errorf("got %d %q, want 1 and no such file", code, stderr)
	}
}

func TestParseFlagsInterspersed(t *testing.T) {
	for _, tt := range []struct {
		args     []string
		wantPos  []string
		wantJSON bool
	}{
		{[]string{"fdb", "--json"}, []string{"fdb"}, true},
		{[]string{"--json", "fdb"}, []string{"fdb"}, true},
		{[]string{"fdb"}, []string{"fdb"}, false},
		{[]string{"--", "-json"}, []string{"-json"}, false},
		{[]string{"a", "--json", "b"}, []string{"a", "b"}, true},
	} {
		c := &cli{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
		fs := c.newFlags("t", "")
		j := fs.Bool("json", false, "")
		pos, err := parseFlags(fs, tt.args)
		if err != nil || !reflect.DeepEqual(pos, tt.wantPos) || *j != tt.wantJSON {
			t.Errorf("%q: got %q json=%v err=%v, want %q json=%v", tt.args, pos, *j, err, tt.wantPos, tt.wantJSON)
		}
	}
}

func TestShowTables(t *testing.T) {
	checkGoroutines(t)
	sw := newFakeSwitch()
	_, path := startControl(t, sw)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"show", "fdb", "-S", path}, "" +
			"VNI  MAC                PORT    TYPE     AGE    MOVES\n" +
			"129  02:00:0a:0b:81:01  local   learned  300ms  0\n" +
			"129  02:00:0a:0b:81:02  sakura  learned  12s    1\n" +
			"129  02:00:0a:0b:81:fe  sakura  static   -      0\n"},
		{[]string{"show", "-S", path, "peers"}, "" +
			"NAME     ENDPOINT           VTEP        MTU   MTU-FROM  PROBE            PROBES(SENT/ACK/LOST)  STATE       TX-PKTS  TX-BYTES  TX-FRAGS  RX-PKTS  RX-BYTES  IKE SA\n" +
			"sakura   198.51.100.2:4500  172.31.0.2  1400  probed    search_complete  7/6/1                  up          10       15000     4         9        13000     aes128gcm16-prfsha256-x25519, 5m0s\n" +
			"starbed  203.0.113.6:4500   172.31.0.6  1500  base      base             1/0/0                  connecting  0        0         0         0        0         -\n"},
		{[]string{"show", "sas", "-S", path}, "" +
			"PEER    DIR  SPI         SUITE        IMPL  ESN  AGE    PACKETS  BYTES\n" +
			"sakura  out  0xc0ffee01  aes128gcm16  vaes  yes  1m30s  10       15000\n" +
			"sakura  in   0x0badf00d  aes128gcm16  vaes  yes  1m30s  9        13000\n"},
		{[]string{"show", "sas", "--wireshark", "-S", path}, sw.sas[0].Wireshark + "\n" + sw.sas[1].Wireshark + "\n"},
		{[]string{"show", "stats", "-S", path}, "" +
			"SCOPE        COUNTER          VALUE\n" +
			"switch       rx_drop_garbage  3\n" +
			"peer sakura  rx_drop_replay   1\n" +
			"reassembly   in_progress      2\n" +
			"segment 129  flood            42\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			code, stdout, stderr := invoke(t, tt.args...)
			if code != exitOK {
				t.Fatalf("got exit code %d, stderr %q", code, stderr)
			}
			if stdout != tt.want {
				t.Errorf("got\n%s\nwant\n%s", stdout, tt.want)
			}
		})
	}

	// Keys only when asked for: --json carries none; -w writes a new
	// file that only its owner may read, and never over another.
	if _, stdout, _ := invoke(t, "show", "sas", "--json", "-S", path); strings.Contains(stdout, "0x00112233") || strings.Contains(stdout, `"wireshark": "IPv4`) {
		t.Errorf("show sas --json prints keys:\n%s", stdout)
	}
	export := filepath.Join(t.TempDir(), "esp_sa")
	if code, _, stderr := invoke(t, "show", "sas", "--wireshark", "-w", export, "-S", path); code != exitOK {
		t.Fatalf("--wireshark -w: %d %s", code, stderr)
	}
	if st, err := os.Stat(export); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("export: %v, mode %v", err, st.Mode().Perm())
	}
	if b, _ := os.ReadFile(export); string(b) != sw.sas[0].Wireshark+"\n"+sw.sas[1].Wireshark+"\n" {
		t.Errorf("export holds %q", b)
	}
	if code, _, _ := invoke(t, "show", "sas", "--wireshark", "-w", export, "-S", path); code == exitOK {
		t.Error("--wireshark -w wrote over an existing file")
	}
}

func TestShowJSON(t *testing.T) {
	checkGoroutines(t)
	sw := newFakeSwitch()
	_, path := startControl(t, sw)
	code, stdout, stderr := invoke(t, "show", "peers", "--json", "-S", path)
	if code != exitOK {
		t.Fatalf("got exit code %d, stderr %q", code, stderr)
	}
	var got []dataplane.PeerStatus
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if !reflect.DeepEqual(got, sw.peers) {
		t.Errorf("got %+v, want %+v", got, sw.peers)
	}
	if !strings.Contains(stdout, `"tx_fragments": 4`) {
		t.Errorf("got %s, want the API's JSON names", stdout)
	}
}

func TestShowViaConfig(t *testing.T) {
	checkGoroutines(t)
	_, path := startControl(t, newFakeSwitch())
	cfg := filepath.Join(t.TempDir(), "site.toml")
	// show needs only [site]: the PSK file need not be readable
	os.WriteFile(cfg, []byte("[site]\nname = \"x\"\ncontrol = \""+path+"\"\n[security]\npsk_file = \"/root/nope\"\n"), 0o644)
	code, stdout, stderr := invoke(t, "show", "stats", "-c", cfg)
	if code != exitOK || !strings.HasPrefix(stdout, "SCOPE") {
		t.Errorf("got %d %q %q", code, stdout, stderr)
	}
}

func TestShowNoSwitch(t *testing.T) {
	code, _, stderr := invoke(t, "show", "fdb", "-S", filepath.Join(t.TempDir(), "none.sock"))
	if code != exitRuntime || !strings.Contains(stderr, "is vxswitch running?") {
		t.Errorf("got %d %q, want 1 and a hint", code, stderr)
	}
	old := controlGlob
	controlGlob = filepath.Join(t.TempDir(), "*.sock")
	defer func() { controlGlob = old }()
	code, _, stderr = invoke(t, "show", "fdb")
	if code != exitRuntime || !strings.Contains(stderr, "no control socket matches") {
		t.Errorf("got %d %q, want 1 and no control socket", code, stderr)
	}
}

// siteFile writes a runnable configuration for the run tests.
func siteFile(t *testing.T, dir, peers string) (path, control string) {
	t.Helper()
	control = filepath.Join(dir, "ctl", "site.sock")
	psk := filepath.Join(dir, "k.psk")
	if err := os.WriteFile(psk, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "site.toml")
	writeSite(t, path, control, psk, baseSegment, peers)
	return path, control
}

func writeSite(t *testing.T, path, control, psk, segment, peers string) {
	t.Helper()
	text := conf{
		site:     "[site]\nname = \"makuhari\"\nlisten = \"192.0.2.1\"\nvtep = \"172.31.0.1\"\ncontrol = \"" + control + "\"\n",
		segment:  segment,
		security: "[security]\npsk_file = \"" + psk + "\"\n",
		peer:     peers,
	}.String()
	if err := os.WriteFile(path+".tmp", []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeSiteReload(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	path, control := siteFile(t, dir, basePeers)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	sw := newFakeSwitch()
	var logs syncBuffer
	log := slogTo(&logs)
	hup := make(chan os.Signal)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveSite(ctx, path, cfg, sw, hup, log) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})
	waitFor(t, "the switch to run", sw.running.Load)
	if _, err := os.Lstat(control); err != nil {
		t.Fatalf("control socket: %v", err)
	}

	threePeers := basePeers + "[[peer]]\nname = \"rise\"\nendpoint = \"198.51.100.5\"\n"
	psk := filepath.Join(dir, "k.psk")
	steps := []struct {
		name      string
		segment   string
		peers     string
		wantPeers []string // nil: no reload
		wantLog   string
	}{
		{"peer added", baseSegment, threePeers, []string{"sakura", "idcf", "rise"}, "reload: peers replaced"},
		{"invalid file", baseSegment, threePeers + "mtu = 1\n", nil, "reload: invalid configuration, keeping the running one"},
		{"segment changed", baseSegment + "mtu = 9000\n", basePeers, nil, "changed=[segment]"},
		{"peer removed", baseSegment, "[[peer]]\nname = \"idcf\"\nendpoint = \"203.0.113.3:4600\"\nvtep = \"172.31.0.3\"\n", []string{"idcf"}, `msg="reload: peers replaced" peers=1`},
	}
	for _, st := range steps {
		writeSite(t, path, control, psk, st.segment, st.peers)
		before := strings.Count(logs.String(), st.wantLog)
		hup <- syscall.SIGHUP
		waitFor(t, st.name+" log", func() bool { return strings.Count(logs.String(), st.wantLog) > before })
		if st.wantPeers == nil {
			select {
			case got := <-sw.reloads:
				t.Errorf("%s: got a reload with %d peers, want none", st.name, len(got))
			default:
			}
			continue
		}
		got := <-sw.reloads
		var names []string
		for _, p := range got {
			names = append(names, p.Name)
		}
		if !reflect.DeepEqual(names, st.wantPeers) {
			t.Errorf("%s: got peers %v, want %v", st.name, names, st.wantPeers)
		}
	}

	sw.reloadErr = errors.New("busy") // the loop is idle: it logged the last reload
	hup <- syscall.SIGHUP
	waitFor(t, "the refusal", func() bool { return strings.Contains(logs.String(), "switch refused the new peers") })

	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Errorf("got %v after cancel, want nil", err)
	}
	if _, err := os.Lstat(control); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after shutdown: got %v, want it removed", err)
	}
}

func TestServeSiteRunError(t *testing.T) {
	checkGoroutines(t)
	path, _ := siteFile(t, t.TempDir(), basePeers)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	sw := newFakeSwitch()
	sw.runErr = errors.New("open tap vx129: operation not permitted")
	err = serveSite(context.Background(), path, cfg, sw, nil, discardLogger())
	if err == nil || !strings.Contains(err.Error(), "switch: open tap vx129") {
		t.Errorf("got %v, want the switch's error", err)
	}
}

func TestRunCommand(t *testing.T) {
	checkGoroutines(t)
	path, control := siteFile(t, t.TempDir(), basePeers)
	sw := newFakeSwitch()
	var got dataplane.Config
	old := newSwitch
	newSwitch = func(cfg dataplane.Config) (siteSwitch, error) { got = cfg; return sw, nil }
	defer func() { newSwitch = old }()

	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"run", "-c", path, "-log-level", "debug"}, &bytes.Buffer{}, &stderr)
	}()
	waitFor(t, "the switch to run", sw.running.Load)
	if code, stdout, _ := invoke(t, "show", "fdb", "-c", path); code != exitOK || !strings.Contains(stdout, "02:00:0a:0b:81:fe") {
		t.Errorf("show over the running site's socket: got %d %q", code, stdout)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("got exit code %d, want 0; stderr:\n%s", code, stderr.String())
	}
	if got.Name != "makuhari" || got.Logger == nil || len(got.Peer) != 2 {
		t.Errorf("the switch got %+v", got)
	}
	if _, err := os.Lstat(control); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after shutdown: got %v, want it removed", err)
	}
	if !strings.Contains(stderr.String(), "level=INFO msg=\"vxswitch starting\"") {
		t.Errorf("got log %q, want the start line", stderr.String())
	}

	// A bad configuration is a runtime error (exit 1) before anything starts.
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[site]\n"), 0o644)
	if code, _, stderr := invoke(t, "run", "-c", bad); code != exitRuntime || !strings.Contains(stderr, "site.name: required") {
		t.Errorf("got %d %q", code, stderr)
	}
}
