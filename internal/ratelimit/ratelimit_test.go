package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := Limiter{Interval: time.Second}
	steps := []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},
		{100 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 2},
		{1500 * time.Millisecond, false, 0},
		{5 * time.Second, true, 1},
	}
	for _, s := range steps {
		ok, sup := l.Allow(int64(s.at))
		if ok != s.ok || sup != s.suppressed {
			t.Errorf("at %v: got (%v, %d), want (%v, %d)", s.at, ok, sup, s.ok, s.suppressed)
		}
	}
	var z Limiter // zero value: one per second
	if ok, _ := z.Allow(0); !ok {
		t.Error("zero Limiter refused its first event")
	}
	if ok, _ := z.Allow(int64(500 * time.Millisecond)); ok {
		t.Error("zero Limiter allowed a second event within a second")
	}
}

func TestBucket(t *testing.T) {
	b := Bucket{Rate: 100, Burst: 10}
	now := int64(time.Second)
	n := 0
	for range 50 {
		if b.Allow(now) {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("a burst of 50 at once: %d allowed, want the burst of 10", n)
	}
	n = 0
	for i := range 1000 { // one second, one event a millisecond
		if b.Allow(now + int64(i+1)*int64(time.Millisecond)) {
			n++
		}
	}
	if n < 95 || n > 105 {
		t.Errorf("one second at 1000/s: %d allowed, want about the rate of 100", n)
	}
	var open Bucket
	if !open.Allow(now) {
		t.Error("a zero Rate refused")
	}
	if got := testing.AllocsPerRun(100, func() { b.Allow(now) }); got != 0 {
		t.Errorf("%v allocations", got)
	}
}
