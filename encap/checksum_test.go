package encap

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/vxswitch/vxswitch/internal/require"
)

// refSum is the RFC 1071 definition, word by word with end-around carry,
// odd trailing byte padded with zero on the right.
func refSum(b []byte, initial uint16) uint16 {
	sum := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
		sum = sum&0xffff + sum>>16
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

func TestChecksum(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		initial uint16
		want    uint16
	}{
		// RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
		{"rfc1071 example", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0, 0xddf2},
		{"empty", nil, 0, 0},
		{"empty with initial", nil, 0x1234, 0x1234},
		{"one byte is the high half", []byte{0xab}, 0, 0xab00},
		{"three bytes", []byte{0x12, 0x34, 0x56}, 0, 0x1234 + 0x5600},
		{"carry folds", []byte{0xff, 0xff, 0x00, 0x01}, 0, 0x0001},
		{"all ones stays ffff", []byte{0xff, 0xff, 0xff, 0xff}, 0, 0xffff},
		{"initial carries", []byte{0x80, 0x00}, 0x8000, 0x0001},
		// Wikipedia's IPv4 header with the checksum field zeroed sums to
		// ~0xb861 = 0x479e.
		{"ipv4 header", []byte{
			0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
		}, 0, 0x479e},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Checksum(tt.b, tt.initial); got != tt.want {
				t.Errorf("Checksum(% x, %#04x) = %#04x, want %#04x", tt.b, tt.initial, got, tt.want)
			}
		})
	}
}

// TestChecksumMatchesReference compares the unrolled sum with the
// definition for every length up to 200 (all unroll tails) and random data.
func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 200)
	for n := 0; n <= len(buf); n++ {
		for range 20 {
			for i := range buf[:n] {
				buf[i] = byte(r.Uint32())
			}
			init := uint16(r.Uint32())
			if got, want := Checksum(buf[:n], init), refSum(buf[:n], init); got != want {
				t.Fatalf("len %d: Checksum = %#04x, want %#04x", n, got, want)
			}
		}
	}
	// All ones, long: exercises many carries in the 64-bit accumulator.
	ones := make([]byte, 65536)
	for i := range ones {
		ones[i] = 0xff
	}
	if got, want := Checksum(ones, 0xffff), refSum(ones, 0xffff); got != want {
		t.Fatalf("64 KiB of ff: got %#04x, want %#04x", got, want)
	}
}

func TestChecksumCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 64)
	for range 1000 {
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		split := 2 * r.IntN(len(buf)/2+1) // even split keeps word alignment
		got := ChecksumCombine(Checksum(buf[:split], 0), Checksum(buf[split:], 0))
		if want := Checksum(buf, 0); got != want {
			t.Fatalf("split %d: combine = %#04x, want %#04x", split, got, want)
		}
	}
	if got := ChecksumCombine(0xffff, 0xffff); got != 0xffff {
		t.Errorf("ChecksumCombine(ffff, ffff) = %#04x, want 0xffff", got)
	}
	if got := ChecksumCombine(0x8000, 0x8000); got != 0x0001 {
		t.Errorf("ChecksumCombine(8000, 8000) = %#04x, want 0x0001", got)
	}
}

