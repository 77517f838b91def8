package crypto

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestReplayWireGuardVectors runs the anti-replay vectors of wireguard-go
// replay/replay_test.go (themselves ported from the Linux kernel's
// WireGuard selftest) against replayWindow, for several window sizes.
// wireguard-go accepts last-n <= windowSize; ours accepts last-n < W, so
// windowSize is W-1 here. As in wireguard-go, counter 0 starts out valid
// (InboundSA marks it seen, since ESP never sends 0) and the limit check
// sits in the adaptor T, as ValidateCounter's limit argument does.
func TestReplayWireGuardVectors(t *testing.T) {
	const rejectAfterMessages = (1 << 64) - (1 << 4) - 1
	for _, size := range []int{4096, 4096 + 64*3, 8192, 65536} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			w, err := newReplayWindow(size)
			if err != nil {
				t.Fatal(err)
			}
			windowSize := uint64(size - 1)
			tLim := windowSize + 1
			testNumber := 0
			T := func(n uint64, want bool) {
				t.Helper()
				testNumber++
				if n >= rejectAfterMessages {
					if want {
						t.Fatalf("test %d: counter %d over the limit cannot be accepted", testNumber, n)
					}
					return
				}
				checkErr := w.check(n)
				updErr := w.update(n)
				if checkErr != updErr {
					t.Fatalf("test %d: check(%d) = %v but update = %v", testNumber, n, checkErr, updErr)
				}
				if got := updErr == nil; got != want {
					t.Fatalf("test %d: counter %d: got accepted=%v (%v), want %v", testNumber, n, got, updErr, want)
				}
			}

			w.reset()
			T(0, true)                      /*  1 */
			T(1, true)                      /*  2 */
			T(1, false)                     /*  3 */
			T(9, true)                      /*  4 */
			T(8, true)                      /*  5 */
			T(7, true)                      /*  6 */
			T(7, false)                     /*  7 */
			T(tLim, true)                   /*  8 */
			T(tLim-1, true)                 /*  9 */
			T(tLim-1, false)                /* 10 */
			T(tLim-2, true)                 /* 11 */
			T(2, true)                      /* 12 */
			T(2, false)                     /* 13 */
			T(tLim+16, true)                /* 14 */
			T(3, false)                     /* 15 */
			T(tLim+16, false)               /* 16 */
			T(tLim*4, true)                 /* 17 */
			T(tLim*4-(tLim-1), true)        /* 18 */
			T(10, false)                    /* 19 */
			T(tLim*4-tLim, false)           /* 20 */
			T(tLim*4-(tLim+1), false)       /* 21 */
			T(tLim*4-(tLim-2), true)        /* 22 */
			T(tLim*4+1-tLim, false)         /* 23 */
			T(0, false)                     /* 24 */
			T(rejectAfterMessages, false)   /* 25 */
			T(rejectAfterMessages-1, true)  /* 26 */
			T(rejectAfterMessages, false)   /* 27 */
			T(rejectAfterMessages-1, false) /* 28 */
			T(rejectAfterMessages-2, true)  /* 29 */
			T(rejectAfterMessages+1, false) /* 30 */
			T(rejectAfterMessages+2, false) /* 31 */
			T(rejectAfterMessages-2, false) /* 32 */
			T(rejectAfterMessages-3, true)  /* 33 */
			T(0, false)                     /* 34 */

			// Bulk test 1
			w.reset()
			testNumber = 0
			for i := uint64(1); i <= windowSize; i++ {
				T(i, true)
			}
			T(0, true)
			T(0, false)

			// Bulk test 2
			w.reset()
			testNumber = 0
			for i := uint64(2); i <= windowSize+1; i++ {
				T(i, true)
			}
			T(1, true)
			T(0, false)

			// Bulk test 3
			w.reset()
			testNumber = 0
			for i := windowSize + 1; i > 0; i-- {
				T(i, true)
			}

			// Bulk test 4
			w.reset()
			testNumber = 0
			for i := windowSize + 2; i > 1; i-- {
				T(i, true)
			}
			T(0, false)

			// Bulk test 5
			w.reset()
			testNumber = 0
			for i := windowSize; i > 0; i-- {
				T(i, true)
			}
			T(windowSize+1, true)
			T(0, false)

			// Bulk test 6
			w.reset()
			testNumber = 0
			for i := windowSize; i > 0; i-- {
				T(i, true)
			}
			T(0, true)
			T(windowSize+1, true)
		})
	}
}

func TestReplayWindowSize(t *testing.T) {
	for _, tc := range []struct {
		size       int
		wantErr    bool
		wantBlocks int
	}{
		{0, false, 128}, // default 4096: 64 blocks behind + 1, rounded up
		{4096, false, 128},
		{4095, true, 0},
		{64, true, 0},
		{4033 + 64*63, false, 128},
		{8192, false, 256},
		{MaxReplayWindow, false, 1 << 15},
		{MaxReplayWindow + 1, true, 0},
	} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			w, err := newReplayWindow(tc.size)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got err %v, want error %v", err, tc.wantErr)
			}
			if err == nil && len(w.ring) != tc.wantBlocks {
				t.Errorf("got %d blocks, want %d", len(w.ring), tc.wantBlocks)
			}
		})
	}
}

