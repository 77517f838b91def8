package fdb

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/encap"
)

const (
	vniA encap.VNI = 129
	vniB encap.VNI = 130
)

var t0 = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

// mac returns a distinct unicast, locally administered MAC for i.
func mac(i int) encap.MAC {
	return encap.MAC{0x02, 0x00, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

// newTestTable returns a table on a manual clock with segments vniA and vniB.
func newTestTable(t testing.TB, cfg Config) (*Table, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(t0)
	cfg.Clock = clk
	tbl := New(cfg)
	for _, v := range []encap.VNI{vniA, vniB} {
		if err := tbl.AddSegment(v); err != nil {
			t.Fatalf("AddSegment(%d): %v", v, err)
		}
	}
	return tbl, clk
}

// advance moves the clock and the table time.
func advance(tbl *Table, clk *clock.Manual, d time.Duration) {
	clk.Advance(d)
	tbl.tick()
}

func wantLookup(t *testing.T, tbl *Table, vni encap.VNI, m encap.MAC, wantPort Port, wantOK bool) {
	t.Helper()
	p, ok := tbl.Lookup(vni, m)
	if ok != wantOK || (ok && p != wantPort) {
		t.Errorf("Lookup(%d, %v) = %d, %v; want %d, %v", vni, m, p, ok, wantPort, wantOK)
	}
}

func wantLearn(t *testing.T, tbl *Table, vni encap.VNI, m encap.MAC, p Port, want LearnResult) {
	t.Helper()
	if got := tbl.Learn(vni, m, p); got != want {
		t.Errorf("Learn(%d, %v, %d) = %v; want %v", vni, m, p, got, want)
	}
}

func TestLearn(t *testing.T) {
	type step struct {
		vni  encap.VNI
		mac  encap.MAC
		port Port
		want LearnResult
	}
	tests := []struct {
		name     string
		static   map[encap.MAC]Port // on vniA
		steps    []step
		lookMAC  encap.MAC
		lookPort Port
		lookOK   bool
		stats    Stats // only the non-zero fields checked below
	}{
		{
			name:    "new MAC is learned",
			steps:   []step{{vniA, mac(1), 3, LearnNew}},
			lookMAC: mac(1), lookPort: 3, lookOK: true,
			stats: Stats{New: 1, Learned: 1},
		},
		{
			name:    "learned from the TAP",
			steps:   []step{{vniA, mac(1), LocalPort, LearnNew}},
			lookMAC: mac(1), lookPort: LocalPort, lookOK: true,
			stats: Stats{New: 1, Learned: 1},
		},
		{
			name:    "same port again refreshes",
			steps:   []step{{vniA, mac(1), 3, LearnNew}, {vniA, mac(1), 3, LearnRefreshed}},
			lookMAC: mac(1), lookPort: 3, lookOK: true,
			stats: Stats{New: 1, Learned: 1},
		},
		{
			name:    "move to another port at once",
			steps:   []step{{vniA, mac(1), 3, LearnNew}, {vniA, mac(1), 4, LearnMoved}},
			lookMAC: mac(1), lookPort: 4, lookOK: true,
			stats: Stats{New: 1, Learned: 1, Moves: 1},
		},
		{
			name:    "segments are separate",
			steps:   []step{{vniA, mac(1), 3, LearnNew}, {vniB, mac(1), 4, LearnNew}},
			lookMAC: mac(1), lookPort: 3, lookOK: true,
			stats: Stats{New: 2, Learned: 2},
		},
		{
			name:    "broadcast source ignored",
			steps:   []step{{vniA, encap.BroadcastMAC, 3, LearnIgnored}},
			lookMAC: encap.BroadcastMAC,
			stats:   Stats{Ignored: 1},
		},
		{
			name:    "multicast source ignored",
			steps:   []step{{vniA, encap.MAC{0x01, 0x00, 0x5e, 0, 0, 1}, 3, LearnIgnored}},
			lookMAC: encap.MAC{0x01, 0x00, 0x5e, 0, 0, 1},
			stats:   Stats{Ignored: 1},
		},
		{
			name:    "zero source ignored",
			steps:   []step{{vniA, encap.MAC{}, 3, LearnIgnored}},
			lookMAC: encap.MAC{},
			stats:   Stats{Ignored: 1},
		},
		{
			name:    "unknown segment",
			steps:   []step{{7, mac(1), 3, LearnUnknownSegment}},
			lookMAC: mac(1),
			stats:   Stats{UnknownSegment: 1},
		},
		{
			name:    "port above MaxPort",
			steps:   []step{{vniA, mac(1), MaxPort + 1, LearnBadPort}},
			lookMAC: mac(1),
			stats:   Stats{BadPort: 1},
		},
		{
			name:    "static on the same port",
			static:  map[encap.MAC]Port{mac(1): 3},
			steps:   []step{{vniA, mac(1), 3, LearnStatic}},
			lookMAC: mac(1), lookPort: 3, lookOK: true,
			stats: Stats{Static: 1},
		},
		{
			name:    "static is never moved by learning",
			static:  map[encap.MAC]Port{mac(1): 3},
			steps:   []step{{vniA, mac(1), 4, LearnStaticConflict}, {vniA, mac(1), LocalPort, LearnStaticConflict}},
			lookMAC: mac(1), lookPort: 3, lookOK: true,
			stats: Stats{Static: 1, StaticConflicts: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, _ := newTestTable(t, Config{})
			for m, p := range tt.static {
				if err := tbl.AddStatic(vniA, m, p); err != nil {
					t.Fatalf("AddStatic: %v", err)
				}
			}
			for _, s := range tt.steps {
				wantLearn(t, tbl, s.vni, s.mac, s.port, s.want)
			}
			wantLookup(t, tbl, vniA, tt.lookMAC, tt.lookPort, tt.lookOK)
			got := tbl.Stats()
			got.Segments, got.Rebuilds = 0, 0
			if got != tt.stats {
				t.Errorf("Stats() = %+v; want %+v", got, tt.stats)
			}
		})
	}
}

func TestLearnResultString(t *testing.T) {
	for _, tt := range []struct {
		r    LearnResult
		want string
	}{
		{LearnRefreshed, "refreshed"},
		{LearnStaticConflict, "static-conflict"},
		{LearnBadPort, "bad-port"},
		{LearnResult(200), "LearnResult(200)"},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("LearnResult(%d).String() = %q; want %q", tt.r, got, tt.want)
		}
	}
}

func TestAging(t *testing.T) {
	const age = 300 * time.Second
	tests := []struct {
		name  string
		run   func(t *testing.T, tbl *Table, clk *clock.Manual)
		port  Port
		hit   bool
		held  int // learned entries still held (not yet reclaimed)
		aged  uint64
		swept int // returned by a Sweep at the end, before which hit/held are checked
	}{
		{
			name: "live just under AgeTime",
			run: func(t *testing.T, tbl *Table, clk *clock.Manual) {
				tbl.Learn(vniA, mac(1), 2)
				advance(tbl, clk, age-time.Millisecond)
			},
			port: 2, hit: true, held: 1,
		},
		{
			name: "aged entry is a miss before the sweep reclaims it",
			run: func(t *testing.T, tbl *Table, clk *clock.Manual) {
				tbl.Learn(vniA, mac(1), 2)
				advance(tbl, clk, age+time.Millisecond)
			},
			hit: false, held: 1, swept: 1, aged: 1,
		},
		{
			name: "table time moves only on Tick",
			run: func(t *testing.T, tbl *Table, clk *clock.Manual) {
				tbl.Learn(vniA, mac(1), 2)
				clk.Advance(age + time.Second)
			},
			port: 2, hit: true, held: 1, swept: 1, aged: 1,
		},
		{
			name: "refresh restarts the age",
			run: func(t *testing.T, tbl *Table, clk *clock.Manual) {
				tbl.Learn(vniA, mac(1), 2)
				advance(tbl, clk, 200*time.Second)
				wantLearn(t, tbl, vniA, mac(1), 2, LearnRefreshed)
				advance(tbl, clk, 200*time.Second)
			},
			port: 2, hit: true, held: 1,
		},
		{
			name: "refresh without a tick in between still counts",
			run: func(t *testing.T, tbl *Table, clk *clock.Manual) {
				tbl.Learn(vniA, mac(1), 2)
				advance(tbl, clk, 200*time.Second)
				wantLearn(t, tbl, vniA, mac(1), 2, LearnRefreshed)
				wantLearn(t, tbl, vniA, mac(1), 2, LearnRefreshed)
				advance(tbl, clk, 299*time.Second)
			},
			port: 2, hit: true, held: 1,
		},
		{
			name: "aged entry relearned on another port is new, not a move",
			run: func(t *testing.T, tbl *Table, clk *clock.Manual) {
				tbl.Learn(vniA, mac(1), 2)
				advance(tbl, clk, age+time.Second)
				wantLearn(t, tbl, vniA, mac(1), 5, LearnNew)
				if s := tbl.Stats(); s.Moves != 0 {
					t.Errorf("Moves = %d; want 0", s.Moves)
				}
			},
			port: 5, hit: true, held: 1,
		},
		{
			name: "aged entry relearned on the same port",
			run: func(t *testing.T, tbl *Table, clk *clock.Manual) {
				tbl.Learn(vniA, mac(1), 2)
				advance(tbl, clk, age+time.Second)
				wantLearn(t, tbl, vniA, mac(1), 2, LearnNew)
			},
			port: 2, hit: true, held: 1,
		},
		{
			name: "static never ages",
			run: func(t *testing.T, tbl *Table, clk *clock.Manual) {
				if err := tbl.AddStatic(vniA, mac(1), 2); err != nil {
					t.Fatal(err)
				}
				advance(tbl, clk, 1000*age)
			},
			port: 2, hit: true, held: 0,
		},
		{
			name: "sweep reclaims only the aged",
			run: func(t *testing.T, tbl *Table, clk *clock.Manual) {
				tbl.Learn(vniA, mac(2), 2)
				advance(tbl, clk, 200*time.Second)
				tbl.Learn(vniA, mac(1), 2)
				tbl.Learn(vniB, mac(3), 2)
				advance(tbl, clk, 200*time.Second)
			},
			port: 2, hit: true, held: 3, swept: 1, aged: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, clk := newTestTable(t, Config{AgeTime: age})
			tt.run(t, tbl, clk)
			wantLookup(t, tbl, vniA, mac(1), tt.port, tt.hit)
			if got := tbl.Stats().Learned; got != tt.held {
				t.Errorf("before sweep: Stats().Learned = %d; want %d", got, tt.held)
			}
			if got := tbl.Sweep(); got != tt.swept {
				t.Errorf("Sweep() = %d; want %d", got, tt.swept)
			}
			s := tbl.Stats()
			if s.AgedOut != tt.aged || s.Learned != tt.held-tt.swept {
				t.Errorf("after sweep: AgedOut, Learned = %d, %d; want %d, %d", s.AgedOut, s.Learned, tt.aged, tt.held-tt.swept)
			}
		})
	}
}

