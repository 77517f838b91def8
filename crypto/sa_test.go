package crypto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/clock"
	"github.com/vxswitch/vxswitch/crypto/gcm"
	"github.com/vxswitch/vxswitch/internal/require"
)

func testKeymat(s Suite, seed byte) []byte {
	k := make([]byte, s.KeymatLen())
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

// pair returns an outbound and an inbound SA sharing cfg.
func pair(t testing.TB, cfg SAConfig) (*OutboundSA, *InboundSA) {
	t.Helper()
	if cfg.Keymat == nil {
		cfg.Keymat = testKeymat(cfg.Suite, 1)
	}
	if cfg.SPI == 0 {
		cfg.SPI = 0xc0010203
	}
	o, err := NewOutboundSA(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewInboundSA(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o, in
}

// sealed seals a fresh copy of payload and returns the ESP packet.
func sealed(t testing.TB, o *OutboundSA, payload []byte) []byte {
	t.Helper()
	buf := make([]byte, HeaderLen+len(payload)+MaxTrailerLen)
	copy(buf[HeaderLen:], payload)
	n, err := o.Seal(buf, len(payload), NextHeaderIPv4)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return buf[:n]
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, s := range Suites {
		for _, esn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/esn=%v", s, esn), func(t *testing.T) {
				o, in := pair(t, SAConfig{Suite: s, ESN: esn})
				for size := 0; size <= 70; size++ {
					payload := bytes.Repeat([]byte{byte(size)}, size)
					pkt := sealed(t, o, payload)
					if got, want := len(pkt), SealedLen(size); got != want {
						t.Fatalf("size %d: got len %d, want %d", size, got, want)
					}
					if (len(pkt)-HeaderLen-ICVLen)%4 != 0 {
						t.Fatalf("size %d: plaintext not 4-byte aligned", size)
					}
					h, err := ParseHeader(pkt)
					if err != nil {
						t.Fatal(err)
					}
					wantSeq := uint64(size + 1)
					if h.SPI != 0xc0010203 || h.SeqLow != uint32(wantSeq) || h.IV != wantSeq {
						t.Fatalf("size %d: got header %+v, want seq/IV %d", size, h, wantSeq)
					}
					got, nh, err := in.Open(pkt)
					if err != nil {
						t.Fatalf("size %d: open: %v", size, err)
					}
					if !bytes.Equal(got, payload) || nh != NextHeaderIPv4 {
						t.Fatalf("size %d: got %x nh %d, want %x nh 4", size, got, nh, payload)
					}
				}
				st := in.Stats()
				if st.Packets != 71 || st.Bytes != 70*71/2 {
					t.Errorf("inbound stats: got %+v, want 71 packets, %d bytes", st, 70*71/2)
				}
				if st := o.Stats(); st.Packets != 71 {
					t.Errorf("outbound stats: got %+v, want 71 packets", st)
				}
			})
		}
	}
}

// sealRaw encrypts an arbitrary plaintext (trailer included) under o, to
// build authentic packets with broken trailers.
func sealRaw(o *OutboundSA, seq uint64, pt []byte) []byte {
	pkt := make([]byte, HeaderLen+len(pt), HeaderLen+len(pt)+ICVLen)
	binary.BigEndian.PutUint32(pkt[0:], o.spi)
	binary.BigEndian.PutUint32(pkt[4:], uint32(seq))
	binary.BigEndian.PutUint64(pkt[8:], seq)
	copy(pkt[HeaderLen:], pt)
	var sc scratch
	aad := o.fill(&sc, seq, seq)
	o.aead.Seal(pkt[HeaderLen:HeaderLen], sc.nonce[:], pkt[HeaderLen:], aad)
	return pkt[:cap(pkt)]
}

