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

// fipsApproved are the algorithms, by strongSwan name, that FIPS 140-3
// mode allows: an allowlist, so that one added later is refused until it
// is put here.
var fipsApproved = map[string]bool{
	"aes128gcm16": true, "aes256gcm16": true,
	"prfsha256": true, "prfsha384": true, "prfsha512": true,
	"ecp256": true, "ecp384": true,
}

// fipsInstead says what to use in place of a refused algorithm.
var fipsInstead = map[string]string{
	"chacha20poly1305": "aes128gcm16 or aes256gcm16",
	"x25519":           "ecp256 or ecp384", "curve25519": "ecp256 or ecp384",
	"rsa-sha1": "a peer that announces SHA2-256 (RFC 7427) for RSASSA-PSS, or ECDSA",
}

// FIPSRefuses returns an error naming why FIPS 140-3 mode refuses the
// algorithm of the given strongSwan name (chacha20poly1305, x25519,
// curve25519, rsa-sha1 for the RSA-SHA-1 signature of IKEv2 method 1, or
// anything else not approved), or nil where FIPS mode is off or the
// algorithm is approved (AES-GCM, the HMAC-SHA-2 PRFs, the NIST curves).
func FIPSRefuses(name string) error {
	if !fips140.Enabled() || fipsApproved[name] {
		return nil
	}
	if instead := fipsInstead[name]; instead != "" {
		return fmt.Errorf("%s: %w: use %s", name, ErrFIPS, instead)
	}
	return fmt.Errorf("%s: %w", name, ErrFIPS)
}

// FIPSCheckMode returns ErrFIPSOnly where ESP cannot run: under
// GODEBUG=fips140=only. Plain mode runs whatever the FIPS setting.
func FIPSCheckMode(esp bool) error {
	if esp && fips140.Enforced() {
		return ErrFIPSOnly
	}
	return nil
}