func TestStatic(t *testing.T) {
	t.Run("errors", func(t *testing.T) {
		tbl, _ := newTestTable(t, Config{})
		for _, tt := range []struct {
			name string
			vni  encap.VNI
			mac  encap.MAC
			port Port
			want error
		}{
			{"zero MAC", vniA, encap.MAC{}, 1, ErrInvalidMAC},
			{"broadcast", vniA, encap.BroadcastMAC, 1, ErrInvalidMAC},
			{"multicast", vniA, encap.MAC{0x33, 0x33, 0, 0, 0, 1}, 1, ErrInvalidMAC},
			{"port range", vniA, mac(1), MaxPort + 1, ErrPortRange},
			{"unknown segment", 9, mac(1), 1, ErrUnknownSegment},
		} {
			if err := tbl.AddStatic(tt.vni, tt.mac, tt.port); !errors.Is(err, tt.want) {
				t.Errorf("%s: AddStatic = %v; want %v", tt.name, err, tt.want)
			}
		}
		if err := tbl.RemoveStatic(vniA, mac(1)); !errors.Is(err, ErrNotFound) {
			t.Errorf("RemoveStatic(absent) = %v; want %v", err, ErrNotFound)
		}
		tbl.Learn(vniA, mac(1), 1)
		if err := tbl.RemoveStatic(vniA, mac(1)); !errors.Is(err, ErrNotFound) {
			t.Errorf("RemoveStatic(learned) = %v; want %v", err, ErrNotFound)
		}
		if err := tbl.RemoveStatic(9, mac(1)); !errors.Is(err, ErrUnknownSegment) {
			t.Errorf("RemoveStatic(unknown segment) = %v; want %v", err, ErrUnknownSegment)
		}
	})
	t.Run("replaces learned entry and history", func(t *testing.T) {
		tbl, _ := newTestTable(t, Config{})
		tbl.Learn(vniA, mac(1), 1)
		tbl.Learn(vniA, mac(1), 2) // a move
		if err := tbl.AddStatic(vniA, mac(1), 7); err != nil {
			t.Fatal(err)
		}
		wantLookup(t, tbl, vniA, mac(1), 7, true)
		if s := tbl.Stats(); s.Learned != 0 || s.Static != 1 {
			t.Errorf("Learned, Static = %d, %d; want 0, 1", s.Learned, s.Static)
		}
		e := collect(tbl)
		want := []Entry{{VNI: vniA, MAC: mac(1), Port: 7, Static: true}}
		if !slices.Equal(e, want) {
			t.Errorf("Entries = %+v; want %+v", e, want)
		}
	})
	t.Run("port change and removal", func(t *testing.T) {
		tbl, _ := newTestTable(t, Config{})
		if err := tbl.AddStatic(vniA, mac(1), 7); err != nil {
			t.Fatal(err)
		}
		if err := tbl.AddStatic(vniA, mac(1), 8); err != nil {
			t.Fatal(err)
		}
		wantLookup(t, tbl, vniA, mac(1), 8, true)
		if s := tbl.Stats(); s.Static != 1 {
			t.Errorf("Static = %d; want 1", s.Static)
		}
		if err := tbl.RemoveStatic(vniA, mac(1)); err != nil {
			t.Fatal(err)
		}
		wantLookup(t, tbl, vniA, mac(1), 0, false)
		wantLearn(t, tbl, vniA, mac(1), 2, LearnNew)
		if s := tbl.Stats(); s.Static != 0 || s.Learned != 1 {
			t.Errorf("Static, Learned = %d, %d; want 0, 1", s.Static, s.Learned)
		}
	})
	t.Run("not counted against capacity", func(t *testing.T) {
		tbl, _ := newTestTable(t, Config{MaxPerSegment: 2, MaxTotal: 2, MaxPerPort: -1})
		for i := range 10 {
			if err := tbl.AddStatic(vniA, mac(100+i), 1); err != nil {
				t.Fatal(err)
			}
		}
		wantLearn(t, tbl, vniA, mac(1), 1, LearnNew)
		wantLearn(t, tbl, vniA, mac(2), 1, LearnNew)
		wantLearn(t, tbl, vniA, mac(3), 1, LearnRefusedFull)
	})
}

