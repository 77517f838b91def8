package crypto

import (
	"crypto/cipher"
	"fmt"
	"testing"

	"github.com/vxswitch/vxswitch/crypto/gcm"
	"github.com/vxswitch/vxswitch/internal/aeadtest"
	"golang.org/x/crypto/chacha20poly1305"
)

// TestAEADConformance runs every AEAD an SA can get through the one
// conformance suite (internal/aeadtest: Wycheproof, round trips, overlap,
// wrong inputs, alignment, guard pages). crypto/gcm's assembly fails here
// instead of skipping under VXSWITCH_REQUIRE_ALL, as CI runs.
func TestAEADConformance(t *testing.T) {
	for _, impl := range []aeadtest.Impl{
		{Name: "vaes", Algorithm: "AES-GCM", KeySizes: []int{16, 24, 32}, Runs: gcm.Accelerated(),
			Why: "crypto/gcm's assembly does not run on this processor (or purego, FIPS mode, VXSWITCH_GCM=stdlib)",
			New: func(key []byte) (cipher.AEAD, error) {
				a, err := gcm.New(key)
				if _, ours := a.(*gcm.AEAD); err == nil && !ours {
					return nil, fmt.Errorf("gcm.New returned %T where Accelerated", a)
				}
				return a, err
			}},
		{Name: "stdlib", Algorithm: "AES-GCM", KeySizes: []int{16, 24, 32}, Runs: true, New: gcm.NewStdlib},
		{Name: "x/crypto", Algorithm: "CHACHA20-POLY1305", KeySizes: []int{32}, Runs: true, New: chacha20poly1305.New},
	} {
		t.Run(impl.Name, func(t *testing.T) { aeadtest.Run(t, impl) })
	}
}