// TestOpenErrors feeds each kind of bad packet and checks its error, its
// counter, that nothing allocates and that the replay window did not move.
func TestOpenErrors(t *testing.T) {
	for _, s := range Suites {
		t.Run(s.String(), func(t *testing.T) {
			o, in := pair(t, SAConfig{Suite: s, ESN: true})
			payload := []byte("0123456789abcdef")
			var good [][]byte
			for range 3 {
				good = append(good, sealed(t, o, payload))
			}
			// Accept packet 2 so there is a window position to protect.
			if _, _, err := in.Open(append([]byte(nil), good[1]...)); err != nil {
				t.Fatal(err)
			}

			tests := []struct {
				name    string
				pkt     func() []byte
				want    error
				counter func(Stats) uint64
			}{
				{"empty", func() []byte { return nil }, ErrTruncated, func(s Stats) uint64 { return s.Truncated }},
				{"header only", func() []byte { return clone(good[0][:HeaderLen]) }, ErrTruncated, func(s Stats) uint64 { return s.Truncated }},
				{"one short", func() []byte { return clone(good[0][:MinPacketLen-1]) }, ErrTruncated, func(s Stats) uint64 { return s.Truncated }},
				{"cut ICV", func() []byte { return clone(good[0][:len(good[0])-1]) }, ErrAuth, func(s Stats) uint64 { return s.Auth }},
				{"wrong SPI", func() []byte {
					p := clone(good[0])
					p[3] ^= 1
					return p
				}, ErrUnknownSPI, func(s Stats) uint64 { return s.UnknownSPI }},
				{"flipped ciphertext", func() []byte {
					p := clone(good[0])
					p[HeaderLen+3] ^= 0x80
					return p
				}, ErrAuth, func(s Stats) uint64 { return s.Auth }},
				{"flipped ICV", func() []byte {
					p := clone(good[0])
					p[len(p)-1] ^= 1
					return p
				}, ErrAuth, func(s Stats) uint64 { return s.Auth }},
				{"flipped IV", func() []byte {
					p := clone(good[0])
					p[15] ^= 1
					return p
				}, ErrAuth, func(s Stats) uint64 { return s.Auth }},
				{"forged seq far ahead", func() []byte {
					p := clone(good[0])
					binary.BigEndian.PutUint32(p[4:], 1<<20)
					return p
				}, ErrAuth, func(s Stats) uint64 { return s.Auth }},
				{"other key", func() []byte {
					p := clone(good[0])
					binary.BigEndian.PutUint32(p[0:], 0x99)
					return p
				}, ErrUnknownSPI, func(s Stats) uint64 { return s.UnknownSPI }},
				{"pad length too big", func() []byte {
					return sealRaw(o, 10, []byte{0xaa, 0xbb, 7, 4})
				}, ErrBadPadding, func(s Stats) uint64 { return s.BadPadding }},
				{"pad bytes not 1,2,3", func() []byte {
					return sealRaw(o, 11, []byte{0xaa, 1, 3, 2, 4})
				}, ErrBadPadding, func(s Stats) uint64 { return s.BadPadding }},
				{"replay", func() []byte { return clone(good[1]) }, ErrReplay, func(s Stats) uint64 { return s.Replay }},
				{"seq 0", func() []byte { return sealRaw(o, 0, []byte{1, 2, 2, 4}) }, ErrReplay, func(s Stats) uint64 { return s.Replay }},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					before := in.Stats()
					last := in.HighestSeq()
					pl, nh, err := in.Open(tc.pkt())
					if err != tc.want {
						t.Fatalf("got %v, want %v", err, tc.want)
					}
					if pl != nil || nh != 0 {
						t.Errorf("got payload %x nh %d with an error", pl, nh)
					}
					after := in.Stats()
					if got := tc.counter(after) - tc.counter(before); got != 1 {
						t.Errorf("counter moved by %d, want 1", got)
					}
					if after.Packets != before.Packets {
						t.Errorf("packets moved: got %d, want %d", after.Packets, before.Packets)
					}
					if got := in.HighestSeq(); got != last {
						t.Errorf("window moved: got %d, want %d", got, last)
					}
				})
			}
			// Valid packets still open after all that, in any order.
			for _, i := range []int{2, 0} {
				if _, _, err := in.Open(clone(good[i])); err != nil {
					t.Fatalf("good packet %d: %v", i, err)
				}
			}
		})
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// TestOpenTooOld moves the window far ahead and checks an old packet.
func TestOpenTooOld(t *testing.T) {
	o, in := pair(t, SAConfig{Suite: SuiteAES128GCM16})
	old := sealed(t, o, []byte("old"))
	o.seq.Store(5000)
	if _, _, err := in.Open(sealed(t, o, []byte("new"))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.Open(old); err != ErrTooOld {
		t.Fatalf("got %v, want %v", err, ErrTooOld)
	}
	if got := in.Stats().TooOld; got != 1 {
		t.Errorf("TooOld counter: got %d, want 1", got)
	}
}

// TestErrorPathsNoAllocs asserts that rejecting packets allocates nothing.
func TestErrorPathsNoAllocs(t *testing.T) {
	o, in := pair(t, SAConfig{Suite: SuiteAES256GCM16, ESN: true})
	good := sealed(t, o, make([]byte, 100))
	if _, _, err := in.Open(clone(good)); err != nil {
		t.Fatal(err)
	}
	badPad := sealRaw(o, 50, []byte{9, 9, 2, 4})
	work := make([]byte, len(good))
	for name, prep := range map[string]func(){
		"replay":      func() { copy(work, good) },
		"auth":        func() { copy(work, good); work[20] ^= 1; binary.BigEndian.PutUint32(work[4:], 7) },
		"unknown SPI": func() { copy(work, good); work[0] ^= 1 },
		"bad padding": func() { work = append(work[:0], badPad...) },
		"truncated":   func() { copy(work, good) },
	} {
		a := testing.AllocsPerRun(100, func() {
			prep()
			p := work
			if name == "truncated" {
				p = work[:10]
			}
			if _, _, err := in.Open(p); err == nil {
				t.Fatal("opened a bad packet")
			}
		})
		if a != 0 {
			t.Errorf("%s: got %v allocs, want 0", name, a)
		}
	}
}

func TestSealOpenNoAllocs(t *testing.T) {
	for _, s := range Suites {
		for _, esn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/esn=%v", s, esn), func(t *testing.T) {
				o, in := pair(t, SAConfig{Suite: s, ESN: esn, Lifetime: Lifetime{
					HardPackets: 1 << 40, SoftBytes: 1 << 50, Hard: time.Hour,
				}})
				buf := make([]byte, HeaderLen+1400+MaxTrailerLen)
				var n int
				a := testing.AllocsPerRun(200, func() {
					var err error
					n, err = o.Seal(buf, 1400, NextHeaderIPv4)
					if err != nil {
						t.Fatal(err)
					}
				})
				if a != 0 {
					t.Errorf("Seal: got %v allocs, want 0", a)
				}
				pkts := make([][]byte, 0, 300)
				for range 300 {
					pkts = append(pkts, sealed(t, o, make([]byte, 1400)))
				}
				i := 0
				a = testing.AllocsPerRun(200, func() {
					if _, _, err := in.Open(pkts[i]); err != nil {
						t.Fatal(err)
					}
					i++
				})
				if a != 0 {
					t.Errorf("Open: got %v allocs, want 0", a)
				}
				_ = n
			})
		}
	}
}

