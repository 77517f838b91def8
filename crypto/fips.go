package crypto

import (
	"crypto/fips140"
	"errors"
	"fmt"
)

// ErrFIPS is returned (wrapped) for an algorithm that FIPS 140-3 mode
// (GODEBUG=fips140=on or only) does not approve.
var ErrFIPS = errors.New("not approved in FIPS 140-3 mode (GODEBUG=fips140)")

// ErrFIPSOnly is returned (wrapped) for ESP under GODEBUG=fips140=only.
var ErrFIPSOnly = errors.New(`GODEBUG=fips140=only: Go's FIPS 140-3 module refuses AES-GCM with nonces the caller chooses, and ESP (RFC 4106) chooses them (the sequence number); use fips140=on, or mode = "plain"`)

// FIPSRefuses returns an error naming why FIPS 140-3 mode refuses the
// algorithm of the given strongSwan name (chacha20poly1305, x25519,
// curve25519), or nil where FIPS mode is off or the algorithm is approved
// (AES-GCM, the HMAC-SHA-2 PRFs, the NIST curves).
func FIPSRefuses(name string) error {
	if !fips140.Enabled() {
		return nil
	}
	switch name {
	case "chacha20poly1305":
		return fmt.Errorf("%s: %w: use aes128gcm16 or aes256gcm16", name, ErrFIPS)
	case "x25519", "curve25519":
		return fmt.Errorf("%s: %w: use ecp256 or ecp384", name, ErrFIPS)
	}
	return nil
}

// FIPSCheckMode returns ErrFIPSOnly where ESP cannot run: under
// GODEBUG=fips140=only. Plain mode runs whatever the FIPS setting.
func FIPSCheckMode(esp bool) error {
	if esp && fips140.Enforced() {
		return ErrFIPSOnly
	}
	return nil
}
