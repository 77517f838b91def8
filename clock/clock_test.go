package clock

import (
	"testing"
	"time"
)

func TestManualRunsDueFunctionsInOrder(t *testing.T) {
	start := time.Unix(1000, 0)
	c := NewManual(start)
	var got []string
	var at []time.Duration
	rec := func(name string) func() {
		return func() { got = append(got, name); at = append(at, c.Now().Sub(start)) }
	}
	c.AfterFunc(3*time.Second, rec("c"))
	c.AfterFunc(time.Second, rec("a"))
	stopped := c.AfterFunc(2*time.Second, rec("never"))
	c.AfterFunc(time.Second, rec("b")) // same time as a: scheduled later, runs later
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop: want true once, then false")
	}
	c.Advance(2 * time.Second)
	if len(got) != 2 || got[0] != "a" || got[1] != "b" || at[0] != time.Second {
		t.Fatalf("after 2s: ran %v at %v, want [a b] at 1s", got, at)
	}
	if n := c.Pending(); n != 1 {
		t.Errorf("Pending = %d, want 1", n)
	}
	c.Advance(2 * time.Second)
	if len(got) != 3 || got[2] != "c" || at[2] != 3*time.Second {
		t.Fatalf("after 4s: ran %v at %v, want c at 3s", got, at)
	}
	if c.Now().Sub(start) != 4*time.Second {
		t.Errorf("Now = %v, want start+4s", c.Now().Sub(start))
	}
}

func TestManualTimerScheduledByTimer(t *testing.T) {
	c := NewManual(time.Unix(0, 0))
	n := 0
	var tick func()
	tick = func() {
		n++
		c.AfterFunc(time.Second, tick)
	}
	c.AfterFunc(time.Second, tick)
	c.Advance(5 * time.Second)
	if n != 5 {
		t.Errorf("a timer rescheduling itself every second ran %d times in 5s, want 5", n)
	}
}

func TestSystem(t *testing.T) {
	done := make(chan struct{})
	Or(nil).AfterFunc(time.Millisecond, func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("System.AfterFunc did not run")
	}
}
