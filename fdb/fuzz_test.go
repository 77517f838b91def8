package fdb

import (
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/encap"
)

// modelEntry is the reference model's view of one entry.
type modelEntry struct {
	port   Port
	seen   time.Duration // table time of the last learn; unused when static
	static bool
	moves  uint64
}

type modelKey struct {
	vni encap.VNI
	mac encap.MAC
}

// FuzzModel drives the table and a plain map with the same operations, one
// per input byte pair, and checks that they agree. The byte stream is a
// program: op = b0 % 8, argument = b1. MACs come from a space of 16 and
// ports from 4 so that moves, statics and flushes collide often; aging runs
// on a manual clock.
func FuzzModel(f *testing.F) {
	f.Add([]byte{0, 0x11, 0, 0x12, 1, 0x11})                                 // learn, move, lookup
	f.Add([]byte{0, 0x05, 2, 200, 1, 0x05, 3, 0, 0, 0x15})                   // learn, age out, lookup, sweep, relearn
	f.Add([]byte{4, 0x23, 0, 0x21, 1, 0x23, 5, 0x03, 0, 0x21})               // static, conflict, remove static, learn
	f.Add([]byte{0, 0x10, 0, 0x21, 0, 0x32, 6, 0x01, 1, 0x10, 1, 0x21})      // learn on ports, flush one
	f.Add([]byte{0, 0x90, 7, 0x00, 1, 0x90, 7, 0x01, 0, 0x90, 2, 100, 3, 0}) // segment removed and re-added
	// Found by this fuzzer: Sweep forgot the move history of the wrong MAC,
	// so a MAC learned again after aging out kept its old moves.
	f.Add([]byte{7, 0x30, 7, 0x52, 0, 0x16, 0, 0x26, 2, 0xd3, 3, 0xdd, 4, 0x56})
	f.Fuzz(runModel)
}

func runModel(t *testing.T, prog []byte) {
	{
		const age = 100 * time.Second
		tbl, clk := newTestTable(t, Config{AgeTime: age, MaxPerSegment: -1, MaxTotal: -1, FlapMoves: 1 << 30})
		now := time.Duration(0)
		model := map[modelKey]*modelEntry{}
		segs := map[encap.VNI]bool{vniA: true, vniB: true}
		live := func(e *modelEntry) bool { return e.static || e.seen >= now-age }
		for pc := 0; pc+1 < len(prog); pc += 2 {
			op, arg := prog[pc]%8, prog[pc+1]
			vni := []encap.VNI{vniA, vniB}[arg>>7]
			m := mac(int(arg & 0x0f))
			port := Port(arg>>4) & 3
			k := modelKey{vni, m}
			e := model[k]
			switch op {
			case 0: // learn
				got := tbl.Learn(vni, m, port)
				var want LearnResult
				switch {
				case !segs[vni]:
					want = LearnUnknownSegment
				case e == nil || !live(e):
					want = LearnNew
					model[k] = &modelEntry{port: port, seen: now}
				case e.static && e.port == port:
					want = LearnStatic
				case e.static:
					want = LearnStaticConflict
				case e.port == port:
					want = LearnRefreshed
					e.seen = now
				default:
					want = LearnMoved
					e.port, e.seen = port, now
					e.moves++
				}
				if got != want {
					t.Fatalf("pc %d: Learn(%d, %v, %d) = %v; want %v", pc, vni, m, port, got, want)
				}
			case 1: // lookup
				p, ok := tbl.Lookup(vni, m)
				wantOK := e != nil && live(e)
				if ok != wantOK || (ok && p != e.port) {
					t.Fatalf("pc %d: Lookup(%d, %v) = %d, %v; want %+v", pc, vni, m, p, ok, e)
				}
				var ports [1]Port
				var found [1]bool
				tbl.LookupBatch(vni, []encap.MAC{m}, ports[:], found[:])
				if found[0] != ok || ports[0] != p {
					t.Fatalf("pc %d: LookupBatch(%d, %v) = %d, %v; Lookup %d, %v", pc, vni, m, ports[0], found[0], p, ok)
				}
			case 2: // time passes
				d := time.Duration(arg) * time.Second
				now += d
				advance(tbl, clk, d)
			case 3: // sweep
				aged := 0
				for mk, me := range model {
					if !live(me) {
						delete(model, mk)
						aged++
					}
				}
				// A rebuild may already have dropped some.
				if got := tbl.Sweep(); got > aged {
					t.Fatalf("pc %d: Sweep() = %d; want <= %d", pc, got, aged)
				}
			case 4: // static
				err := tbl.AddStatic(vni, m, port)
				if !segs[vni] {
					if err == nil {
						t.Fatalf("pc %d: AddStatic on removed segment succeeded", pc)
					}
					break
				}
				if err != nil {
					t.Fatalf("pc %d: AddStatic: %v", pc, err)
				}
				model[k] = &modelEntry{port: port, static: true}
			case 5: // remove static
				err := tbl.RemoveStatic(vni, m)
				if wantErr := e == nil || !e.static || !segs[vni]; (err != nil) != wantErr {
					t.Fatalf("pc %d: RemoveStatic = %v; model %+v", pc, err, e)
				}
				if err == nil {
					delete(model, k)
				}
			case 6: // flush a port
				minN, maxN := 0, 0
				for mk, me := range model {
					if !me.static && me.port == port {
						maxN++
						if live(me) {
							minN++
						}
						delete(model, mk)
					}
				}
				if got := tbl.FlushPort(port); got < minN || got > maxN {
					t.Fatalf("pc %d: FlushPort(%d) = %d; want %d..%d", pc, port, got, minN, maxN)
				}
			case 7: // remove or re-add a segment
				if segs[vni] {
					tbl.RemoveSegment(vni)
					for mk := range model {
						if mk.vni == vni {
							delete(model, mk)
						}
					}
				} else if err := tbl.AddSegment(vni); err != nil {
					t.Fatalf("pc %d: AddSegment: %v", pc, err)
				}
				segs[vni] = !segs[vni]
			}
		}
		// Entries shows exactly the live model.
		n := 0
		tbl.Entries(func(got Entry) bool {
			n++
			e := model[modelKey{got.VNI, got.MAC}]
			if e == nil || !live(e) {
				t.Fatalf("Entries: %+v not in model", got)
			}
			want := Entry{VNI: got.VNI, MAC: got.MAC, Port: e.port, Static: e.static, Moves: e.moves}
			if !e.static {
				want.Age = now - e.seen
			}
			if got != want {
				t.Fatalf("Entries: %+v; want %+v", got, want)
			}
			return true
		})
		want := 0
		for _, e := range model {
			if live(e) {
				want++
			}
		}
		if n != want {
			t.Fatalf("Entries: %d entries; want %d", n, want)
		}
	}
}
