package encap

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/ip4defrag"
	"github.com/google/gopacket/layers"
	"github.com/vxswitch/vxswitch/clock"
)

var reasmEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// v4frag builds an IPv4 fragment of the test datagram id (protocol UDP,
// fragPattern payload): n payload bytes at byte offset off. It uses the
// header view setters directly, not FragmentIPv4.
func v4frag(id uint16, off, n int, more bool) []byte {
	return v4fragProto(id, ProtoUDP, off, n, more)
}

func v4fragProto(id uint16, proto uint8, off, n int, more bool) []byte {
	pkt := make([]byte, IPv4MinHeaderLen+n)
	var flags uint16
	if more {
		flags = IPv4FlagMF
	}
	f := IPv4Fields{TotalLen: uint16(len(pkt)), ID: id, Flags: flags, Offset: off, TTL: 64, Protocol: proto, Src: fragSrc4, Dst: fragDst4}
	f.Encode(pkt)
	for i := 0; i < n; i++ {
		pkt[IPv4MinHeaderLen+i] = fragPattern(uint32(id), off+i)
	}
	return pkt
}

// v6frag builds an IPv6 fragment (fixed header, fragment header, n bytes of
// fragPattern payload at off) of the test packet id.
func v6frag(id uint32, off, n int, more bool) []byte {
	pkt := make([]byte, IPv6HeaderLen+IPv6FragmentHeaderLen+n)
	h := IPv6Fields{PayloadLen: uint16(IPv6FragmentHeaderLen + n), NextHeader: ProtoIPv6Frag, HopLimit: 64, Src: fragSrc6, Dst: fragDst6}
	h.Encode(pkt)
	fh := IPv6FragmentFields{NextHeader: ProtoUDP, Offset: off, More: more, ID: id}
	fh.Encode(pkt[IPv6HeaderLen:])
	for i := 0; i < n; i++ {
		pkt[IPv6HeaderLen+IPv6FragmentHeaderLen+i] = fragPattern(id, off+i)
	}
	return pkt
}

// manualFrag6 cuts a fragment out of the IPv6 packet whole by hand: its
// first u bytes (with the Next Header field at nhOff set to 44), a fragment
// header, and n bytes of whole at u+off.
func manualFrag6(whole []byte, u, nhOff, off, n int, more bool, id uint32) []byte {
	p := append([]byte(nil), whole[:u]...)
	p[nhOff] = ProtoIPv6Frag
	var fh [IPv6FragmentHeaderLen]byte
	(&IPv6FragmentFields{NextHeader: whole[nhOff], Offset: off, More: more, ID: id}).Encode(fh[:])
	p = append(append(p, fh[:]...), whole[u+off:u+off+n]...)
	IPv6(p).SetPayloadLen(uint16(len(p) - IPv6HeaderLen))
	return p
}

// checkDatagram verifies a reassembled datagram of test datagram id: a
// valid, unfragmented header of the right length and the fragPattern
// payload.
func checkDatagram(d []byte, id uint32, wantLen int) error {
	if len(d) != wantLen {
		return fmt.Errorf("got %d bytes, want %d", len(d), wantLen)
	}
	var payload []byte
	switch d[0] >> 4 {
	case IPv4Version:
		ip := IPv4(d)
		if !ip.IsValid() || int(ip.TotalLen()) != len(d) || !ip.ChecksumValid() || ip.IsFragment() || uint32(ip.ID()) != id {
			return fmt.Errorf("bad IPv4 header % x", d[:IPv4MinHeaderLen])
		}
		payload = ip.Payload()
	case IPv6Version:
		ip := IPv6(d)
		if !ip.IsValid() || IPv6HeaderLen+int(ip.PayloadLen()) != len(d) || ip.NextHeader() != ProtoUDP {
			return fmt.Errorf("bad IPv6 header % x", d[:IPv6HeaderLen])
		}
		payload = ip.Payload()
	}
	for i, b := range payload {
		if b != fragPattern(id, i) {
			return fmt.Errorf("payload byte %d: got %#x, want %#x", i, b, fragPattern(id, i))
		}
	}
	return nil
}

