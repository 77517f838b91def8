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
