package dataplane

import (
	"context"
	"errors"

	"github.com/vxswitch/vxswitch/encap"
)

// Switch is one running site. Create it with New, start it with Run.
type Switch struct {
	cfg     Config
	capture captureHub
}

// New validates nothing beyond what the data path needs (the binary
// validates the configuration with key names first) and prepares a Switch;
// nothing is opened until Run.
func New(cfg Config) (*Switch, error) {
	return &Switch{cfg: cfg}, nil
}

// Run opens the TAP ports and the underlay socket, runs the pipeline until
// ctx is done, then closes everything it opened (TAP devices it created are
// removed).
func (s *Switch) Run(ctx context.Context) error {
	return errors.New("dataplane: not implemented yet")
}

// Reload replaces the peer list (SIGHUP) without disturbing the traffic of
// peers that did not change.
func (s *Switch) Reload(peers []PeerConfig) error {
	return errors.New("dataplane: not implemented yet")
}

// FDB returns the forwarding database.
func (s *Switch) FDB() []FDBEntry { return nil }

// Peers returns the status of every peer.
func (s *Switch) Peers() []PeerStatus { return nil }

// SAs returns the installed ESP security associations.
func (s *Switch) SAs() []SAStatus { return nil }

// Stats returns every counter.
func (s *Switch) Stats() []Counter { return nil }

// Capture starts a capture session at point, for one segment (vni) or all
// (vni 0), with a queue of the given length (0: 4096).
func (s *Switch) Capture(point CapturePoint, vni encap.VNI, queue int) *CaptureSession {
	return s.capture.add(point, vni, queue)
}