// reasmCheckInvariants checks the Reassembler's bookkeeping: the age list,
// the free stack and the hash table agree, memory is the sum of what the
// datagrams hold, and the bounds hold.
func reasmCheckInvariants(r *Reassembler) error {
	inUse := 0
	mem := 0
	prev := int32(-1)
	for si := r.head; si >= 0; si = r.slots[si].next {
		s := &r.slots[si]
		if s.prev != prev {
			return fmt.Errorf("slot %d: prev %d, want %d", si, s.prev, prev)
		}
		if _, got := r.lookup(&s.key, s.hash); got != si {
			return fmt.Errorf("slot %d: table lookup gives %d", si, got)
		}
		sum := 0
		for i, f := range s.frags {
			if f.start >= f.end || i > 0 && s.frags[i-1].end > f.start {
				return fmt.Errorf("slot %d: fragment table not sorted and disjoint: %v", si, s.frags)
			}
			sum += int(f.end - f.start)
		}
		if sum != int(s.recvd) || len(s.frags) > r.cfg.MaxFragments {
			return fmt.Errorf("slot %d: %d fragments hold %d bytes, recvd says %d", si, len(s.frags), sum, s.recvd)
		}
		mem += sum
		inUse++
		prev = si
		if inUse > len(r.slots) {
			return errors.New("age list has a cycle")
		}
	}
	if prev != r.tail {
		return fmt.Errorf("tail %d, list ends at %d", r.tail, prev)
	}
	if inUse+len(r.free) != len(r.slots) {
		return fmt.Errorf("%d in use + %d free != %d slots", inUse, len(r.free), len(r.slots))
	}
	entries := 0
	for _, si := range r.table {
		if si >= 0 {
			entries++
		}
	}
	if entries != inUse {
		return fmt.Errorf("table has %d entries, %d slots in use", entries, inUse)
	}
	if mem != r.mem || mem > r.cfg.MaxMemory || mem < 0 {
		return fmt.Errorf("memory %d, counted %d, bound %d", r.mem, mem, r.cfg.MaxMemory)
	}
	return nil
}

type reasmStep struct {
	advance time.Duration // clock advance before the step
	expire  bool          // call Expire instead of Add
	pkt     []byte
	wantErr error
	wantID  uint32 // with wantLen: the datagram that must complete
	wantLen int    // > 0: a datagram of this length must come out
	wantPkt []byte // a packet that must come out unchanged
}

