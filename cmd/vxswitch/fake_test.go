package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/crypto/ike"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/encap"
)

// fakeSwitch is a test double of the dataplane.Switch API the binary uses.
type fakeSwitch struct {
	fdb   []dataplane.FDBEntry
	peers []dataplane.PeerStatus
	sas   []dataplane.SAStatus
	stats []dataplane.Counter

	runErr    error // Run returns it at once when set
	reloadErr error

	sessions chan *fakeSession // every Capture is sent here
	reloads  chan []dataplane.PeerConfig
	running  atomic.Bool

	mu  sync.Mutex
	psk []byte // the last SetAuth
}

func newFakeSwitch() *fakeSwitch {
	return &fakeSwitch{
		fdb: []dataplane.FDBEntry{
			{VNI: 129, MAC: "02:00:0a:0b:81:02", Port: "sakura", Age: 12*time.Second + 400*time.Millisecond, Moves: 1},
			{VNI: 129, MAC: "02:00:0a:0b:81:01", Port: "local", Age: 300 * time.Millisecond},
			{VNI: 129, MAC: "02:00:0a:0b:81:fe", Port: "sakura", Static: true},
		},
		peers: []dataplane.PeerStatus{
			{Name: "sakura", Endpoint: "198.51.100.2:4500", VTEP: "172.31.0.2", MTU: 1400, State: "up",
				MTUSource: "probed", Probe: "search_complete", ProbesSent: 7, ProbesAcked: 6, ProbesLost: 1,
				TxPackets: 10, TxBytes: 15000, RxPackets: 9, RxBytes: 13000, Fragments: 4, IKE: "aes128gcm16-prfsha256-x25519, 5m0s"},
			{Name: "starbed", Endpoint: "203.0.113.6:4500", VTEP: "172.31.0.6", MTU: 1500, State: "connecting",
				MTUSource: "base", Probe: "base", ProbesSent: 1},
		},
		sas: []dataplane.SAStatus{
			{Peer: "sakura", Direction: "out", SPI: 0xc0ffee01, Suite: "aes128gcm16", Implementation: "vaes", ESN: true, Packets: 10, Bytes: 15000,
				Age: 90 * time.Second, SoftLifetime: 50 * time.Minute, HardLifetime: time.Hour,
				Wireshark: `"IPv4","192.0.2.1","198.51.100.2","0xc0ffee01","AES-GCM with 16 octet ICV [RFC4106]","0x00112233445566778899aabbccddeeff00112233","NULL",""`},
			{Peer: "sakura", Direction: "in", SPI: 0x0badf00d, Suite: "aes128gcm16", Implementation: "vaes", ESN: true, Packets: 9, Bytes: 13000,
				Age: 90 * time.Second, SoftLifetime: 50 * time.Minute, HardLifetime: time.Hour,
				Wireshark: `"IPv4","198.51.100.2","192.0.2.1","0x0badf00d","AES-GCM with 16 octet ICV [RFC4106]","0xffeeddccbbaa99887766554433221100ffeeddcc","NULL",""`},
		},
		stats: []dataplane.Counter{
			{Scope: "switch", Name: "rx_drop_garbage", Value: 3},
			{Scope: "peer sakura", Name: "rx_drop_replay", Value: 1},
			{Scope: "reassembly", Name: "in_progress", Value: 2, Level: true},
			{Scope: "segment 129", Name: "flood", Value: 42},
		},
		sessions: make(chan *fakeSession, 16),
		reloads:  make(chan []dataplane.PeerConfig, 16),
	}
}

func (f *fakeSwitch) FDB() []dataplane.FDBEntry     { return append([]dataplane.FDBEntry(nil), f.fdb...) }
func (f *fakeSwitch) Peers() []dataplane.PeerStatus { return f.peers }
func (f *fakeSwitch) SAs() []dataplane.SAStatus     { return f.sas }
func (f *fakeSwitch) Stats() []dataplane.Counter    { return f.stats }

func (f *fakeSwitch) Capture(point dataplane.CapturePoint, vni encap.VNI) captureSource {
	s := &fakeSession{point: point, vni: vni, c: make(chan dataplane.CapturedPacket, 64), closed: make(chan struct{})}
	f.sessions <- s
	return s
}

func (f *fakeSwitch) Run(ctx context.Context) error {
	if f.runErr != nil {
		return f.runErr
	}
	f.running.Store(true)
	defer f.running.Store(false)
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeSwitch) Reload(peers []dataplane.PeerConfig) error {
	if f.reloadErr != nil {
		return f.reloadErr
	}
	f.reloads <- peers
	return nil
}

func (f *fakeSwitch) SetAuth(psk []byte, _ *ike.Credentials) {
	f.mu.Lock()
	f.psk = psk
	f.mu.Unlock()
}

// fakeSession is a capture session the test feeds.
type fakeSession struct {
	point   dataplane.CapturePoint
	vni     encap.VNI
	c       chan dataplane.CapturedPacket
	once    sync.Once
	closed  chan struct{}
	dropped atomic.Uint64
}

func (s *fakeSession) Packets() <-chan dataplane.CapturedPacket { return s.c }
func (s *fakeSession) Dropped() uint64                          { return s.dropped.Load() }
func (s *fakeSession) Close()                                   { s.once.Do(func() { close(s.closed) }) }

func (s *fakeSession) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-s.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("capture session was not closed")
	}
}

func nextSession(t *testing.T, f *fakeSwitch) *fakeSession {
	t.Helper()
	select {
	case s := <-f.sessions:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no capture session started")
		return nil
	}
}

func discardLogger() *slog.Logger { return slogTo(io.Discard) }

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// checkGoroutines fails the test if goroutines started during it are
// still running after its cleanups.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("got %d goroutines, want at most %d:\n%s", n, before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// startControl serves a control socket for sw in a fresh directory.
func startControl(t *testing.T, sw controlled, opts ...func(*controlServer)) (*controlServer, string) {
	t.Helper()
	path := t.TempDir() + "/run/vxswitch/test.sock"
	s, err := listenControl(path, sw, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, path
}

func TestMain(m *testing.M) {
	// os/signal starts one goroutine for good at the first Notify; start
	// it now so that checkGoroutines does not count it as a leak.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	signal.Stop(c)
	os.Exit(m.Run())
}
