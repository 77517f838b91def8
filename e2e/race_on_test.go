//go:build race

package e2e

// raceFlags builds the vxswitch under test with the race detector when the
// tests themselves run with it, so races in the real binary fail CI too.
var raceFlags = []string{"-race"}