func TestSealShortBuffer(t *testing.T) {
	o, _ := pair(t, SAConfig{Suite: SuiteAES128GCM16})
	for _, tc := range []struct {
		payload, cap int
		want         error
	}{
		{100, HeaderLen + 100 + MaxTrailerLen, nil},
		{100, SealedLen(100), nil},
		{100, SealedLen(100) - 1, ErrShortBuffer},
		{-1, 100, ErrShortBuffer},
		{int(^uint(0) >> 1), 100, ErrShortBuffer}, // total would overflow
		{0, SealedLen(0), nil},
	} {
		buf := make([]byte, 0, tc.cap)
		_, err := o.Seal(buf, tc.payload, NextHeaderIPv4)
		if err != tc.want {
			t.Errorf("payload %d cap %d: got %v, want %v", tc.payload, tc.cap, err, tc.want)
		}
	}
	if got := o.Stats().ShortBuffer; got != 3 {
		t.Errorf("ShortBuffer counter: got %d, want 3", got)
	}
}

// TestSeqExhaustion: without ESN the last number sent is 2^32-1, with ESN
// 2^64-1; then Seal refuses instead of wrapping, and NeedsRekey said so
// well before.
func TestSeqExhaustion(t *testing.T) {
	for _, tc := range []struct {
		esn  bool
		last uint64
	}{
		{false, 1<<32 - 1},
		{true, 1<<64 - 1},
	} {
		t.Run(fmt.Sprintf("esn=%v", tc.esn), func(t *testing.T) {
			o, in := pair(t, SAConfig{Suite: SuiteChaCha20Poly1305, ESN: tc.esn})
			if o.NeedsRekey() {
				t.Fatal("fresh SA needs rekey")
			}
			o.seq.Store(tc.last - tc.last/16 - 1)
			if o.NeedsRekey() {
				t.Error("NeedsRekey before the last 1/16")
			}
			o.seq.Store(tc.last - 2)
			if !o.NeedsRekey() {
				t.Error("NeedsRekey false near exhaustion")
			}
			in.replay.last.Store(tc.last - 3)
			for _, want := range []uint64{tc.last - 1, tc.last} {
				p := sealed(t, o, []byte("x"))
				if h, _ := ParseHeader(p); h.IV != want {
					t.Fatalf("got seq %d, want %d", h.IV, want)
				}
				if _, _, err := in.Open(p); err != nil {
					t.Fatalf("open seq %d: %v", want, err)
				}
			}
			buf := make([]byte, 64)
			for range 3 {
				if _, err := o.Seal(buf, 1, NextHeaderIPv4); err != ErrSeqExhausted {
					t.Fatalf("got %v, want %v", err, ErrSeqExhausted)
				}
			}
			if _, err := o.NextSeq(); err != ErrSeqExhausted {
				t.Fatalf("NextSeq: got %v, want %v", err, ErrSeqExhausted)
			}
			if got := o.Seq(); got != tc.last {
				t.Errorf("counter moved past the end: got %d, want %d", got, tc.last)
			}
			if got := o.Stats().SeqExhausted; got != 4 {
				t.Errorf("SeqExhausted counter: got %d, want 4", got)
			}
			if _, err := o.SealSeq(buf, 1, 4, 0); err != ErrSeqExhausted {
				t.Errorf("SealSeq(0): got %v, want %v", err, ErrSeqExhausted)
			}
		})
	}
}

