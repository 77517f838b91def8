// Package require decides whether a test whose prerequisite is missing
// (a CPU feature, root, a tool) skips or fails: it fails where
// VXSWITCH_REQUIRE_ALL is set, as CI sets it, so that a machine that
// should have run the code cannot pass having tested nothing.
//
// It keeps no state, allocates only to report, and is safe for
// concurrent use.
package require

import (
	"os"
	"testing"
)

// All reports whether VXSWITCH_REQUIRE_ALL is set: missing prerequisites
// fail instead of skip.
func All() bool { return os.Getenv("VXSWITCH_REQUIRE_ALL") != "" }

// That skips t with why unless ok; under VXSWITCH_REQUIRE_ALL it fails t.
func That(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if All() {
		t.Fatalf("%s (VXSWITCH_REQUIRE_ALL is set: this machine must run it)", why)
	}
	t.Skip(why)
}
