// Package ratelimit holds the module's one rate limiter, for log lines
// about events that can come at packet rate (a dropped packet, a MAC that
// moves): one in each interval gets through, and the ones held back are
// counted so that the next line can say how many there were.
//
// A Limiter is safe for concurrent use and allocates nothing. Time comes
// from the caller, in nanoseconds on any monotonic scale (a Clock's
// UnixNano, or a table's own time), so tests need no sleeping.
package ratelimit

import (
	"sync"
	"time"
)

// Limiter lets one event through per Interval. The zero value allows one
// per second.
type Limiter struct {
	Interval time.Duration

	mu         sync.Mutex
	last       int64
	started    bool
	suppressed int
}

// Allow reports whether an event at now may be logged and, if so, how many
// were held back since the last one that was.
func (l *Limiter) Allow(now int64) (ok bool, suppressed int) {
	iv := l.Interval
	if iv <= 0 {
		iv = time.Second
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started && now-l.last < int64(iv) {
		l.suppressed++
		return false, 0
	}
	l.last, l.started = now, true
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// Bucket is a token bucket for packet rates: Rate events a second on
// average, up to Burst at once (a zero Burst means Rate). A zero Rate
// lets everything through. It is not safe for concurrent use (give each
// goroutine its own) and Allow allocates nothing.
type Bucket struct {
	Rate, Burst float64

	tokens float64
	last   int64
}

// Allow reports whether an event at now (nanoseconds, monotonic) fits.
func (b *Bucket) Allow(now int64) bool {
	if b.Rate <= 0 {
		return true
	}
	burst := b.Burst
	if burst <= 0 {
		burst = b.Rate
	}
	if b.last == 0 {
		b.tokens, b.last = burst, now
	}
	if d := now - b.last; d > 0 {
		b.tokens = min(burst, b.tokens+float64(d)*b.Rate/1e9)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}
