package crypto

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

func TestSADB(t *testing.T) {
	var db SADB // zero value is ready
	if db.Lookup(1) != nil {
		t.Fatal("lookup in an empty SADB found something")
	}
	oldOut, oldIn := pair(t, SAConfig{Suite: SuiteAES128GCM16, SPI: 0x1001})
	newOut, newIn := pair(t, SAConfig{Suite: SuiteAES128GCM16, SPI: 0x1002, Keymat: testKeymat(SuiteAES128GCM16, 9)})
	if err := db.Add(oldIn); err != nil {
		t.Fatal(err)
	}
	_, dup := pair(t, SAConfig{Suite: SuiteChaCha20Poly1305, SPI: 0x1001})
	if err := db.Add(dup); !errors.Is(err, ErrSPIInUse) {
		t.Fatalf("duplicate SPI: got %v, want %v", err, ErrSPIInUse)
	}
	if got := db.Lookup(0x1001); got != oldIn {
		t.Fatalf("lookup: got %p, want %p", got, oldIn)
	}

	// Rekey: both SAs live; packets under either open.
	inflight := sealed(t, oldOut, []byte("old key, late"))
	if err := db.Add(newIn); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		want *InboundSA
	}{
		{"new", sealed(t, newOut, []byte("new key")), newIn},
		{"old", inflight, oldIn},
	} {
		pl, nh, sa, err := db.Open(tc.pkt)
		if err != nil || sa != tc.want || nh != NextHeaderIPv4 || !bytes.HasSuffix(pl, []byte("key")) && !bytes.HasSuffix(pl, []byte("late")) {
			t.Errorf("%s: got %q %d %p %v, want SA %p", tc.name, pl, nh, sa, err, tc.want)
		}
	}
	if got := db.Stats().SAs; got != 2 {
		t.Errorf("SAs: got %d, want 2", got)
	}

	// Remove zeroes the old SA; its packets are now unknown.
	late := sealed(t, oldOut, []byte("too late"))
	db.Remove(0x1001)
	db.Remove(0x1001) // twice is harmless
	if !oldIn.Expired() || !bytes.Equal(oldIn.keymat, make([]byte, len(oldIn.keymat))) {
		t.Error("Remove did not zero the SA")
	}
	if _, _, sa, err := db.Open(late); err != ErrUnknownSPI || sa != nil {
		t.Errorf("after remove: got %v, %p; want %v, nil", err, sa, ErrUnknownSPI)
	}
	if _, _, _, err := db.Open([]byte{1, 2, 3}); err != ErrTruncated {
		t.Errorf("short: got %v, want %v", err, ErrTruncated)
	}
	st := db.Stats()
	if st.UnknownSPI != 1 || st.Truncated != 1 || st.SAs != 1 {
		t.Errorf("stats: got %+v, want 1 unknown SPI, 1 truncated, 1 SA", st)
	}
	if got := len(db.SAs()); got != 1 {
		t.Errorf("SAs(): got %d, want 1", got)
	}

	// Lookup and Open allocate nothing.
	p := sealed(t, newOut, make([]byte, 200))
	work := make([]byte, len(p))
	if a := testing.AllocsPerRun(100, func() {
		copy(work, p)
		db.Lookup(0x1002)
		db.Open(work) // a replay after the first round: still no allocation
	}); a != 0 {
		t.Errorf("got %v allocs, want 0", a)
	}
}

// TestSADBConcurrent adds and removes SAs while readers look them up;
// run with -race.
func TestSADBConcurrent(t *testing.T) {
	var db SADB
	_, keep := pair(t, SAConfig{Suite: SuiteAES128GCM16, SPI: 1})
	if err := db.Add(keep); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if db.Lookup(1) != keep {
					t.Error("lost SA 1")
					return
				}
				db.Lookup(2)
			}
		}()
	}
	for i := range 200 {
		_, in := pair(t, SAConfig{Suite: SuiteAES128GCM16, SPI: 2, Keymat: testKeymat(SuiteAES128GCM16, byte(i))})
		if err := db.Add(in); err != nil {
			t.Fatal(err)
		}
		db.Remove(2)
	}
	close(stop)
	wg.Wait()
}