func TestReassemblerEvents(t *testing.T) {
	base := ReassemblyConfig{MinFirstFragment: -1, Timeout: 100 * time.Millisecond}
	with := func(f func(*ReassemblyConfig)) ReassemblyConfig { c := base; f(&c); return c }
	badSum := v4frag(1, 0, 16, true)
	badSum[ipv4Checksum] ^= 0xff
	notFrag := v4frag(9, 0, 40, false)
	notFrag6 := fragMakeIPv6(40, 9)
	atomic6 := v6frag(77, 0, 24, false)
	hbh := fragIPv6WithExt(1200, 88, 0) // Hop-by-Hop before the fragment header
	hbhFrags, hbhSizes := fragBufs(4, 600)
	if n, err := FragmentIPv6(hbh, 600, 88, hbhFrags, hbhSizes); n != 3 || err != nil {
		t.Fatalf("FragmentIPv6: %d, %v", n, err)
	}

	rtDst := fragIPv6WithExt(24, 90, 43, 60) // Routing, then Destination Options, then UDP
	tests := []struct {
		name  string
		cfg   ReassemblyConfig
		steps []reasmStep
		want  ReassemblyStats
	}{
		{"in order", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{pkt: v4frag(1, 16, 16, true)},
			{pkt: v4frag(1, 32, 8, false), wantID: 1, wantLen: 60},
		}, ReassemblyStats{Fragments: 3, Completed: 1}},
		{"reverse order", base, []reasmStep{
			{pkt: v4frag(1, 32, 8, false)},
			{pkt: v4frag(1, 16, 16, true)},
			{pkt: v4frag(1, 0, 16, true), wantID: 1, wantLen: 60},
		}, ReassemblyStats{Fragments: 3, Completed: 1}},
		{"middle first", base, []reasmStep{
			{pkt: v4frag(1, 16, 16, true)},
			{pkt: v4frag(1, 32, 8, false)},
			{pkt: v4frag(1, 0, 16, true), wantID: 1, wantLen: 60},
		}, ReassemblyStats{Fragments: 3, Completed: 1}},
		{"exact duplicates are ignored", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{pkt: v4frag(1, 0, 16, true)},
			{pkt: v4frag(1, 16, 8, false), wantID: 1, wantLen: 44},
			{pkt: v4frag(2, 16, 8, false)},
			{pkt: v4frag(2, 16, 8, false)},
			{pkt: v4frag(2, 0, 16, true), wantID: 2, wantLen: 44},
		}, ReassemblyStats{Fragments: 6, Completed: 2, Duplicates: 2}},
		{"a duplicate after completion starts a new datagram", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{pkt: v4frag(1, 16, 8, false), wantID: 1, wantLen: 44},
			{pkt: v4frag(1, 16, 8, false)},
		}, ReassemblyStats{Fragments: 3, Completed: 1, InProgress: 1, MemoryInUse: 8}},
		{"overlap drops the whole datagram", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{pkt: v4frag(1, 8, 16, true), wantErr: ErrFragmentOverlap},
			{pkt: v4frag(1, 24, 8, false)},
		}, ReassemblyStats{Fragments: 3, Overlap: 1, InProgress: 1, MemoryInUse: 8}},
		{"same start, shorter", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{pkt: v4frag(1, 0, 8, true), wantErr: ErrFragmentOverlap},
		}, ReassemblyStats{Fragments: 2, Overlap: 1}},
		{"overlap with the next fragment", base, []reasmStep{
			{pkt: v4frag(1, 16, 16, true)},
			{pkt: v4frag(1, 8, 16, true), wantErr: ErrFragmentOverlap},
		}, ReassemblyStats{Fragments: 2, Overlap: 1}},
		{"two different ends", base, []reasmStep{
			{pkt: v4frag(1, 16, 16, false)},
			{pkt: v4frag(1, 32, 8, false), wantErr: ErrFragmentOverlap},
		}, ReassemblyStats{Fragments: 2, Overlap: 1}},
		{"data past the end", base, []reasmStep{
			{pkt: v4frag(1, 16, 8, false)},
			{pkt: v4frag(1, 24, 8, true), wantErr: ErrFragmentOverlap},
		}, ReassemblyStats{Fragments: 2, Overlap: 1}},
		{"end before data already seen", base, []reasmStep{
			{pkt: v4frag(1, 32, 8, true)},
			{pkt: v4frag(1, 8, 8, false), wantErr: ErrFragmentOverlap},
		}, ReassemblyStats{Fragments: 2, Overlap: 1}},
		{"tiny first fragment (RFC 1858)", with(func(c *ReassemblyConfig) { c.MinFirstFragment = 64 }), []reasmStep{
			{pkt: v4frag(1, 64, 8, false)},
			{pkt: v4frag(1, 0, 56, true), wantErr: ErrTinyFragment},
			{pkt: v4frag(2, 0, 64, true)},
			{pkt: v4frag(2, 64, 8, false), wantID: 2, wantLen: 92},
		}, ReassemblyStats{Fragments: 4, TinyFirstFragment: 1, Completed: 1}},
		{"too big", with(func(c *ReassemblyConfig) { c.MaxDatagram = 100 }), []reasmStep{
			{pkt: v4frag(1, 0, 72, true)},
			{pkt: v4frag(1, 72, 16, false), wantErr: ErrFragmentTooBig},
			{pkt: v4frag(2, 0, 72, true)},
			{pkt: v4frag(2, 72, 8, false), wantID: 2, wantLen: 100},
		}, ReassemblyStats{Fragments: 4, TooBig: 1, Completed: 1}},
		{"too big with the first fragment's options", with(func(c *ReassemblyConfig) { c.MaxDatagram = 100 }), []reasmStep{
			{pkt: v4frag(1, 72, 8, false)},
			{pkt: fragIPv4Frag(fragIPv4WithOptions([]byte{0x82, 4, 0, 0}, 72, 1), true), wantErr: ErrFragmentTooBig},
		}, ReassemblyStats{Fragments: 2, TooBig: 1}},
		{"past 65535 bytes", with(func(c *ReassemblyConfig) { c.MaxDatagram = 70000 }), []reasmStep{
			{pkt: v4frag(1, 65512, 8, false), wantErr: ErrFragmentTooBig},
		}, ReassemblyStats{Fragments: 1, TooBig: 1}},
		{"too many fragments", with(func(c *ReassemblyConfig) { c.MaxFragments = 3 }), []reasmStep{
			{pkt: v4frag(1, 0, 8, true)},
			{pkt: v4frag(1, 8, 8, true)},
			{pkt: v4frag(1, 16, 8, true)},
			{pkt: v4frag(1, 16, 8, true)}, // a duplicate is not a fourth
			{pkt: v4frag(1, 24, 8, false), wantErr: ErrTooManyFragments},
		}, ReassemblyStats{Fragments: 5, Duplicates: 1, TooManyFragments: 1}},
		{"timeout is exact (Expire)", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{advance: 100*time.Millisecond - 1, expire: true},
			{pkt: v4frag(1, 16, 16, true)},
			{advance: 1, expire: true},
			{pkt: v4frag(1, 32, 8, false)},
		}, ReassemblyStats{Fragments: 3, Timeout: 1, InProgress: 1, MemoryInUse: 8}},
		{"timeout is exact (a new datagram starts)", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{advance: 100*time.Millisecond - 1, pkt: v4frag(2, 0, 16, true)},
			{advance: 1, pkt: v4frag(3, 0, 16, true)},
			{pkt: v4frag(1, 16, 8, false)},
			{pkt: v4frag(2, 16, 8, false), wantID: 2, wantLen: 44},
		}, ReassemblyStats{Fragments: 5, Timeout: 1, Completed: 1, InProgress: 2, MemoryInUse: 24}},
		{"just in time", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{advance: 100*time.Millisecond - 1, expire: true},
			{pkt: v4frag(1, 16, 8, false), wantID: 1, wantLen: 44},
		}, ReassemblyStats{Fragments: 2, Completed: 1}},
		{"no clock reading for a datagram in progress: late but not yet expired", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{advance: time.Second, pkt: v4frag(1, 16, 8, false), wantID: 1, wantLen: 44},
		}, ReassemblyStats{Fragments: 2, Completed: 1}},
		{"timeout counts from the first fragment", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{advance: 60 * time.Millisecond, pkt: v4frag(2, 0, 16, true)},
			{pkt: v4frag(1, 16, 8, true)},
			{advance: 40*time.Millisecond - 1, expire: true},
			{advance: 1, expire: true},
			{pkt: v4frag(2, 16, 8, false), wantID: 2, wantLen: 44},
		}, ReassemblyStats{Fragments: 4, Timeout: 1, Completed: 1}},
		{"oldest evicted for a new datagram", with(func(c *ReassemblyConfig) { c.MaxDatagrams = 2; c.SourceShare = 2 }), []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{pkt: v4frag(2, 0, 16, true)},
			{pkt: v4frag(3, 0, 16, true)},
			{pkt: v4frag(2, 16, 8, false), wantID: 2, wantLen: 44},
			{pkt: v4frag(3, 16, 8, false), wantID: 3, wantLen: 44},
			{pkt: v4frag(1, 16, 8, false)},
		}, ReassemblyStats{Fragments: 6, NoMemory: 1, Completed: 2, InProgress: 1, MemoryInUse: 8}},
		{"oldest evicted for memory", with(func(c *ReassemblyConfig) {
			c.MaxDatagram = 100
			c.MaxDatagrams = 4
			c.MaxMemory = 150
			c.SourceShare = 4
		}), []reasmStep{
			{pkt: v4frag(1, 0, 64, true)},
			{pkt: v4frag(2, 0, 64, true)},
			{pkt: v4frag(2, 64, 8, true)},
			{pkt: v4frag(3, 0, 16, true)},
			{pkt: v4frag(2, 72, 8, false), wantID: 2, wantLen: 100},
		}, ReassemblyStats{Fragments: 5, NoMemory: 1, Completed: 1, InProgress: 1, MemoryInUse: 16}},
		{"a datagram is never evicted for itself", with(func(c *ReassemblyConfig) { c.MaxDatagram = 100; c.MaxDatagrams = 2; c.MaxMemory = 1 }), []reasmStep{
			{pkt: v4frag(1, 0, 40, true)},
			{pkt: v4frag(1, 40, 40, false), wantID: 1, wantLen: 100},
		}, ReassemblyStats{Fragments: 2, Completed: 1}},
		{"malformed", base, []reasmStep{
			{pkt: nil, wantErr: ErrMalformed},
			{pkt: []byte{0x50}, wantErr: ErrMalformed},
			{pkt: badSum, wantErr: ErrMalformed},
			{pkt: v4frag(1, 0, 16, true)[:30], wantErr: ErrMalformed},
			{pkt: v4frag(1, 8, 0, false), wantErr: ErrMalformed},
			{pkt: v4frag(1, 0, 12, true), wantErr: ErrMalformed},
			{pkt: v6frag(1, 0, 12, true), wantErr: ErrMalformed},
			{pkt: v6frag(1, 0, 16, true)[:IPv6HeaderLen+4], wantErr: ErrMalformed},
		}, ReassemblyStats{Fragments: 3, Malformed: 8}},
		{"not a fragment passes through", base, []reasmStep{
			{pkt: append(append([]byte(nil), notFrag...), 0, 0, 0), wantPkt: notFrag}, // link padding trimmed
			{pkt: notFrag6, wantPkt: notFrag6},
		}, ReassemblyStats{}},
		{"IPv6 atomic fragment", base, []reasmStep{
			{pkt: atomic6, wantID: 77, wantLen: 64},
		}, ReassemblyStats{Fragments: 1, Completed: 1}},
		{"IPv6 in any order", base, []reasmStep{
			{pkt: v6frag(5, 16, 8, false)},
			{pkt: v6frag(5, 0, 16, true), wantID: 5, wantLen: 64},
		}, ReassemblyStats{Fragments: 2, Completed: 1}},
		{"IPv6 after a hop-by-hop header", base, []reasmStep{
			{pkt: hbhFrags[2][:hbhSizes[2]]},
			{pkt: hbhFrags[0][:hbhSizes[0]]},
			{pkt: hbhFrags[1][:hbhSizes[1]], wantPkt: hbh},
		}, ReassemblyStats{Fragments: 3, Completed: 1}},
		{"IPv6 fragment header after routing and destination options", base, []reasmStep{
			{pkt: manualFrag6(rtDst, 56, 48, 16, 8, false, 90)},
			{pkt: manualFrag6(rtDst, 56, 48, 0, 16, true, 90), wantPkt: rtDst},
		}, ReassemblyStats{Fragments: 2, Completed: 1}},
		{"keys: protocol and IP version separate datagrams", base, []reasmStep{
			{pkt: v4frag(1, 0, 16, true)},
			{pkt: v4fragProto(1, ProtoTCP, 16, 8, false)},
			{pkt: v6frag(1, 16, 8, false)},
			{pkt: v4frag(1, 16, 8, false), wantID: 1, wantLen: 44},
		}, ReassemblyStats{Fragments: 4, Completed: 1, InProgress: 2, MemoryInUse: 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewManual(reasmEpoch)
			cfg := tt.cfg
			cfg.Clock = clk
			r := NewReassembler(cfg)
			for i, st := range tt.steps {
				clk.Advance(st.advance)
				if st.expire {
					r.Expire()
					continue
				}
				d, err := r.Add(st.pkt)
				if !errors.Is(err, st.wantErr) {
					t.Fatalf("step %d: got error %v, want %v", i, err, st.wantErr)
				}
				switch {
				case st.wantPkt != nil:
					if !bytes.Equal(d, st.wantPkt) {
						t.Fatalf("step %d: got %x, want %x", i, d, st.wantPkt)
					}
				case st.wantLen > 0:
					if d == nil {
						t.Fatalf("step %d: got no datagram, want %d bytes", i, st.wantLen)
					}
					if err := checkDatagram(d, st.wantID, st.wantLen); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				case d != nil:
					t.Fatalf("step %d: got a %d-byte datagram, want none", i, len(d))
				}
				if err := reasmCheckInvariants(r); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if got := r.Stats(); got != tt.want {
				t.Errorf("stats:\ngot  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// fragIPv4Frag turns a whole datagram into a fragment at offset 0 with MF.
func fragIPv4Frag(pkt []byte, more bool) []byte {
	ip := IPv4(pkt)
	var f uint16
	if more {
		f = IPv4FlagMF
	}
	ip.SetFlagsOffset(f, 0)
	ip.SetChecksum(ip.CalculateChecksum())
	return pkt
}

// TestReassembleAnyOrder reassembles the tunnel's typical case, a 9050-byte
// inner datagram in seven 1500-byte fragments, in all 5040 orders.
func TestReassembleAnyOrder(t *testing.T) {
	pkt := fragMakeIPv4(9050-20, 0x77)
	out, sizes := fragBufs(8, 1500)
	n, err := FragmentIPv4(pkt, 1500, 0x77, out, sizes)
	if err != nil || n != 7 {
		t.Fatalf("FragmentIPv4: %d, %v", n, err)
	}
	r := NewReassembler(ReassemblyConfig{})
	order := []int{0, 1, 2, 3, 4, 5, 6}
	count := 0
	permute(order, len(order), func(p []int) {
		count++
		for j, i := range p {
			d, err := r.Add(out[i][:sizes[i]])
			if err != nil {
				t.Fatalf("order %v: Add(%d): %v", p, i, err)
			}
			if (d != nil) != (j == len(p)-1) {
				t.Fatalf("order %v: after %d fragments got datagram %v", p, j+1, d != nil)
			}
			if d != nil && !bytes.Equal(d, pkt) {
				t.Fatalf("order %v: reassembled datagram differs", p)
			}
		}
	})
	if got := r.Stats(); got.Completed != 5040 || count != 5040 || got.InProgress != 0 {
		t.Errorf("got %d orders, %+v, want 5040 completed", count, got)
	}
}

// permute calls f with every permutation of a (Heap's algorithm).
func permute(a []int, k int, f func([]int)) {
	if k == 1 {
		f(a)
		return
	}
	for i := 0; i < k; i++ {
		permute(a, k-1, f)
		if k%2 == 0 {
			a[i], a[k-1] = a[k-1], a[i]
		} else {
			a[0], a[k-1] = a[k-1], a[0]
		}
	}
}

// gopacketFragments fragments a datagram the way another implementation
// would, with gopacket's serializer: the given payload sizes (multiples of 8
// but the last), options in the first fragment only, shuffled.
func gopacketFragments(t *testing.T, payload []byte, opts []layers.IPv4Option, chunks []int, rng *rand.Rand) (whole []byte, frags [][]byte) {
	t.Helper()
	ser := func(ip *layers.IPv4, p []byte) []byte {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, gopacket.Payload(p)); err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), buf.Bytes()...)
	}
	mk := func() *layers.IPv4 {
		return &layers.IPv4{Version: 4, TOS: 0x10, Id: 0x5151, TTL: 9, Protocol: layers.IPProtocolUDP,
			SrcIP: fragSrc4.AsSlice(), DstIP: fragDst4.AsSlice()}
	}
	w := mk()
	w.Options = opts
	whole = ser(w, payload)
	off := 0
	for i, c := range chunks {
		ip := mk()
		if i == 0 {
			ip.Options = opts
		}
		if i < len(chunks)-1 {
			ip.Flags = layers.IPv4MoreFragments
		}
		ip.FragOffset = uint16(off / 8)
		frags = append(frags, ser(ip, payload[off:off+c]))
		off += c
	}
	if off != len(payload) {
		t.Fatalf("chunks cover %d of %d bytes", off, len(payload))
	}
	rng.Shuffle(len(frags), func(i, j int) { frags[i], frags[j] = frags[j], frags[i] })
	return whole, frags
}

// TestReassembleGopacketFragments feeds fragments built by gopacket, with
// irregular sizes, to our Reassembler and to gopacket's ip4defrag: both give
// back the datagram gopacket serialized whole.
func TestReassembleGopacketFragments(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	payload := make([]byte, 5000)
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name   string
		opts   []layers.IPv4Option
		chunks []int
	}{
		{"two", nil, []int{4096, 904}},
		{"irregular", nil, []int{512, 1024, 8, 1496, 16, 1944}},
		{"many small", nil, append(repeatInt(8, 624), 8)},
		{"with options", []layers.IPv4Option{{OptionType: 0x82, OptionLength: 6, OptionData: []byte{1, 2, 3, 4}}}, []int{1480, 1480, 1480, 560}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			whole, frags := gopacketFragments(t, payload, tt.opts, tt.chunks, rng)
			r := NewReassembler(ReassemblyConfig{MaxFragments: 1000, MinFirstFragment: -1})
			var got []byte
			for i, f := range frags {
				d, err := r.Add(f)
				if err != nil {
					t.Fatalf("Add(%d): %v", i, err)
				}
				if d != nil {
					got = d
				}
			}
			if !bytes.Equal(got, whole) {
				t.Errorf("reassembled:\ngot  %x...\nwant %x...", got[:min(48, len(got))], whole[:48])
			}
			if tt.opts != nil {
				return // ip4defrag assumes 20-byte headers
			}
			d := ip4defrag.NewIPv4Defragmenter()
			var ref *layers.IPv4
			for _, f := range frags {
				var ip layers.IPv4
				if err := ip.DecodeFromBytes(f, gopacket.NilDecodeFeedback); err != nil {
					t.Fatal(err)
				}
				res, err := d.DefragIPv4(&ip)
				if err != nil {
					t.Fatalf("ip4defrag: %v", err)
				}
				if res != nil {
					ref = res
				}
			}
			if ref == nil || !bytes.Equal(ref.Payload, IPv4(got).Payload()) {
				t.Errorf("ip4defrag and our Reassembler disagree on the payload")
			}
		})
	}
}

