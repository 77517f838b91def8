package encap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/clock"
)

// fuzzReader hands out the fuzz input a byte at a time, zeros when done.
type fuzzReader struct {
	b []byte
	i int
}

func (r *fuzzReader) done() bool { return r.i >= len(r.b) }

func (r *fuzzReader) next() int {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return int(r.b[r.i-1])
}

// fuzzFrag builds a fragment of test datagram id with its flow identity in
// the header: IPv4 via its ID; IPv6 via the flow label (also the fragment
// ID), so a reassembled IPv6 datagram still names its id.
func fuzzFrag(id uint32, v6 bool, off, n int, more bool) []byte {
	if !v6 {
		return v4frag(uint16(id), off, n, more)
	}
	pkt := v6frag(id, off, n, more)
	binary.BigEndian.PutUint32(pkt, IPv6Version<<28|id&0xfffff)
	return pkt
}

// fuzzWhole is the unfragmented datagram that fuzzFrag's fragments of id,
// covering payloadLen bytes, reassemble to.
func fuzzWhole(id uint32, v6 bool, payloadLen int) []byte {
	if !v6 {
		return fragMakeIPv4(payloadLen, uint16(id))
	}
	pkt := fragMakeIPv6(payloadLen, id)
	binary.BigEndian.PutUint32(pkt, IPv6Version<<28|id&0xfffff)
	return pkt
}

// FuzzReassembler drives a small Reassembler with a program read from the
// input: fragments of six real datagrams (odd ids IPv4, even IPv6) in any
// order, at regular or arbitrary boundaries (overlapping, but always with the
// right bytes), duplicates, clock jumps, floods of fragments of other
// datagrams, and garbage. After every step the bookkeeping must be
// consistent and memory within its bound, and every datagram that comes out
// must be byte-identical to the original (real ids) or carry a consistent
// payload (floods).
func FuzzReassembler(f *testing.F) {
	// Program bytes: 2 per real datagram of set-up (length, chunk), then ops:
	// op%8: 0-2 regular fragment (next byte picks which), 3 arbitrary
	// fragment (offset, length), 4 duplicate, 5 advance the clock (ms),
	// 6 flood fragment (id, offset, length, more), 7 garbage (length, bytes).
	// The real datagram is (op>>3)%6 + 1.
	f.Add([]byte{10, 3, 10, 3, 10, 3, 10, 3, 10, 3, 10, 3, 0, 0, 0, 1, 0, 2})              // datagram 1 in order
	f.Add([]byte{10, 3, 10, 3, 10, 3, 10, 3, 10, 3, 10, 3, 8, 2, 8, 1, 8, 0})              // datagram 2 (IPv6) reversed
	f.Add([]byte{50, 7, 10, 3, 10, 3, 10, 3, 10, 3, 10, 3, 0, 0, 3, 1, 2, 0, 1, 0, 2})     // an overlap
	f.Add([]byte{50, 7, 10, 3, 10, 3, 10, 3, 10, 3, 10, 3, 0, 0, 4, 4, 0, 1, 0, 2, 0, 3})  // duplicates
	f.Add([]byte{50, 7, 10, 3, 10, 3, 10, 3, 10, 3, 10, 3, 0, 0, 5, 99, 0, 1, 5, 1, 0, 2}) // timeout
	f.Add([]byte{200, 0, 200, 1, 200, 2, 200, 3, 200, 4, 200, 5, 6, 1, 0, 9, 1, 14, 2, 0, 9, 1, 22, 3, 0, 9, 1,
		30, 4, 0, 9, 1, 6, 1, 1, 0, 0}) // flood of new datagrams evicts the old
	f.Add([]byte{10, 3, 10, 3, 10, 3, 10, 3, 10, 3, 10, 3, 7, 20, 0x45, 0, 0, 20, 7, 3, 0x60, 0, 0}) // garbage
	f.Fuzz(func(t *testing.T, prog []byte) {
		clk := clock.NewManual(reasmEpoch)
		cfg := ReassemblyConfig{MaxDatagram: 2048, MaxDatagrams: 4, MaxFragments: 16, MaxMemory: 3000,
			Timeout: 100 * time.Millisecond, MinFirstFragment: -1, Clock: clk}
		r := NewReassembler(cfg)
		rd := &fuzzReader{b: prog}
		const real = 6
		var length, chunk [real + 1]int
		var whole [real + 1][]byte
		for id := 1; id <= real; id++ {
			length[id] = 1 + rd.next()*8 + rd.next()%8 // up to 2048-40-8
			chunk[id] = 8 * (1 + rd.next()%32)
			whole[id] = fuzzWhole(uint32(id), id%2 == 0, length[id])
		}
		var last []byte
		for step := 0; !rd.done() && step < 2000; step++ {
			op := rd.next()
			id := (op>>3)%real + 1
			v6 := id%2 == 0
			L := length[id]
			var pkt []byte
			switch op % 8 {
			case 0, 1, 2:
				c := chunk[id]
				off := c * (rd.next() % ((L + c - 1) / c))
				n := min(c, L-off)
				pkt = fuzzFrag(uint32(id), v6, off, n, off+n < L)
			case 3:
				off := 8 * (rd.next() % ((L + 7) / 8))
				n := min(8*(1+rd.next()%64), L-off)
				pkt = fuzzFrag(uint32(id), v6, off, n, off+n < L)
			case 4:
				pkt = last
			case 5:
				clk.Advance(time.Duration(rd.next()) * time.Millisecond)
				r.Expire()
			case 6:
				fid := uint32(100 + rd.next())
				off := 8 * rd.next()
				n := 8 * (1 + rd.next()%16)
				if rd.next()%2 == 1 {
					n -= rd.next() % 8
				}
				pkt = fuzzFrag(fid, fid%2 == 0, off, n, op&0x80 == 0)
			case 7:
				n := rd.next()
				pkt = make([]byte, 0, n)
				for i := 0; i < n && !rd.done(); i++ {
					pkt = append(pkt, byte(rd.next()))
				}
				if len(pkt) > 12 {
					pkt[12] = 0xee // a source no real datagram has (IPv4 src, IPv6 src)
				}
			}
			if pkt == nil {
				continue
			}
			last = pkt
			d, err := r.Add(pkt)
			if err != nil && d != nil {
				t.Fatalf("step %d: got a datagram and error %v", step, err)
			}
			if d != nil {
				checkFuzzDatagram(t, step, d, pkt, whole[:])
			}
			if err := reasmCheckInvariants(r); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if s := r.Stats(); s.InProgress > cfg.MaxDatagrams || s.MemoryInUse > cfg.MaxMemory {
				t.Fatalf("step %d: %d datagrams, %d bytes in progress, bounds %d, %d", step, s.InProgress, s.MemoryInUse, cfg.MaxDatagrams, cfg.MaxMemory)
			}
		}
	})
}

