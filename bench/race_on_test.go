//go:build race

package bench

// raceEnabled: the race detector's instrumentation allocates in
// synchronisation (the crypto worker pool), so allocation counts are only
// asserted without it, as the standard library does.
const raceEnabled = true