// TestESNAcrossBoundary seals packets around 2^32 with ESN and opens them
// reordered: the receiver infers the high half from the window.
func TestESNAcrossBoundary(t *testing.T) {
	o, in := pair(t, SAConfig{Suite: SuiteAES128GCM16, ESN: true})
	o.seq.Store(1<<32 - 2000)
	in.replay.last.Store(1<<32 - 2000)
	var pkts [][]byte
	for range 4000 { // seqs 2^32-1999 .. 2^32+2000
		pkts = append(pkts, sealed(t, o, []byte("across")))
	}
	r := rand.New(rand.NewPCG(1, 2))
	// Reorder within blocks of 1000 (well inside the 4096 window).
	for b := 0; b < len(pkts); b += 1000 {
		blk := pkts[b : b+1000]
		r.Shuffle(len(blk), func(i, j int) { blk[i], blk[j] = blk[j], blk[i] })
	}
	saved := clone(pkts[1500])
	for i, p := range pkts {
		if _, _, err := in.Open(p); err != nil {
			t.Fatalf("packet %d (seq low %d): %v", i, binary.BigEndian.Uint32(p[4:]), err)
		}
	}
	if got, want := in.HighestSeq(), uint64(1<<32+2000); got != want {
		t.Errorf("highest: got %d, want %d", got, want)
	}
	if _, _, err := in.Open(saved); err != ErrReplay {
		t.Errorf("replay across the boundary: got %v, want %v", err, ErrReplay)
	}
	// Without ESN the same wire bytes would authenticate with a different
	// AAD: a non-ESN receiver rejects them.
	_, plain := pair(t, SAConfig{Suite: SuiteAES128GCM16})
	p := sealed(t, o, []byte("esn"))
	if _, _, err := plain.Open(p); err != ErrAuth {
		t.Errorf("ESN packet on a non-ESN SA: got %v, want %v", err, ErrAuth)
	}
}