// TestChecksumUpdate checks RFC 1624 incremental update against a full
// recomputation after changing one 16-bit word.
func TestChecksumUpdate(t *testing.T) {
	tests := []struct {
		name     string
		old, new uint16
	}{
		{"zero to value", 0x0000, 0x1234},
		{"value to zero", 0x1234, 0x0000},
		{"to ffff", 0x1234, 0xffff},
		{"from ffff", 0xffff, 0x0001},
		{"mss 1460 to 1360", 1460, 1360},
		{"same", 0xabcd, 0xabcd},
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				buf := make([]byte, 2+2*r.IntN(30))
				for i := range buf {
					buf[i] = byte(r.Uint32())
				}
				w := 2 * r.IntN(len(buf)/2)
				binary.BigEndian.PutUint16(buf[w:], tt.old)
				field := ^Checksum(buf, 0)
				binary.BigEndian.PutUint16(buf[w:], tt.new)
				if Checksum(buf, 0) == 0 {
					// All-zero data: +0 and -0 are indistinguishable; no
					// real header (the pseudo-header is never zero) gets here.
					continue
				}
				got := ChecksumUpdate(field, tt.old, tt.new)
				// Verification is what matters: the data plus the new
				// field must sum to all ones.
				if s := ChecksumCombine(Checksum(buf, 0), got); s != 0xffff {
					t.Fatalf("data % x: updated field %#04x does not verify (sum %#04x)", buf, got, s)
				}
			}
		})
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	src := []byte{192, 0, 2, 1}
	dst := []byte{198, 51, 100, 2}
	// By hand: c000 + 0201 + c633 + 6402 + 0011 + 001c.
	want := refSum([]byte{0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x02, 0x00, 0x11, 0x00, 0x1c}, 0)
	if got := PseudoHeaderChecksum(ProtoUDP, src, dst, 28); got != want {
		t.Errorf("PseudoHeaderChecksum = %#04x, want %#04x", got, want)
	}
}

func TestChecksumNoAllocs(t *testing.T) {
	buf := make([]byte, 1500)
	if n := testing.AllocsPerRun(100, func() { _ = Checksum(buf, 0) }); n != 0 {
		t.Errorf("Checksum allocs = %v, want 0", n)
	}
}

// TestChecksumAsmAgrees compares the assembly (checksumAsm, short lengths
// included) with checksumWords over every length to 3000 at odd and even offsets,
// random lengths to 200 KB (several 64 KB pieces), all-0xff data (sums at
// the one's-complement wrap) and random initial sums.
func TestChecksumAsmAgrees(t *testing.T) {
	require.That(t, haveSumAsm, "no AVX-512 here (or purego, or GODEBUG=cpu.avx512=off): Checksum is checksumWords")
	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 200<<10+1)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	ones := bytes.Repeat([]byte{0xff}, 70000)
	check := func(b []byte, initial uint16) {
		t.Helper()
		if got, want := checksumAsm(b, initial), checksumWords(b, initial); got != want {
			t.Fatalf("%d bytes, initial %#04x: assembly %#04x, checksumWords %#04x", len(b), initial, got, want)
		}
		if got, want := Checksum(b, initial), checksumWords(b, initial); got != want {
			t.Fatalf("%d bytes, initial %#04x: Checksum %#04x, checksumWords %#04x", len(b), initial, got, want)
		}
	}
	for n := 0; n <= 3000; n++ {
		check(buf[:n], 0)
		check(buf[1:1+n], uint16(rng.Uint32()))
		check(ones[:n], 0)
		check(ones[:n], 0xffff)
		check(make([]byte, n), 0)
	}
	for range 300 {
		n := rng.IntN(len(buf))
		check(buf[:n], uint16(rng.Uint32()))
	}
	check(ones, 0)
	check(buf, 0)
}

func FuzzChecksumAsm(f *testing.F) {
	f.Add([]byte("a checksum over an odd number of bytes"), uint16(0), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, initial uint16, repeat uint8) {
		require.That(t, haveSumAsm, "no AVX-512 here (or purego, or GODEBUG=cpu.avx512=off): Checksum is checksumWords")
		// Repeat the input so that the fuzzer reaches the 64-byte and
		// 128-byte loops and more than one 64 KB piece.
		data := bytes.Repeat(b, int(repeat)%64+1)
		if len(b) > 0 && repeat > 200 {
			data = bytes.Repeat(b, 70000/len(b)+1)
		}
		if got, want := checksumAsm(data, initial), checksumWords(data, initial); got != want {
			t.Fatalf("%d bytes, initial %#04x: assembly %#04x, checksumWords %#04x", len(data), initial, got, want)
		}
	})
}