func repeatInt(v, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// TestReassembleAllocs asserts that Add allocates nothing across a whole
// datagram, nor when it drops and evicts.
func TestReassembleAllocs(t *testing.T) {
	pkt := fragMakeIPv4(9050-20, 1)
	out, sizes := fragBufs(8, 1500)
	n, _ := FragmentIPv4(pkt, 1500, 1, out, sizes)
	pkt6 := fragMakeIPv6(9050-40, 1)
	out6, sizes6 := fragBufs(8, 1500)
	n6, _ := FragmentIPv6(pkt6, 1500, 1, out6, sizes6)
	r := NewReassembler(ReassemblyConfig{MaxDatagrams: 2})
	big, small := v4frag(9, 0, 1600, true), v4frag(9, 8, 8, true)
	tests := []struct {
		name string
		f    func()
	}{
		{"IPv4 datagram", func() {
			for i := n - 1; i >= 0; i-- {
				r.Add(out[i][:sizes[i]])
			}
		}},
		{"IPv6 datagram", func() {
			for i := 0; i < n6; i++ {
				r.Add(out6[i][:sizes6[i]])
			}
		}},
		{"overlap, eviction, malformed", func() {
			r.Add(out[0][:sizes[0]])
			r.Add(out[0][:sizes[0]])
			r.Add(out6[1][:sizes6[1]])
			r.Add(out[2][:sizes[2]-100]) // truncated: malformed
			r.Add(out6[3][:sizes6[3]])
			r.Add(big)   // third datagram: evicts
			r.Add(small) // overlap
			r.Expire()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := testing.AllocsPerRun(100, tt.f); a != 0 {
				t.Errorf("got %v allocs per run, want 0", a)
			}
		})
	}
}

func TestReassemblyConfigDefaults(t *testing.T) {
	c := NewReassembler(ReassemblyConfig{}).Config()
	if c.MaxDatagram != 9300 || c.MaxDatagrams != 64 || c.MaxFragments != 64 || c.MaxMemory != 64*9300 ||
		c.Timeout != 500*time.Millisecond || c.MinFirstFragment != 64 || c.Clock == nil {
		t.Errorf("defaults: got %+v", c)
	}
	c = NewReassembler(ReassemblyConfig{MaxDatagram: 1 << 20, MaxDatagrams: 1, MaxMemory: 10}).Config()
	if c.MaxDatagram != 65535+40 || c.MaxMemory != c.MaxDatagram {
		t.Errorf("clamped: got MaxDatagram %d MaxMemory %d, want 65575 and 65575", c.MaxDatagram, c.MaxMemory)
	}
}

// TestReassemblerFlood floods a small Reassembler with first fragments of
// thousands of datagrams that never complete, interleaved with real
// datagrams: memory and datagrams in progress stay within their bounds at
// every step, the flood is evicted oldest first, and each real datagram
// whose fragments arrive back to back still comes out whole.
func TestReassemblerFlood(t *testing.T) {
	clk := clock.NewManual(reasmEpoch)
	cfg := ReassemblyConfig{MaxDatagram: 4000, MaxDatagrams: 8, MaxMemory: 10000, MinFirstFragment: -1, Clock: clk}
	r := NewReassembler(cfg)
	real := fragMakeIPv4(3000, 0xffff)
	out, sizes := fragBufs(4, 1500)
	n, err := FragmentIPv4(real, 1500, 0xffff, out, sizes)
	if err != nil || n != 3 {
		t.Fatalf("FragmentIPv4: %d, %v", n, err)
	}
	completed := 0
	for i := 0; i < 5000; i++ {
		clk.Advance(time.Microsecond)
		if _, err := r.Add(v4frag(uint16(i), 8*(i%50), 1480, true)); err != nil {
			t.Fatalf("flood %d: %v", i, err)
		}
		if i%100 == 0 {
			var d []byte
			for j := 0; j < n; j++ {
				if d, err = r.Add(out[j][:sizes[j]]); err != nil {
					t.Fatalf("real datagram at %d: %v", i, err)
				}
			}
			if !bytes.Equal(d, real) {
				t.Fatalf("real datagram at %d: not reassembled whole", i)
			}
			completed++
		}
		s := r.Stats()
		if s.InProgress > cfg.MaxDatagrams || s.MemoryInUse > cfg.MaxMemory {
			t.Fatalf("step %d: %d datagrams, %d bytes, bounds %d, %d", i, s.InProgress, s.MemoryInUse, cfg.MaxDatagrams, cfg.MaxMemory)
		}
		if err := reasmCheckInvariants(r); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	s := r.Stats()
	if s.Completed != uint64(completed) || s.NoMemory+s.SourceShare < 5000-uint64(cfg.MaxDatagrams) {
		t.Errorf("got %+v, want %d completed and the flood evicted", s, completed)
	}
}

// fromSource rewrites an IPv4 fragment's source address (checksum fixed).
func fromSource(pkt []byte, last byte) []byte {
	p := append([]byte(nil), pkt...)
	p[ipv4Src+3] = last
	ip := IPv4(p)
	ip.SetChecksum(0)
	ip.SetChecksum(ip.CalculateChecksum())
	return p
}

// TestReassemblerSourceShare: one source flooding first fragments keeps
// at most SourceShare datagrams and evicts only its own; another source's
// datagram in progress survives the flood and completes.
func TestReassemblerSourceShare(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{MaxDatagrams: 8, MinFirstFragment: -1})
	if got := r.Config().SourceShare; got != 2 {
		t.Fatalf("default share of 8 datagrams: %d, want 2", got)
	}
	if _, err := r.Add(fromSource(v4frag(7, 0, 16, true), 99)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		if _, err := r.Add(v4frag(uint16(100+i), 0, 16, true)); err != nil {
			t.Fatal(err)
		}
	}
	s := r.Stats()
	if s.InProgress != 3 || s.SourceShare != 998 || s.NoMemory != 0 {
		t.Fatalf("after the flood: %+v, want 3 in progress (2 + the other source's), 998 evicted by share", s)
	}
	d, err := r.Add(fromSource(v4frag(7, 16, 8, false), 99))
	if err != nil || d == nil {
		t.Fatalf("the other source's datagram did not complete: %v", err)
	}
}