func TestLifetimes(t *testing.T) {
	clk := clock.NewManual(time.Unix(1e9, 0))
	tests := []struct {
		name string
		life Lifetime
		// step seals/opens one 100-byte packet after advancing the clock.
		advance    time.Duration
		softAfter  int // packets after which NeedsRekey turns true
		hardAfter  int // packets after which Seal/Open fail
		iterations int
	}{
		{"packets", Lifetime{SoftPackets: 3, HardPackets: 5}, 0, 3, 5, 7},
		{"bytes", Lifetime{SoftBytes: 250, HardBytes: 400}, 0, 3, 4, 6},
		{"time", Lifetime{Soft: 25 * time.Second, Hard: 45 * time.Second}, 10 * time.Second, 3, 5, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, in := pair(t, SAConfig{Suite: SuiteAES256GCM16, Lifetime: tc.life, Clock: clk})
			_, inUnlimited := pair(t, SAConfig{Suite: SuiteAES256GCM16, Clock: clk})
			for i := 0; i < tc.iterations; i++ {
				if got, want := o.NeedsRekey(), i >= tc.softAfter; got != want {
					t.Errorf("after %d packets: outbound NeedsRekey got %v, want %v", i, got, want)
				}
				if got, want := in.NeedsRekey(), i >= tc.softAfter; got != want {
					t.Errorf("after %d packets: inbound NeedsRekey got %v, want %v", i, got, want)
				}
				// The control plane polls Expired; that is what makes a hard
				// time limit exact (TestHardTimeWithoutPolling for the rest).
				if got, want := o.Expired(), i >= tc.hardAfter; got != want {
					t.Errorf("after %d packets: outbound Expired got %v, want %v", i, got, want)
				}
				if got, want := in.Expired(), i >= tc.hardAfter; got != want {
					t.Errorf("after %d packets: inbound Expired got %v, want %v", i, got, want)
				}
				buf := make([]byte, HeaderLen+100+MaxTrailerLen)
				n, err := o.Seal(buf, 100, NextHeaderIPv4)
				wantErr := error(nil)
				if i >= tc.hardAfter {
					wantErr = ErrExpired
				}
				if err != wantErr {
					t.Fatalf("seal %d: got %v, want %v", i, err, wantErr)
				}
				if err != nil {
					// Open must refuse too: use a packet from an unlimited twin.
					o2, _ := pair(t, SAConfig{Suite: SuiteAES256GCM16})
					o2.seq.Store(uint64(i))
					buf = buf[:cap(buf)]
					n, _ = o2.Seal(buf, 100, NextHeaderIPv4)
				}
				if _, _, err := in.Open(clone(buf[:n])); err != wantErr {
					t.Fatalf("open %d: got %v, want %v", i, err, wantErr)
				}
				if _, _, err := inUnlimited.Open(buf[:n]); err != nil {
					t.Fatalf("unlimited open %d: %v", i, err)
				}
				clk.Advance(tc.advance)
			}
			if got := o.Stats().Expired; got != uint64(tc.iterations-tc.hardAfter) {
				t.Errorf("outbound Expired counter: got %d, want %d", got, tc.iterations-tc.hardAfter)
			}
		})
	}
}

// TestHardTimeWithoutPolling: with nobody calling Expired, Seal and Open
// still notice a hard time limit within clockEvery packets.
func TestHardTimeWithoutPolling(t *testing.T) {
	clk := clock.NewManual(time.Unix(1e9, 0))
	o, in := pair(t, SAConfig{Suite: SuiteAES128GCM16, Lifetime: Lifetime{Hard: time.Minute}, Clock: clk})
	o2, _ := pair(t, SAConfig{Suite: SuiteAES128GCM16})
	for range 10 {
		if _, _, err := in.Open(sealed(t, o2, []byte("warm"))); err != nil {
			t.Fatal(err)
		}
		sealed(t, o, []byte("warm"))
	}
	clk.Advance(time.Minute)
	buf := make([]byte, 64)
	var sealOK, openOK int
	for range 2 * clockEvery {
		if _, err := o.Seal(buf, 4, NextHeaderIPv4); err == nil {
			sealOK++
		} else if err != ErrExpired {
			t.Fatalf("seal: got %v, want %v", err, ErrExpired)
		}
		if _, _, err := in.Open(sealed(t, o2, []byte("late"))); err == nil {
			openOK++
		} else if err != ErrExpired {
			t.Fatalf("open: got %v, want %v", err, ErrExpired)
		}
	}
	if sealOK >= clockEvery || openOK >= clockEvery {
		t.Errorf("after the hard time: %d seals and %d opens went through, want < %d each", sealOK, openOK, clockEvery)
	}
	if !o.Expired() || !in.Expired() {
		t.Error("Expired false after the hard time")
	}
}

