package fdb

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/encap"
)

func collect(tbl *Table) []Entry {
	var out []Entry
	tbl.Entries(func(e Entry) bool { out = append(out, e); return true })
	slices.SortFunc(out, func(a, b Entry) int {
		if a.VNI != b.VNI {
			return int(a.VNI) - int(b.VNI)
		}
		return bytes.Compare(a.MAC[:], b.MAC[:])
	})
	return out
}

func TestMovesAndFlaps(t *testing.T) {
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logBuf, nil))
	tbl, clk := newTestTable(t, Config{FlapWindow: 10 * time.Second, FlapMoves: 3, Logger: logger})

	steps := []struct {
		port  Port
		after time.Duration
		want  LearnResult
	}{
		{1, 0, LearnNew},
		{2, time.Second, LearnMoved},    // migration: 1 move in window
		{1, time.Second, LearnMoved},    // 2
		{2, time.Second, LearnFlapping}, // 3 in 10s: flapping
		{1, time.Second, LearnFlapping}, // still
		{1, time.Second, LearnRefreshed},
		{2, 20 * time.Second, LearnMoved}, // a new window
	}
	for i, s := range steps {
		advance(tbl, clk, s.after)
		if got := tbl.Learn(vniA, mac(1), s.port); got != s.want {
			t.Errorf("step %d: Learn(port %d) = %v; want %v", i, s.port, got, s.want)
		}
		if i == 4 {
			e := collect(tbl)
			if len(e) != 1 || e[0].Moves != 4 || !e[0].Flapping {
				t.Errorf("while flapping: Entries = %+v; want Moves 4, Flapping", e)
			}
		}
	}
	if s := tbl.Stats(); s.Moves != 5 || s.Flaps != 1 {
		t.Errorf("Moves, Flaps = %d, %d; want 5, 1", s.Moves, s.Flaps)
	}
	e := collect(tbl)
	if len(e) != 1 || e[0].Moves != 5 || e[0].Flapping || e[0].Port != 2 {
		t.Errorf("after: Entries = %+v; want port 2, Moves 5, not flapping", e)
	}

	// One move line per second of table time and one flap warning.
	out := logBuf.String()
	if got := strings.Count(out, "MAC moved"); got != 5 {
		t.Errorf("move log lines = %d; want 5 (one per second)\n%s", got, out)
	}
	if got := strings.Count(out, "level=WARN"); got != 1 {
		t.Errorf("flap warnings = %d; want 1\n%s", got, out)
	}

	t.Run("rate-limited", func(t *testing.T) {
		logBuf.Reset()
		for i := range 100 {
			tbl.Learn(vniA, mac(2), Port(1+i%2))
		}
		if got := strings.Count(logBuf.String(), "MAC moved"); got != 0 {
			t.Errorf("move log lines within the second after the last = %d; want 0", got)
		}
		advance(tbl, clk, 2*time.Second)
		tbl.Learn(vniA, mac(2), 9)
		out := logBuf.String()
		if got := strings.Count(out, "MAC moved"); got != 1 || !strings.Contains(out, "suppressed=99") {
			t.Errorf("after a second: %d move lines; want 1 with suppressed=99\n%s", got, out)
		}
	})
}

func TestCapacity(t *testing.T) {
	tbl, clk := newTestTable(t, Config{MaxPerSegment: 3, MaxTotal: 5, MaxPerPort: -1})
	for i := range 3 {
		wantLearn(t, tbl, vniA, mac(i), 1, LearnNew)
	}
	wantLearn(t, tbl, vniA, mac(3), 1, LearnRefusedFull)
	wantLookup(t, tbl, vniA, mac(3), 0, false)
	wantLearn(t, tbl, vniA, mac(0), 1, LearnRefreshed) // known MACs still refresh
	wantLearn(t, tbl, vniA, mac(0), 2, LearnMoved)     // and move
	wantLearn(t, tbl, vniB, mac(10), 1, LearnNew)
	wantLearn(t, tbl, vniB, mac(11), 1, LearnNew)
	wantLearn(t, tbl, vniB, mac(12), 1, LearnRefusedFull) // the total is full
	if s := tbl.Stats(); s.RefusedFull != 2 || s.Learned != 5 {
		t.Errorf("RefusedFull, Learned = %d, %d; want 2, 5", s.RefusedFull, s.Learned)
	}
	// Aging makes room again.
	advance(tbl, clk, 200*time.Second)
	tbl.Learn(vniA, mac(1), 1)
	advance(tbl, clk, 200*time.Second)
	if got := tbl.Sweep(); got != 4 {
		t.Errorf("Sweep() = %d; want 4", got)
	}
	wantLearn(t, tbl, vniA, mac(3), 1, LearnNew)
	wantLearn(t, tbl, vniB, mac(12), 1, LearnNew)
}