func TestSegments(t *testing.T) {
	tbl, _ := newTestTable(t, Config{})
	if err := tbl.AddSegment(vniA); !errors.Is(err, ErrSegmentExists) {
		t.Errorf("AddSegment(existing) = %v; want %v", err, ErrSegmentExists)
	}
	if err := tbl.AddSegment(encap.MaxVNI + 1); !errors.Is(err, ErrInvalidVNI) {
		t.Errorf("AddSegment(2^24) = %v; want %v", err, ErrInvalidVNI)
	}
	tbl.Learn(vniA, mac(1), 1)
	tbl.Learn(vniA, mac(2), 1)
	tbl.Learn(vniB, mac(1), 1)
	if err := tbl.AddStatic(vniA, mac(3), 1); err != nil {
		t.Fatal(err)
	}
	tbl.SetFloodList(vniA, []Port{1, 2})
	tbl.RemoveSegment(vniA)
	tbl.RemoveSegment(vniA) // twice is fine
	wantLookup(t, tbl, vniA, mac(1), 0, false)
	wantLookup(t, tbl, vniB, mac(1), 1, true)
	wantLearn(t, tbl, vniA, mac(1), 1, LearnUnknownSegment)
	if got := tbl.FloodList(vniA); got != nil {
		t.Errorf("FloodList(removed) = %v; want nil", got)
	}
	s := tbl.Stats()
	if s.Segments != 1 || s.Learned != 1 || s.Static != 0 {
		t.Errorf("Segments, Learned, Static = %d, %d, %d; want 1, 1, 0", s.Segments, s.Learned, s.Static)
	}
	if err := tbl.AddSegment(vniA); err != nil {
		t.Fatal(err)
	}
	wantLookup(t, tbl, vniA, mac(1), 0, false)
	wantLearn(t, tbl, vniA, mac(1), 2, LearnNew)

	// Many segments: the index keeps finding them all.
	for v := encap.VNI(1000); v < 1100; v++ {
		if err := tbl.AddSegment(v); err != nil {
			t.Fatal(err)
		}
		tbl.Learn(v, mac(int(v)), Port(v%5))
	}
	for v := encap.VNI(1000); v < 1100; v++ {
		wantLookup(t, tbl, v, mac(int(v)), Port(v%5), true)
		wantLookup(t, tbl, v, mac(int(v)+1), 0, false)
	}
}

