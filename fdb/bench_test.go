package fdb

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/encap"
)

var benchSizes = []int{1_000, 100_000, 1_000_000}

type benchFixture struct {
	tbl  *Table
	clk  *clock.Manual
	macs []encap.MAC // in random order; macs[i] is on port i%8
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[int]*benchFixture{}
)

// fixture returns a table with n learned MACs in vniA, built once per size
// (a benchmark function runs several times as b.N grows).
func fixture(b *testing.B, n int) *benchFixture {
	b.Helper()
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if f := fixtures[n]; f != nil {
		return f
	}
	clk := clock.NewManual(t0)
	tbl := New(Config{Clock: clk, MaxPerSegment: -1, MaxTotal: -1})
	if err := tbl.AddSegment(vniA); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, uint64(n)))
	macs := make([]encap.MAC, 0, n)
	for len(macs) < n {
		v := r.Uint64()
		m := encap.MAC{byte(v>>40)&0xfe | 0x02, byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
		if tbl.Learn(vniA, m, Port(len(macs)%8)) == LearnNew {
			macs = append(macs, m)
		}
	}
	f := &benchFixture{tbl: tbl, clk: clk, macs: macs}
	fixtures[n] = f
	runtime.GC() // not during the measurement
	return f
}

func sizeName(n int) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("n=%dM", n/1_000_000)
	case n >= 1_000:
		return fmt.Sprintf("n=%dk", n/1_000)
	}
	return fmt.Sprintf("n=%d", n)
}

var sinkPort Port

// BenchmarkLookup looks up known MACs in random order, so at 1M entries
// (16 MiB of slots) nearly every lookup misses the CPU caches.
func BenchmarkLookup(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			f := fixture(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			c := startCPU()
			var sum Port
			j := 0
			for range b.N {
				p, ok := f.tbl.Lookup(vniA, f.macs[j])
				if !ok {
					b.Fatal("miss")
				}
				sum += p
				if j++; j == n {
					j = 0
				}
			}
			sinkPort = sum
			c.stop(b)
		})
	}
}

// BenchmarkLookupBatch looks up batches of 64 known MACs with LookupBatch;
// ns/op is per MAC, to compare with BenchmarkLookup.
func BenchmarkLookupBatch(b *testing.B) { benchLookupBatch(b, false) }

// BenchmarkLookupMiss looks up unknown MACs (the unknown-unicast case).
func BenchmarkLookupMiss(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			f := fixture(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			c := startCPU()
			for i := range b.N {
				m := f.macs[i%n]
				m[0] &^= 0x02 // fixture MACs all have this bit set: a miss
				if _, ok := f.tbl.Lookup(vniA, m); ok {
					b.Fatal("hit")
				}
			}
			c.stop(b)
		})
	}
}

// BenchmarkLookupBatchMiss looks up batches of 64 unknown MACs with
// LookupBatch (unknown unicast as the data plane meets it); ns/op is per
// MAC, to compare with BenchmarkLookupBatch.
func BenchmarkLookupBatchMiss(b *testing.B) { benchLookupBatch(b, true) }

// benchLookupBatch runs LookupBatch over the fixture's MACs, or (miss)
// over MACs that differ from them in a bit none of them has clear.
func benchLookupBatch(b *testing.B, miss bool) {
	const batch = 64
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			f := fixture(b, n)
			macs := f.macs
			if miss {
				macs = make([]encap.MAC, n)
				for i, m := range f.macs {
					m[0] &^= 0x02 // fixture MACs all have this bit set: a miss
					macs[i] = m
				}
			}
			var ports [batch]Port
			var found [batch]bool
			b.ReportAllocs()
			b.ResetTimer()
			c := startCPU()
			j := 0
			for i := 0; i < b.N; i += batch {
				if j+batch > n {
					j = 0
				}
				f.tbl.LookupBatch(vniA, macs[j:j+batch], ports[:], found[:])
				if found[batch-1] == miss {
					b.Fatalf("LookupBatch found %v, want %v", found[batch-1], !miss)
				}
				j += batch
			}
			c.stop(b)
		})
	}
}

// BenchmarkLookupParallel runs lookups on every core (-cpu sets how many);
// lookups share nothing writable, so they scale with the cores.
func BenchmarkLookupParallel(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			f := fixture(b, n)
			var seed atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				j := int(seed.Add(7919)) % n
				var sum Port
				for pb.Next() {
					p, _ := f.tbl.Lookup(vniA, f.macs[j])
					sum += p
					if j++; j == n {
						j = 0
					}
				}
				sinkPort += sum * 0 // keep sum live without a race
			})
		})
	}
}

// BenchmarkLearnRefresh learns known MACs on their own ports: the frame
// path's learning of every source MAC, with table time standing still (the
// common case between ticks: loads only, no writes).
func BenchmarkLearnRefresh(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			f := fixture(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			c := startCPU()
			j := 0
			for range b.N {
				if r := f.tbl.Learn(vniA, f.macs[j], Port(j%8)); r != LearnRefreshed {
					b.Fatal(r)
				}
				if j++; j == n {
					j = 0
				}
			}
			c.stop(b)
		})
	}
}

// BenchmarkLearnRefreshTicking is LearnRefresh with the table time moving
// every 128 frames (a Tick per batch), so refreshes write their timestamp.
func BenchmarkLearnRefreshTicking(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			f := fixture(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			c := startCPU()
			j := 0
			for i := range b.N {
				if i%128 == 0 {
					f.clk.Advance(time.Millisecond)
					f.tbl.tick()
				}
				if r := f.tbl.Learn(vniA, f.macs[j], Port(j%8)); r != LearnRefreshed {
					b.Fatal(r)
				}
				if j++; j == n {
					j = 0
				}
			}
			c.stop(b)
		})
	}
}

// BenchmarkLearnRefreshParallel refreshes from every core at once.
func BenchmarkLearnRefreshParallel(b *testing.B) {
	f := fixture(b, 100_000)
	n := len(f.macs)
	var seed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		j := int(seed.Add(7919)) % n
		for pb.Next() {
			f.tbl.Learn(vniA, f.macs[j], Port(j%8))
			if j++; j == n {
				j = 0
			}
		}
	})
}

// BenchmarkLearnNew learns b.N new MACs into one segment, growth included.
func BenchmarkLearnNew(b *testing.B) {
	tbl := New(Config{Clock: clock.NewManual(t0), MaxPerSegment: -1, MaxTotal: -1})
	if err := tbl.AddSegment(vniA); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	c := startCPU()
	for i := range b.N {
		tbl.Learn(vniA, mac(i), 1)
	}
	c.stop(b)
}

// BenchmarkSweep scans 1M entries of which none has aged: the cost the
// periodic sweep puts on a core.
func BenchmarkSweep(b *testing.B) {
	f := fixture(b, 1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	c := startCPU()
	for range b.N {
		if n := f.tbl.Sweep(); n != 0 {
			b.Fatal(n)
		}
	}
	c.stop(b)
}

func BenchmarkFloodList(b *testing.B) {
	f := fixture(b, 1_000)
	f.tbl.SetFloodList(vniA, []Port{1, 2, 3, 4, 5})
	b.ReportAllocs()
	b.ResetTimer()
	c := startCPU()
	n := 0
	for range b.N {
		n += len(f.tbl.FloodList(vniA))
	}
	sinkPort = Port(n)
	c.stop(b)
}