func checkFuzzDatagram(t *testing.T, step int, d, pkt []byte, whole [][]byte) {
	t.Helper()
	var id uint32
	switch d[0] >> 4 {
	case IPv4Version:
		ip := IPv4(d)
		if !ip.IsValid() || int(ip.TotalLen()) != len(d) {
			t.Fatalf("step %d: invalid IPv4 datagram %x", step, d)
		}
		if &d[0] == &pkt[0] {
			return // a non-fragment passed through
		}
		if !ip.ChecksumValid() || ip.IsFragment() {
			t.Fatalf("step %d: reassembled header %x: bad checksum or still a fragment", step, d[:20])
		}
		id = uint32(ip.ID())
	case IPv6Version:
		ip := IPv6(d)
		if !ip.IsValid() || IPv6HeaderLen+int(ip.PayloadLen()) != len(d) {
			t.Fatalf("step %d: invalid IPv6 datagram %x", step, d)
		}
		if &d[0] == &pkt[0] {
			return // a non-fragment passed through
		}
		id = ip.FlowLabel()
	default:
		t.Fatalf("step %d: datagram of version %d", step, d[0]>>4)
	}
	if d[12] == 0xee {
		return // garbage that happened to form a datagram
	}
	if int(id) < len(whole) && id > 0 {
		if !bytes.Equal(d, whole[id]) {
			t.Fatalf("step %d: datagram %d differs from the original:\ngot  %x\nwant %x", step, id, d, whole[id])
		}
		return
	}
	if err := checkDatagram(d, id, len(d)); err != nil {
		t.Fatalf("step %d: flood datagram %d: %v", step, id, err)
	}
}

