//go:build !linux

package link

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
)

var errNeedsLinux = fmt.Errorf("link: TAP ports and the batched underlay need Linux, not %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Listen opens the underlay; it needs Linux.
func Listen(UDPConfig) (Underlay, error) { return nil, errNeedsLinux }

// OpenTAP opens a TAP port; it needs Linux.
func OpenTAP(TAPConfig) (Port, error) { return nil, errNeedsLinux }

func routeMTU(netip.Addr) int { return 0 }