func TestFloodList(t *testing.T) {
	tbl, _ := newTestTable(t, Config{})
	if got := tbl.FloodList(vniA); got != nil {
		t.Errorf("FloodList before set = %v; want nil", got)
	}
	in := []Port{3, 1, LocalPort, 3, 2}
	tbl.SetFloodList(vniA, in)
	in[0] = 99
	want := []Port{3, 1, 2}
	if got := tbl.FloodList(vniA); !slices.Equal(got, want) {
		t.Errorf("FloodList = %v; want %v", got, want)
	}
	if got := tbl.FloodList(vniB); got != nil {
		t.Errorf("FloodList(other segment) = %v; want nil", got)
	}
	if got := tbl.FloodList(42); got != nil {
		t.Errorf("FloodList(unknown) = %v; want nil", got)
	}
	tbl.SetFloodList(42, want) // ignored
	old := tbl.FloodList(vniA)
	tbl.SetFloodList(vniA, []Port{4})
	if !slices.Equal(old, want) {
		t.Errorf("old list changed to %v; want %v", old, want)
	}
	if got := tbl.FloodList(vniA); !slices.Equal(got, []Port{4}) {
		t.Errorf("FloodList = %v; want [4]", got)
	}
}

func TestEntries(t *testing.T) {
	tbl, clk := newTestTable(t, Config{})
	tbl.Learn(vniB, mac(1), 1)
	advance(tbl, clk, 5*time.Second)
	tbl.Learn(vniA, mac(2), 2)
	tbl.Learn(vniA, mac(2), 3)
	if err := tbl.AddStatic(vniA, mac(3), 4); err != nil {
		t.Fatal(err)
	}
	advance(tbl, clk, 2*time.Second)
	want := []Entry{
		{VNI: vniA, MAC: mac(2), Port: 3, Age: 2 * time.Second, Moves: 1},
		{VNI: vniA, MAC: mac(3), Port: 4, Static: true},
		{VNI: vniB, MAC: mac(1), Port: 1, Age: 7 * time.Second},
	}
	if got := collect(tbl); !slices.Equal(got, want) {
		t.Errorf("Entries =\n%+v\nwant\n%+v", got, want)
	}
	calls := 0
	tbl.Entries(func(e Entry) bool {
		calls++
		tbl.Learn(e.VNI, e.MAC, 9) // calling into the table must not deadlock
		return false
	})
	if calls != 1 {
		t.Errorf("Entries called fn %d times after it returned false; want 1", calls)
	}
}

