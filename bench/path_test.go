package bench

import (
	"crypto/cipher"
	"fmt"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/crypto"
	"github.com/vxswitch/vxswitch/crypto/gcm"
	"github.com/vxswitch/vxswitch/dataplane"
	"github.com/vxswitch/vxswitch/dataplane/dptest"
	"github.com/vxswitch/vxswitch/encap"
	"golang.org/x/crypto/chacha20poly1305"
)

var (
	macA = encap.MAC{0x02, 0, 0, 0, 0, 0xa}
	macB = encap.MAC{0x02, 0, 0, 0, 0, 0xb}
)

const (
	batch       = 32   // frames per TAP read in the benchmark
	roundFrames = 1024 // frames of the path between two rounds of the bare cipher
)

// bareAEAD returns an AEAD of the suite with a zero key: the same
// implementation the path's SAs use (crypto/gcm, golang.org/x/crypto).
func bareAEAD(s crypto.Suite) cipher.AEAD {
	key := make([]byte, s.KeyLen())
	if s == crypto.SuiteChaCha20Poly1305 {
		a, _ := chacha20poly1305.New(key)
		return a
	}
	a, _ := gcm.New(key)
	return a
}

// bare is a bare AEAD Seal+Open, in place, of the ESP payloads the path
// sends for one frame: one packet's, or (a frame larger than the path
// carries) each fragment's.
type bare struct {
	aead       cipher.AEAD
	buf        []byte
	payloads   []int
	nonce, aad []byte
}

// newBare takes the sizes of the ESP packets the path sent for a frame.
func newBare(a cipher.AEAD, packets []int) *bare {
	b := &bare{aead: a, nonce: make([]byte, a.NonceSize()), aad: make([]byte, 12)}
	for _, n := range packets {
		b.payloads = append(b.payloads, n-crypto.HeaderLen-a.Overhead())
		if len(b.buf) < n {
			b.buf = make([]byte, n)
		}
	}
	return b
}

func (b *bare) run(n int) {
	for i := 0; i < n; i++ {
		for _, payload := range b.payloads {
			ct := b.aead.Seal(b.buf[:0], b.nonce, b.buf[:payload], b.aad)
			if _, err := b.aead.Open(ct[:0], b.nonce, ct, b.aad); err != nil {
				panic(err)
			}
		}
	}
}

// BenchmarkPath runs frames through two switches back to back: A's TAP
// path (learn, look up, encap, fragment at a 1500-byte path, seal) and B's
// receive path (open, replay check, reassemble, decap, learn, deliver). It
// reports frames/s and, for ESP, the ratio of a bare AEAD Seal+Open of the
// same ESP packets (two for a frame that a 1500-byte path carries only as
// fragments), timed in the same run, to the whole path (1.0: the path
// costs no more than its cipher).
func BenchmarkPath(b *testing.B) {
	type mode struct {
		name  string
		mode  dataplane.Mode
		suite crypto.Suite
	}
	modes := []mode{{"plain", dataplane.ModePlain, 0}}
	for _, s := range crypto.Suites {
		modes = append(modes, mode{s.String(), dataplane.ModeESP, s})
	}
	for _, m := range modes {
		for _, size := range []int{64, 1400, 1514, 9014} {
			b.Run(fmt.Sprintf("%s/%d", m.name, size), func(b *testing.B) {
				p, err := dptest.New(m.mode, m.suite, 1500)
				if err != nil {
					b.Fatal(err)
				}
				frame := dptest.Frame(macB, macA, size)
				p.Reply(dptest.Frame(macA, macB, 64), 1) // A learns macB: unicast from here on
				p.Send(frame, batch)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				var ref *bare
				if m.mode == dataplane.ModeESP {
					ref = newBare(bareAEAD(m.suite), p.Datagrams(frame))
				}
				// The path and the bare AEAD alternate, a round of batches
				// each, so a noisy machine slows both alike; only the path
				// is in ns/op. (Stopping the timer reads memory statistics,
				// stopping the world: once per round, not per batch.)
				var path, cipherOnly time.Duration
				b.ResetTimer()
				for sent := 0; sent < b.N; {
					round := min(roundFrames, b.N-sent)
					t0 := time.Now()
					for done := 0; done < round; done += batch {
						n := min(batch, round-done)
						if got := p.Send(frame, n); got != n {
							b.Fatalf("delivered %d of %d frames", got, n)
						}
					}
					path += time.Since(t0)
					sent += round
					if ref != nil {
						b.StopTimer()
						t1 := time.Now()
						ref.run(round)
						cipherOnly += time.Since(t1)
						b.StartTimer()
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/path.Seconds(), "frames/s")
				if ref != nil {
					b.ReportMetric(float64(cipherOnly)/float64(path), "bare/path")
				}
			})
		}
	}
}

// TestPathNoAllocs asserts that the whole path allocates nothing per frame
// after warm-up, for every mode and for fragmenting sizes.
func TestPathNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, m := range []struct {
		mode  dataplane.Mode
		suite crypto.Suite
	}{{dataplane.ModePlain, 0}, {dataplane.ModeESP, crypto.SuiteAES128GCM16}, {dataplane.ModeESP, crypto.SuiteChaCha20Poly1305}} {
		for _, size := range []int{64, 1514, 9014} {
			p, err := dptest.New(m.mode, m.suite, 1400)
			if err != nil {
				t.Fatal(err)
			}
			frame := dptest.Frame(macB, macA, size)
			p.Reply(dptest.Frame(macA, macB, 64), 1)
			if got := p.Send(frame, batch); got != batch {
				t.Fatalf("%v %v %d bytes: delivered %d of %d frames", m.mode, m.suite, size, got, batch)
			}
			if allocs := testing.AllocsPerRun(20, func() { p.Send(frame, batch) }); allocs != 0 {
				t.Errorf("%v %v %d bytes: %v allocs per batch of %d, want 0", m.mode, m.suite, size, allocs, batch)
			}
		}
	}
}