func TestUnlimitedAndGrowth(t *testing.T) {
	const n = 20000
	tbl, clk := newTestTable(t, Config{MaxPerSegment: -1, MaxTotal: -1})
	for i := range n {
		wantLearn(t, tbl, vniA, mac(i), Port(i%7), LearnNew)
	}
	for i := range n {
		wantLookup(t, tbl, vniA, mac(i), Port(i%7), true)
	}
	s := tbl.Stats()
	if s.Learned != n || s.Rebuilds == 0 {
		t.Fatalf("Learned, Rebuilds = %d, %d; want %d, > 0", s.Learned, s.Rebuilds, n)
	}
	if got := len(tbl.segment(vniA).tab.Load().slots); got > 4*n {
		t.Errorf("slots = %d; want <= %d", got, 4*n)
	}
	// Flushing most entries shrinks the table; the rest stay reachable.
	removed := 0
	for p := Port(1); p < 7; p++ {
		removed += tbl.FlushPort(p)
	}
	if want := n - (n+6)/7; removed != want {
		t.Errorf("flushed %d; want %d", removed, want)
	}
	if got := len(tbl.segment(vniA).tab.Load().slots); got > 4*((n+6)/7) {
		t.Errorf("slots after flush = %d; want <= %d", got, 4*((n+6)/7))
	}
	for i := 0; i < n; i += 7 {
		wantLookup(t, tbl, vniA, mac(i), 0, true)
	}
	advance(tbl, clk, time.Hour)
	if got := tbl.Sweep(); got != (n+6)/7 {
		t.Errorf("Sweep() = %d; want %d", got, (n+6)/7)
	}
	if got := len(tbl.segment(vniA).tab.Load().slots); got != minSlots {
		t.Errorf("slots after sweep = %d; want %d", got, minSlots)
	}
}

func TestTombstonesDoNotFillTheTable(t *testing.T) {
	// Churn through many MACs while few are live: tombstones must be
	// purged, or probes would never end at an empty slot.
	tbl, clk := newTestTable(t, Config{AgeTime: time.Second})
	for i := range 5000 {
		wantLearn(t, tbl, vniA, mac(i), 1, LearnNew)
		if i%10 == 9 {
			advance(tbl, clk, 2*time.Second)
			tbl.Sweep()
		}
	}
	wantLookup(t, tbl, vniA, mac(123456), 0, false) // a miss terminates
	if got := len(tbl.segment(vniA).tab.Load().slots); got != minSlots {
		t.Errorf("slots = %d; want %d", got, minSlots)
	}
}

func TestFlushPort(t *testing.T) {
	tbl, _ := newTestTable(t, Config{})
	tbl.Learn(vniA, mac(1), 1)
	tbl.Learn(vniA, mac(2), 1)
	tbl.Learn(vniA, mac(3), 2)
	tbl.Learn(vniA, mac(4), LocalPort)
	tbl.Learn(vniB, mac(1), 1)
	tbl.Learn(vniA, mac(5), 2)
	tbl.Learn(vniA, mac(5), 1) // moved to 1
	if err := tbl.AddStatic(vniA, mac(6), 1); err != nil {
		t.Fatal(err)
	}
	if got := tbl.FlushPort(1); got != 4 {
		t.Errorf("FlushPort(1) = %d; want 4", got)
	}
	for _, tt := range []struct {
		vni  encap.VNI
		mac  encap.MAC
		port Port
		ok   bool
	}{
		{vniA, mac(1), 0, false},
		{vniA, mac(2), 0, false},
		{vniB, mac(1), 0, false},
		{vniA, mac(5), 0, false},
		{vniA, mac(3), 2, true},
		{vniA, mac(4), LocalPort, true},
		{vniA, mac(6), 1, true}, // static stays
	} {
		wantLookup(t, tbl, tt.vni, tt.mac, tt.port, tt.ok)
	}
	s := tbl.Stats()
	if s.Flushed != 4 || s.Learned != 2 || s.Static != 1 {
		t.Errorf("Flushed, Learned, Static = %d, %d, %d; want 4, 2, 1", s.Flushed, s.Learned, s.Static)
	}
	// The flushed MAC's move history went with it.
	wantLearn(t, tbl, vniA, mac(5), 3, LearnNew)
	for _, e := range collect(tbl) {
		if e.MAC == mac(5) && e.Moves != 0 {
			t.Errorf("entry %+v; want 0 moves", e)
		}
	}
	if got := tbl.FlushPort(1); got != 0 {
		t.Errorf("second FlushPort(1) = %d; want 0", got)
	}
}

// TestPerPortLimit: one port fills its share of a segment and no more;
// other ports still learn; entries that age out, move away or are flushed
// give the port its room back.
func TestPerPortLimit(t *testing.T) {
	tbl, clk := newTestTable(t, Config{MaxPerSegment: 100, MaxPerPort: 3})
	for i := range 3 {
		wantLearn(t, tbl, vniA, mac(i), 1, LearnNew)
	}
	wantLearn(t, tbl, vniA, mac(3), 1, LearnRefusedPort)
	wantLearn(t, tbl, vniA, mac(3), 2, LearnNew)  // another port has room
	wantLearn(t, tbl, vniB, mac(50), 1, LearnNew) // and so has the port in another segment
	if s := tbl.Stats(); s.RefusedPort != 1 {
		t.Errorf("RefusedPort = %d, want 1", s.RefusedPort)
	}
	wantLearn(t, tbl, vniA, mac(0), 2, LearnMoved) // mac(0) leaves port 1
	wantLearn(t, tbl, vniA, mac(4), 1, LearnNew)
	wantLearn(t, tbl, vniA, mac(5), 1, LearnRefusedPort)
	if n := tbl.FlushPort(1); n != 4 { // 3 in vniA, 1 in vniB
		t.Errorf("FlushPort = %d, want 4", n)
	}
	for i := 5; i < 8; i++ {
		wantLearn(t, tbl, vniA, mac(i), 1, LearnNew)
	}
	advance(tbl, clk, 400*time.Second)
	tbl.Sweep()
	for i := 10; i < 13; i++ {
		wantLearn(t, tbl, vniA, mac(i), 1, LearnNew)
	}
	if d := New(Config{}); d.maxPort != DefaultMaxPerSegment/4 {
		t.Errorf("default per-port limit %d, want %d", d.maxPort, DefaultMaxPerSegment/4)
	}
}