func TestNoAllocs(t *testing.T) {
	tbl, clk := newTestTable(t, Config{})
	for i := range 1000 {
		tbl.Learn(vniA, mac(i), Port(i%4))
	}
	tbl.SetFloodList(vniA, []Port{1, 2, 3})
	var sink Port
	tests := []struct {
		name string
		fn   func()
	}{
		{"Lookup hit", func() { p, _ := tbl.Lookup(vniA, mac(5)); sink += p }},
		{"Lookup miss", func() { p, _ := tbl.Lookup(vniA, mac(5000)); sink += p }},
		{"Lookup unknown segment", func() { p, _ := tbl.Lookup(7, mac(5)); sink += p }},
		{"Learn refresh", func() { tbl.Learn(vniA, mac(5), 1) }},
		{"Learn refresh after tick", func() { clk.Advance(time.Millisecond); tbl.tick(); tbl.Learn(vniA, mac(5), 1) }},
		{"Learn ignored", func() { tbl.Learn(vniA, encap.BroadcastMAC, 1) }},
		{"Learn static conflict", func() { tbl.Learn(vniA, mac(5000), 2) }},
		{"FloodList", func() { sink += Port(len(tbl.FloodList(vniA))) }},
		{"Stats", func() { sink += Port(tbl.Stats().Learned) }},
	}
	if err := tbl.AddStatic(vniA, mac(5000), 1); err != nil {
		t.Fatal(err)
	}
	if p, ok := tbl.Lookup(vniA, mac(5000)); !ok || p != 1 {
		t.Fatal("static entry missing")
	}
	tests[1].fn = func() { p, _ := tbl.Lookup(vniA, mac(6000)); sink += p }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, tt.fn); got != 0 {
				t.Errorf("allocs = %v; want 0", got)
			}
		})
	}
	_ = sink
}

