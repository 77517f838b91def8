package fdb

import (
	"time"

	"github.com/vxswitch/vxswitch/encap"
)

// Clock is the source of time for aging. The table reads it only on Tick,
// Sweep, Entries and the locked learning path (a new MAC, a move), never per
// Lookup or per refresh; see the package documentation.
type Clock = encap.Clock

// RealClock is the wall clock (with its monotonic reading).
type RealClock = encap.SystemClock

// ManualClock is a Clock that moves only when told to, for tests and
// simulations. It is safe for concurrent use.
type ManualClock = encap.ManualClock

// NewManualClock returns a ManualClock that reads start until advanced.
func NewManualClock(start time.Time) *ManualClock { return encap.NewManualClock(start) }