func TestZero(t *testing.T) {
	o, in := pair(t, SAConfig{Suite: SuiteAES128GCM16})
	p := sealed(t, o, []byte("before"))
	o.Zero()
	in.Zero()
	for _, k := range [][]byte{o.keymat, in.keymat} {
		if !bytes.Equal(k, make([]byte, len(k))) {
			t.Errorf("keymat not wiped: %x", k)
		}
	}
	if o.salt.Load() != 0 || in.salt.Load() != 0 {
		t.Error("salt not wiped")
	}
	if _, err := o.Seal(make([]byte, 64), 4, 4); err != ErrExpired {
		t.Errorf("seal after Zero: got %v, want %v", err, ErrExpired)
	}
	if _, _, err := in.Open(p); err != ErrExpired {
		t.Errorf("open after Zero: got %v, want %v", err, ErrExpired)
	}
	if !o.Expired() || !in.Expired() {
		t.Error("Expired false after Zero")
	}
	// crypto/gcm's key schedule and powers of H are wiped too: its Open
	// refuses even the packet it opened before, and Seal gives zeros
	if o.fast != nil {
		nonce := make([]byte, 12)
		if _, err := o.fast.Open(nil, nonce, make([]byte, 32), nil); err == nil {
			t.Error("the wiped AEAD opened a message")
		}
		if got := o.fast.Seal(nil, nonce, []byte("plaintext"), nil); !bytes.Equal(got, make([]byte, len(got))) {
			t.Errorf("the wiped AEAD sealed to %x", got)
		}
	}
}

// TestZeroWhileSealing: Zero races Seal and Open on other goroutines.
// Whatever Seal hands out (not ErrExpired) opens under an SA with the same
// keys, so no packet sealed with a half-wiped key leaves; whatever Open
// accepts is what was sealed. Run it with -race too.
func TestZeroWhileSealing(t *testing.T) {
	for round := range 20 {
		cfg := SAConfig{Suite: SuiteAES128GCM16, Keymat: testKeymat(SuiteAES128GCM16, byte(round))}
		o, in := pair(t, cfg)
		_, ref := pair(t, cfg) // never zeroed
		pre := make([][]byte, 64)
		for i := range pre {
			pre[i] = sealed(t, o, []byte(fmt.Sprintf("pre %d", i)))
		}
		var wg sync.WaitGroup
		var bad atomic.Int32
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				buf := make([]byte, HeaderLen+64, HeaderLen+64+MaxTrailerLen)
				copy(buf[HeaderLen:], fmt.Sprintf("payload %d", i))
				n, err := o.Seal(buf, 64, 4)
				if err != nil {
					continue
				}
				if _, _, err := ref.Open(buf[:n]); err != nil {
					bad.Add(1)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for _, p := range pre {
				if got, _, err := in.Open(append([]byte(nil), p...)); err == nil && !bytes.HasPrefix(got, []byte("pre ")) {
					bad.Add(1)
				}
			}
		}()
		o.Zero()
		in.Zero()
		wg.Wait()
		if bad.Load() != 0 {
			t.Fatalf("round %d: %d packets sealed or opened wrongly while the SA was zeroed", round, bad.Load())
		}
	}
}

func TestNewSAErrors(t *testing.T) {
	good := SAConfig{SPI: 1000, Suite: SuiteAES128GCM16, Keymat: testKeymat(SuiteAES128GCM16, 0)}
	for _, tc := range []struct {
		name string
		mod  func(*SAConfig)
		want string
	}{
		{"unknown suite", func(c *SAConfig) { c.Suite = 9 }, "unknown suite"},
		{"short keymat", func(c *SAConfig) { c.Keymat = c.Keymat[:16] }, "keymat is 16 bytes, want 20"},
		{"spi 0", func(c *SAConfig) { c.SPI = 0 }, "SPI 0"},
		{"small window", func(c *SAConfig) { c.ReplayWindow = 1024 }, "replay window 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.mod(&cfg)
			_, errO := NewOutboundSA(cfg)
			_, errI := NewInboundSA(cfg)
			if errI == nil || !strings.Contains(errI.Error(), tc.want) {
				t.Errorf("inbound: got %v, want %q", errI, tc.want)
			}
			if tc.name != "small window" && (errO == nil || !strings.Contains(errO.Error(), tc.want)) {
				t.Errorf("outbound: got %v, want %q", errO, tc.want)
			}
		})
	}
	// The SA keeps its own copy of the keymat.
	cfg := good
	cfg.Keymat = testKeymat(SuiteAES128GCM16, 0)
	o, in := pair(t, cfg)
	p := sealed(t, o, []byte("copy"))
	clear(cfg.Keymat)
	if _, _, err := in.Open(p); err != nil {
		t.Errorf("open after the caller wiped its keymat: %v", err)
	}
}