func TestLookupBatch(t *testing.T) {
	tbl, clk := newTestTable(t, Config{AgeTime: 100 * time.Second})
	for i := range 100 {
		tbl.Learn(vniA, mac(i), Port(i%5))
	}
	advance(tbl, clk, 60*time.Second)
	for i := range 50 { // the other 50 age out
		tbl.Learn(vniA, mac(i), Port(i%5))
	}
	if err := tbl.AddStatic(vniA, mac(99), 7); err != nil {
		t.Fatal(err)
	}
	advance(tbl, clk, 60*time.Second)
	var macs []encap.MAC
	for i := range 120 { // 70 more than a touch group; hits, aged, unknown
		macs = append(macs, mac(i))
	}
	macs = append(macs, encap.BroadcastMAC, encap.MAC{})
	for _, vni := range []encap.VNI{vniA, vniB, 7} {
		ports := make([]Port, len(macs))
		found := make([]bool, len(macs))
		for i := range found {
			found[i], ports[i] = true, 99 // must be overwritten
		}
		tbl.LookupBatch(vni, macs, ports, found)
		for i, m := range macs {
			p, ok := tbl.Lookup(vni, m)
			if found[i] != ok || (ok && ports[i] != p) {
				t.Errorf("vni %d mac %v: LookupBatch = %d, %v; Lookup = %d, %v", vni, m, ports[i], found[i], p, ok)
			}
		}
	}
	if got := testing.AllocsPerRun(100, func() {
		var ports [122]Port
		var found [122]bool
		tbl.LookupBatch(vniA, macs, ports[:], found[:])
	}); got != 0 {
		t.Errorf("LookupBatch allocs = %v; want 0", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("LookupBatch with short outputs did not panic")
		}
	}()
	tbl.LookupBatch(vniA, macs, make([]Port, 1, len(macs)), make([]bool, len(macs)))
}

func TestConfigDefaults(t *testing.T) {
	tbl := New(Config{})
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"age", time.Duration(tbl.age), DefaultAgeTime},
		{"max per segment", tbl.maxPer, DefaultMaxPerSegment},
		{"max total", tbl.maxTotal, DefaultMaxTotal},
		{"flap window", time.Duration(tbl.flapWindow), DefaultFlapWindow},
		{"flap moves", tbl.flapMoves, DefaultFlapMoves},
		{"clock", tbl.clock, clock.Clock(clock.System{})},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v; want %v", tt.name, tt.got, tt.want)
		}
	}
	if err := tbl.AddSegment(1); err != nil {
		t.Fatal(err)
	}
	wantLearn(t, tbl, 1, mac(1), 1, LearnNew) // real clock, discard logger
	wantLookup(t, tbl, 1, mac(1), 1, true)
}

func TestTableTimeIsMonotonic(t *testing.T) {
	tbl, clk := newTestTable(t, Config{AgeTime: 10 * time.Second})
	tbl.Learn(vniA, mac(1), 1)
	advance(tbl, clk, 20*time.Second)
	clk.Set(t0) // the clock steps back; table time does not
	tbl.tick()
	wantLookup(t, tbl, vniA, mac(1), 0, false)
	if got := tbl.Sweep(); got != 1 {
		t.Errorf("Sweep() = %d; want 1", got)
	}
}