// FuzzReassemblerAdd feeds arbitrary packets (each prefixed by a length
// byte) to Add: it must never panic, and what comes out is a well-formed
// datagram.
func FuzzReassemblerAdd(f *testing.F) {
	add := func(pkts ...[]byte) []byte {
		var b []byte
		for _, p := range pkts {
			b = append(append(b, byte(len(p))), p...)
		}
		return b
	}
	f.Add(add(v4frag(1, 0, 16, true), v4frag(1, 16, 8, false)))       // an IPv4 datagram in two
	f.Add(add(v6frag(1, 8, 8, false), v6frag(1, 0, 8, true)))         // IPv6, reversed
	f.Add(add(v4frag(1, 0, 16, true), v4frag(1, 8, 16, false)))       // overlap
	f.Add(add(fragIPv6WithExt(16, 1, 0, 43, 60, 44)))                 // long extension header chain
	f.Add(add(v6frag(3, 0, 40, false)))                               // IPv6 atomic fragment
	f.Add(add(fragIPv4Frag(fragIPv4WithOptions([]byte{0x82, 4, 0, 0}, // options
		16, 4), true), v4frag(4, 16, 8, false)))
	f.Add([]byte{0x45, 0x00, 0xff, 0xff}) // truncated
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReassembler(ReassemblyConfig{MaxDatagram: 512, MaxDatagrams: 2, MaxFragments: 4,
			MinFirstFragment: -1, Clock: clock.NewManual(reasmEpoch)})
		for len(data) > 0 {
			n := min(int(data[0]), len(data)-1)
			pkt := data[1 : 1+n]
			data = data[1+n:]
			in := append([]byte(nil), pkt...)
			d, err := r.Add(pkt)
			if !bytes.Equal(in, pkt) {
				t.Fatalf("Add modified its input")
			}
			if err == nil && d != nil {
				switch d[0] >> 4 {
				case IPv4Version:
					if !IPv4(d).IsValid() || int(IPv4(d).TotalLen()) != len(d) {
						t.Fatalf("invalid IPv4 datagram out: %x", d)
					}
				case IPv6Version:
					if !IPv6(d).IsValid() || int(IPv6(d).PayloadLen())+IPv6HeaderLen != len(d) {
						t.Fatalf("invalid IPv6 datagram out: %x", d)
					}
				default:
					t.Fatalf("datagram of version %d out", d[0]>>4)
				}
			}
			if err := reasmCheckInvariants(r); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzFragment fragments arbitrary packets at arbitrary MTUs: no panic;
// when it succeeds, every fragment fits the MTU and our Reassembler puts
// them back together, in reverse order, into the original packet.
func FuzzFragment(f *testing.F) {
	f.Add(fragMakeIPv4(3000, 1), uint16(1500))                                           // plain IPv4
	f.Add(fragIPv4WithOptions([]byte{0x82, 0x0b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1}, 200, 2), // copied option, NOP
		uint16(60))
	f.Add(fragMakeIPv6(3000, 3), uint16(1280))                   // plain IPv6
	f.Add(fragIPv6WithExt(700, 4, 0, 43, 60), uint16(200))       // extension headers
	f.Add(fragIPv6WithExt(700, 5, 60), uint16(200))              // destination options only
	f.Add(v4frag(6, 800, 1000, true), uint16(300))               // refragment a fragment
	f.Add([]byte{0x46, 0, 0, 30, 0, 0, 0, 0, 64, 17}, uint16(9)) // truncated
	f.Fuzz(func(t *testing.T, pkt []byte, mtu16 uint16) {
		mtu := int(mtu16)
		in := append([]byte(nil), pkt...)
		cnt, cerr := FragmentCount(pkt, mtu)
		if cerr != nil {
			cnt = 1
		}
		if cnt > 10000 {
			t.Skip()
		}
		out, sizes := fragBufs(cnt, max(mtu, 0))
		var n int
		var err error
		v6 := len(pkt) > 0 && pkt[0]>>4 == IPv6Version
		if v6 {
			n, err = FragmentIPv6(pkt, mtu, 0x01020304, out, sizes)
		} else {
			n, err = FragmentIPv4(pkt, mtu, 0x0102, out, sizes)
		}
		if !bytes.Equal(in, pkt) {
			t.Fatal("fragmenting modified the input")
		}
		if (err == nil) != (cerr == nil) || err == nil && n != cnt {
			t.Fatalf("FragmentCount says %d, %v; fragmenting gave %d, %v", cnt, cerr, n, err)
		}
		if err != nil {
			if errors.Is(err, ErrFragmentBuffers) {
				t.Fatalf("buffers sized from FragmentCount refused: %v", err)
			}
			return
		}
		if n == 1 {
			return
		}
		orig := pkt
		if !v6 {
			ip := IPv4(pkt)
			if ip.IsFragment() {
				return // a refragmented fragment is not a whole datagram
			}
			orig = append([]byte(nil), pkt[:ip.TotalLen()]...)
			IPv4(orig).SetID(0x0102)
			IPv4(orig).SetChecksum(IPv4(orig).CalculateChecksum())
		} else {
			orig = pkt[:IPv6HeaderLen+int(IPv6(pkt).PayloadLen())]
		}
		r := NewReassembler(ReassemblyConfig{MaxDatagram: maxIPDatagram, MaxDatagrams: 1, MaxFragments: 1 << 20,
			MinFirstFragment: -1, Clock: clock.NewManual(reasmEpoch)})
		var got []byte
		for i := n - 1; i >= 0; i-- {
			if sizes[i] > mtu {
				t.Fatalf("fragment %d: %d bytes, mtu %d", i, sizes[i], mtu)
			}
			d, err := r.Add(out[i][:sizes[i]])
			if err != nil {
				t.Fatalf("Add(fragment %d of %d): %v", i, n, err)
			}
			if d != nil && i > 0 {
				t.Fatalf("complete after fragment %d of %d", i, n)
			}
			got = d
		}
		if !bytes.Equal(got, orig) {
			t.Fatalf("round trip:\ngot  %x\nwant %x", got, orig)
		}
	})
}
