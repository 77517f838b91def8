package encap

import (
	"encoding/hex"
	"fmt"
)

// MAC is an IEEE 802 MAC-48 address, a value type usable as a map key.
type MAC [6]byte

// BroadcastMAC is ff:ff:ff:ff:ff:ff.
var BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&0x01 != 0 }

// IsBroadcast reports whether m is the all-ones broadcast address.
func (m MAC) IsBroadcast() bool { return m == BroadcastMAC }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// String formats m as aa:bb:cc:dd:ee:ff.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// ParseMAC parses aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("parse MAC %q: want 17 characters, got %d", s, len(s))
	}
	sep := s[2]
	if sep != ':' && sep != '-' {
		return m, fmt.Errorf("parse MAC %q: separator must be ':' or '-'", s)
	}
	for i := 0; i < 6; i++ {
		if i > 0 && s[3*i-1] != sep {
			return m, fmt.Errorf("parse MAC %q: mixed separators", s)
		}
		if _, err := hex.Decode(m[i:i+1], []byte(s[3*i:3*i+2])); err != nil {
			return m, fmt.Errorf("parse MAC %q: %w", s, err)
		}
	}
	return m, nil
}

// VNI is a 24-bit VXLAN network identifier (RFC 7348 §5).
type VNI uint32

// MaxVNI is the largest VNI that fits the 24-bit field.
const MaxVNI VNI = 1<<24 - 1

// Valid reports whether v fits in 24 bits.
func (v VNI) Valid() bool { return v <= MaxVNI }