// TestReplayInferESN checks RFC 4303 Appendix A3 high-half inference with
// a 4096-packet window around the 2^32 boundary and at the ends of the
// 64-bit space.
func TestReplayInferESN(t *testing.T) {
	const W = 4096
	const e = uint64(1) << 32
	for _, tc := range []struct {
		name   string
		last   uint64
		lo     uint32
		want   uint64
		wantOK bool
	}{
		// Case A: Tl >= W-1, the window lies inside one epoch.
		{"A/at top", e - 1, 0xffffffff, e - 1, true},
		{"A/next wraps", e - 1, 0, e, true},
		{"A/ahead after wrap", e - 1, 100, e + 100, true},
		{"A/window bottom", e - 1, uint32(e - W), e - W, true},
		{"A/below bottom is the next epoch", e - 1, uint32(e - W - 1), 2*e - W - 1, true},
		{"A/mid epoch 7", 7*e + 1<<31, 1 << 30, 8*e + 1<<30, true},
		{"A/mid epoch 7 in window", 7*e + 1<<31, 1<<31 - 5, 7*e + 1<<31 - 5, true},
		{"A/exact Tl = W-1", W - 1, 0, 0, true},
		{"A/top of the 64-bit space", 1<<64 - 1, 0, 0, false},
		{"A/top of the 64-bit space, in window", 1<<64 - 1, 0xfffffff0, 1<<64 - 16, true},
		// Case B: Tl < W-1, the window straddles the boundary below Th.
		{"B/just wrapped, old epoch", e + 5, 0xfffffff0, e - 16, true},
		{"B/just wrapped, bottom", e + 5, uint32(e - W + 6), e - W + 6, true},
		{"B/just wrapped, under bottom is ahead", e + 5, uint32(e - W + 5), 2*e - W + 5, true},
		{"B/just wrapped, new", e + 5, 6, e + 6, true},
		{"B/just wrapped, behind in new epoch", e + 5, 3, e + 3, true},
		{"B/first epoch, high would be -1", 5, 0xfffffff0, 0, false},
		{"B/fresh SA, seq 1", 0, 1, 1, true},
		{"B/fresh SA, seq 0", 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := newReplayWindow(W)
			if err != nil {
				t.Fatal(err)
			}
			w.last.Store(tc.last)
			got, ok := w.infer(tc.lo)
			if ok != tc.wantOK || (ok && got != tc.want) {
				t.Errorf("infer(0x%x) with last 0x%x: got 0x%x, %v; want 0x%x, %v", tc.lo, tc.last, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestReplayCheckDoesNotMove pins that check is read-only.
func TestReplayCheckDoesNotMove(t *testing.T) {
	w, _ := newReplayWindow(4096)
	w.markZero()
	for _, s := range []uint64{1, 100, 1 << 40} {
		if err := w.check(s); err != nil {
			t.Fatalf("check(%d): %v", s, err)
		}
	}
	if w.last.Load() != 0 {
		t.Errorf("last: got %d, want 0", w.last.Load())
	}
	if err := w.check(0); err != ErrReplay {
		t.Errorf("check(0): got %v, want %v", err, ErrReplay)
	}
	if err := w.update(5000); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		seq  uint64
		want error
	}{
		{5000, ErrReplay}, {4999, nil}, {905, nil}, {904, ErrTooOld}, {5001, nil}, {0, ErrTooOld},
	} {
		if got := w.check(tc.seq); got != tc.want {
			t.Errorf("check(%d) after 5000: got %v, want %v", tc.seq, got, tc.want)
		}
	}
}

// TestReplayAgainstModel compares the ring with a plain set of seen
// numbers over random walks with jumps, reorders and duplicates.
func TestReplayAgainstModel(t *testing.T) {
	for _, size := range []int{4096, 4096 + 100, 10000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			w, _ := newReplayWindow(size)
			r := rand.New(rand.NewPCG(uint64(size), 7))
			seen := map[uint64]bool{}
			var last uint64
			for i := 0; i < 200000; i++ {
				var s uint64
				switch r.IntN(10) {
				case 0: // jump ahead
					s = last + 1 + r.Uint64N(3*uint64(size))
				case 1: // far behind
					s = last - min(last, r.Uint64N(3*uint64(size)))
				default: // near the top, both sides
					s = last + r.Uint64N(200) - min(last, r.Uint64N(uint64(size)+10))
				}
				want := error(nil)
				switch {
				case s > last:
				case last-s >= uint64(size):
					want = ErrTooOld
				case seen[s]:
					want = ErrReplay
				}
				if got := w.check(s); got != want {
					t.Fatalf("step %d: check(%d) with last %d: got %v, want %v", i, s, last, got, want)
				}
				if got := w.update(s); got != want {
					t.Fatalf("step %d: update(%d) with last %d: got %v, want %v", i, s, last, got, want)
				}
				if want == nil {
					seen[s] = true
					last = max(last, s)
				}
			}
		})
	}
}
