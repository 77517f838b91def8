package fdb

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// cpuTimer measures the CPU time of a benchmark's goroutine, pinned to its
// thread. The machine these run on is shared with other work, so wall time
// per op also counts the time the thread waited for a core; cpu-ns/op does
// not (cache and TLB pollution by the others remains).
type cpuTimer struct{ start int64 }

func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// startCPU pins the goroutine to its thread and starts measuring; call it
// after b.ResetTimer and stop it when the loop ends.
func startCPU() cpuTimer {
	runtime.LockOSThread()
	return cpuTimer{threadCPU()}
}

func (c cpuTimer) stop(b *testing.B) {
	d := threadCPU() - c.start
	runtime.UnlockOSThread()
	b.ReportMetric(float64(d)/float64(b.N), "cpu-ns/op")
}
