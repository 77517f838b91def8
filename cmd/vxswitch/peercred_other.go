//go:build !linux

package main

import (
	"errors"
	"fmt"
	"net"
)

// peerUID is not implemented off Linux: every client is refused.
func peerUID(c *net.UnixConn) (uint32, error) {
	return 0, fmt.Errorf("peer credentials: %w", errors.ErrUnsupported)
}
