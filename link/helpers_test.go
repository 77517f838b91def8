package link

import (
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/internal/testframe"
)

var (
	macA = encap.MAC{0x02, 0, 0, 0, 0, 0xa}
	macB = encap.MAC{0x02, 0, 0, 0, 0, 0xb}
)

// udpFrame is an Ethernet frame of size bytes: IPv4/UDP with a counting payload.
func udpFrame(dst, src encap.MAC, size int) []byte { return testframe.UDP(dst, src, size) }
