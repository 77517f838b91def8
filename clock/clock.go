// Package clock is the module's one source of time. Everything that keeps
// time — reassembly timeouts (encap), FDB aging (fdb), SA lifetimes
// (crypto), IKE retransmission and DPD (crypto/ike), and the data plane's
// SA grace periods and path-MTU timers (dataplane) — takes a Clock, so that
// tests drive a Manual one instead of sleeping.
//
// System is stateless and free to copy. Manual is safe for concurrent use;
// the functions its AfterFunc schedules run on the goroutine that moves the
// clock (Advance or Set), after the clock's lock is released, in the order
// they fall due.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and runs functions later.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once, d from now, on a goroutine of the clock's
	// choosing (the timer's own for System, the one that advances a Manual
	// clock). The Timer stops it.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a function scheduled by AfterFunc.
type Timer interface {
	// Stop cancels the call; false if it already ran or was stopped.
	Stop() bool
}

// System is the wall clock (with its monotonic reading) and the runtime's
// timers.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (System) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Or returns c, or System when c is nil: the default of every Config.Clock.
func Or(c Clock) Clock {
	if c == nil {
		return System{}
	}
	return c
}

// Manual is a Clock that moves only when told to, for tests and
// simulations.
type Manual struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*manualTimer
}

type manualTimer struct {
	c    *Manual
	when time.Time
	seq  uint64 // scheduling order, to break ties
	f    func()
	done bool
}

// NewManual returns a Manual clock that reads start until moved.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

// Now returns the clock's reading.
func (c *Manual) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f for d after the current reading; it runs when the
// clock is moved to or past that time. d <= 0 runs it at the next move.
func (c *Manual) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, when: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Stop implements Timer.
func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	return true
}

// Advance moves the clock by d, running every function that falls due on
// the way, each with the clock reading its due time.
func (c *Manual) Advance(d time.Duration) {
	c.Set(c.Now().Add(d))
}

// Set moves the clock to t (never backwards for timers: a function due
// before t runs with the clock at its due time, then the clock reads t).
func (c *Manual) Set(t time.Time) {
	for {
		c.mu.Lock()
		next := c.nextDueLocked(t)
		if next == nil {
			c.now = t
			c.mu.Unlock()
			return
		}
		next.done = true
		if next.when.After(c.now) {
			c.now = next.when
		}
		c.mu.Unlock()
		next.f()
	}
}

// Pending is how many scheduled functions have not run or been stopped.
func (c *Manual) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// nextDueLocked removes finished timers and returns the earliest one due
// at or before t, or nil.
func (c *Manual) nextDueLocked(t time.Time) *manualTimer {
	live := c.timers[:0]
	for _, x := range c.timers {
		if !x.done {
			live = append(live, x)
		}
	}
	clear(c.timers[len(live):])
	c.timers = live
	sort.Slice(live, func(i, j int) bool {
		if !live[i].when.Equal(live[j].when) {
			return live[i].when.Before(live[j].when)
		}
		return live[i].seq < live[j].seq
	})
	if len(live) > 0 && !live[0].when.After(t) {
		return live[0]
	}
	return nil
}