// TestConcurrent seals from several goroutines and opens from several, in
// whatever order they finish; run with -race.
func TestConcurrent(t *testing.T) {
	o, in := pair(t, SAConfig{Suite: SuiteChaCha20Poly1305, ESN: true})
	const workers, per = 4, 500
	ch := make(chan []byte, workers*per)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				buf := make([]byte, HeaderLen+64+MaxTrailerLen)
				binary.BigEndian.PutUint32(buf[HeaderLen:], uint32(w*per+i))
				n, err := o.Seal(buf, 64, NextHeaderIPv4)
				if err != nil {
					t.Error(err)
					return
				}
				ch <- buf[:n]
			}
		}()
	}
	wg.Wait()
	close(ch)
	var dups [][]byte
	seen := make([]bool, workers*per)
	var mu sync.Mutex
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				keep := clone(p)
				pl, _, err := in.Open(p)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[binary.BigEndian.Uint32(pl)] = true
				if len(dups) < 10 {
					dups = append(dups, keep)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i, ok := range seen {
		if !ok {
			t.Fatalf("payload %d never opened", i)
		}
	}
	// Duplicates opened concurrently: exactly none succeeds.
	for _, d := range dups {
		if wins, replays := openAtOnce(in, d, 3); wins != 0 || replays != 3 {
			t.Errorf("replayed packet: got %d opened, %d replays; want 0, 3", wins, replays)
		}
	}
	if st := in.Stats(); st.Packets != workers*per {
		t.Errorf("packets: got %d, want %d", st.Packets, workers*per)
	}
	// A fresh packet opened three times at once: exactly one copy is
	// taken, however the opens interleave (the window's check and its
	// update are one step).
	for range 200 {
		buf := make([]byte, HeaderLen+64+MaxTrailerLen)
		n, err := o.Seal(buf, 64, NextHeaderIPv4)
		if err != nil {
			t.Fatal(err)
		}
		wins, replays := openAtOnce(in, buf[:n], 3)
		if wins != 1 || replays != 2 {
			t.Fatalf("a fresh packet opened three times at once: %d opened, %d replays; want 1, 2", wins, replays)
		}
	}
}

// openAtOnce opens n copies of pkt from n goroutines released together
// and counts the opens that succeeded and those refused as replays.
func openAtOnce(in *InboundSA, pkt []byte, n int) (wins, replays int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		c := clone(pkt)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, err := in.Open(c)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else if errors.Is(err, ErrReplay) {
				replays++
			}
		}()
	}
	close(start)
	wg.Wait()
	return wins, replays
}

func TestClassifyAndParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want PacketKind
	}{
		{"keepalive", []byte{0xff}, KindKeepalive},
		{"one other byte", []byte{0x00}, KindInvalid},
		{"empty", nil, KindInvalid},
		{"three bytes", []byte{1, 2, 3}, KindInvalid},
		{"marker only", []byte{0, 0, 0, 0}, KindInvalid},
		{"ike", append([]byte{0, 0, 0, 0}, make([]byte, 28)...), KindIKE},
		{"esp spi 1", []byte{0, 0, 0, 1}, KindESP},
		{"zeros are IKE", make([]byte, 40), KindIKE},
		{"esp full", append([]byte{0xc0, 1, 2, 3}, make([]byte, 40)...), KindESP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.in); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// ParseHeader on the RFC 7634 Appendix A packet.
	pkt := []byte{1, 2, 3, 4, 0, 0, 0, 5, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17}
	pkt = append(pkt, make([]byte, 20)...)
	h, err := ParseHeader(pkt)
	if want := (Header{SPI: 0x01020304, SeqLow: 5, IV: 0x1011121314151617}); err != nil || h != want {
		t.Errorf("got %+v, %v; want %+v", h, err, want)
	}
	if _, err := ParseHeader(pkt[:MinPacketLen-1]); err != ErrTruncated {
		t.Errorf("short: got %v, want %v", err, ErrTruncated)
	}
}

