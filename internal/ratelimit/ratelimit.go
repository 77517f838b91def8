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