func TestPadLen(t *testing.T) {
	for n, want := range []int{2, 1, 0, 3, 2, 1, 0, 3} {
		if got := PadLen(n); got != want {
			t.Errorf("PadLen(%d): got %d, want %d", n, got, want)
		}
		if got := SealedLen(n) - HeaderLen - n - ICVLen - 2; got != want {
			t.Errorf("SealedLen(%d): got %d padding, want %d", n, got, want)
		}
	}
}

func TestWiresharkSA(t *testing.T) {
	cfg := SAConfig{SPI: 0xc0ffee01, Suite: SuiteAES128GCM16, Keymat: testKeymat(SuiteAES128GCM16, 0)}
	o, in := pair(t, cfg)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.2")
	want := `"IPv4","192.0.2.1","198.51.100.2","0xc0ffee01","AES-GCM with 16 octet ICV [RFC4106]","0x000102030405060708090a0b0c0d0e0f10111213","NULL",""`
	if got := o.WiresharkSA(a, b); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := in.WiresharkSA(netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")); !strings.HasPrefix(got, `"IPv6","2001:db8::1","2001:db8::2",`) {
		t.Errorf("ipv6: got %s", got)
	}
	cc := SAConfig{SPI: 7, Suite: SuiteChaCha20Poly1305, Keymat: testKeymat(SuiteChaCha20Poly1305, 0)}
	oc, _ := pair(t, cc)
	if got := oc.WiresharkSA(a, b); !strings.Contains(got, `"ChaCha20 with Poly1305 [RFC7634]"`) {
		t.Errorf("chacha: got %s", got)
	}
}

// TestImplementationsAgree: an SA on crypto/gcm's assembly and one on
// crypto/aes's GCM open each other's packets, both ways, for both AES
// suites, with and without ESN; the SAs name their implementations.
func TestImplementationsAgree(t *testing.T) {
	require.That(t, gcm.Accelerated(), "crypto/gcm's assembly does not run on this processor")
	for _, s := range []Suite{SuiteAES128GCM16, SuiteAES256GCM16} {
		for _, esn := range []bool{false, true} {
			cfg := SAConfig{SPI: 0xc0010203, Suite: s, ESN: esn, Keymat: testKeymat(s, 7)}
			fastOut, fastIn := pair(t, cfg)
			std, err := gcm.NewStdlib(cfg.Keymat[:s.KeyLen()])
			if err != nil {
				t.Fatal(err)
			}
			stdOut, stdIn := &OutboundSA{}, &InboundSA{}
			stdOut.init2(&cfg, std, "stdlib")
			stdOut.setMax()
			stdIn.init2(&cfg, std, "stdlib")
			if stdIn.replay, err = newReplayWindow(0); err != nil {
				t.Fatal(err)
			}
			if fastOut.Implementation() != "vaes" || fastOut.fast == nil || stdOut.fast != nil {
				t.Fatalf("%v: the SAs did not get the implementations asked for (%q)", s, fastOut.Implementation())
			}
			for _, n := range []int{0, 1, 15, 16, 100, 1400, 1500, 2100, 9000} {
				payload := bytes.Repeat([]byte{byte(n)}, n)
				for _, way := range []struct {
					out *OutboundSA
					in  *InboundSA
				}{{fastOut, stdIn}, {stdOut, fastIn}} {
					got, _, err := way.in.Open(sealed(t, way.out, payload))
					if err != nil || !bytes.Equal(got, payload) {
						t.Fatalf("%v esn=%v %d bytes: %v", s, esn, n, err)
					}
				}
			}
		}
	}
	if o, _ := pair(t, SAConfig{Suite: SuiteChaCha20Poly1305}); o.Implementation() != "x/crypto" {
		t.Errorf("chacha20poly1305 SA: implementation %q, want x/crypto", o.Implementation())
	}
}
