// Admission of new IKE SAs under load (RFC 7296 §2.6): COOKIEs from a
// rotating, versioned secret, demanded early (many half-open SAs, or many
// IKE_SA_INITs a second); half-open SAs bounded per source address and in
// total; and budgets for stateless replies, so that COOKIE replies are
// never crowded out by the others.

package ike

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"
)

// Admission bounds.
const (
	cookieRotate           = 2 * time.Minute // a secret is used this long, accepted twice as long
	initRateForCookies     = 50              // IKE_SA_INITs a second above which every one needs a COOKIE
	maxHalfOpenPerSource   = 8               // half-open SAs from one (COOKIE-verified) address
	maxHalfOpen            = 1024            // half-open SAs in all
	cookieRepliesPerSec    = 10000           // COOKIE replies (small: no amplification)
	statelessRepliesPerSec = 50              // other stateless replies (INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN)
)

// cookieJar makes and checks COOKIEs: 4 bytes of secret version, then
// SHA-256 over the secret, Ni, the initiator's address and SPIi. The
// secret rotates every cookieRotate; a COOKIE of the previous one is still
// accepted, so one harvested COOKIE is good for at most two rotations.
type cookieJar struct {
	version   uint32
	cur, prev [32]byte
	rotated   time.Time
}

func (j *cookieJar) rotate(now time.Time) {
	if !j.rotated.IsZero() && now.Sub(j.rotated) < cookieRotate {
		return
	}
	j.prev = j.cur
	if _, err := rand.Read(j.cur[:]); err != nil {
		panic("ike: crypto/rand: " + err.Error())
	}
	j.version++
	j.rotated = now
}

// make returns the COOKIE for this initiator under the current secret.
func (j *cookieJar) make(ni []byte, remote netip.AddrPort, spii uint64, now time.Time) []byte {
	j.rotate(now)
	return append(binary.BigEndian.AppendUint32(nil, j.version), j.sum(&j.cur, ni, remote, spii)...)
}

func (j *cookieJar) sum(secret *[32]byte, ni []byte, remote netip.AddrPort, spii uint64) []byte {
	h := sha256.New()
	h.Write(secret[:])
	h.Write(ni)
	h.Write(remote.Addr().AsSlice())
	h.Write(be64(spii))
	return h.Sum(nil)
}

// valid reports whether c is a COOKIE we made for this initiator under the
// current or the previous secret.
func (j *cookieJar) valid(c, ni []byte, remote netip.AddrPort, spii uint64, now time.Time) bool {
	j.rotate(now)
	if len(c) != 4+sha256.Size {
		return false
	}
	v := binary.BigEndian.Uint32(c)
	switch v {
	case j.version:
		return hmac.Equal(c[4:], j.sum(&j.cur, ni, remote, spii))
	case j.version - 1:
		return hmac.Equal(c[4:], j.sum(&j.prev, ni, remote, spii))
	}
	return false
}

// needCookie reports whether a new IKE_SA_INIT must carry a COOKIE: when
// configured so, when CookieThreshold half-open SAs exist, or when more
// than initRateForCookies a second arrive (a token bucket). d.mu must be held.
func (d *Daemon) needCookie(now time.Time) bool {
	calm := d.initRate.Allow(now.UnixNano()) // counts this one
	return d.cfg.CookieThreshold < 0 || len(d.halfOpen) >= d.cfg.CookieThreshold || !calm
}

// admitHalfOpen reports whether a new half-open SA from remote fits the
// bounds. d.mu must be held.
func (d *Daemon) admitHalfOpen(remote netip.AddrPort) bool {
	if len(d.halfOpen) >= maxHalfOpen {
		return false
	}
	n := 0
	for k := range d.halfOpen {
		if k.remote.Addr() == remote.Addr() {
			n++
		}
	}
	return n < maxHalfOpenPerSource
}

// AdmissionStats counts what became of new IKE_SA_INIT requests as
// responder: how many came, how many were answered with a COOKIE, how many
// replies the rate limits withheld, and how many half-open SAs were
// refused for the bounds; HalfOpen is the number held now.
type AdmissionStats struct {
	InitRequests     uint64 // new IKE_SA_INIT requests (not retransmissions)
	CookiesSent      uint64 // COOKIE replies sent
	CookiesLimited   uint64 // COOKIE replies withheld by their rate (cookieRepliesPerSec)
	StatelessLimited uint64 // INVALID_KE_PAYLOAD / NO_PROPOSAL_CHOSEN replies withheld by their rate
	HalfOpenRefused  uint64 // valid COOKIE, but the address or the daemon at its half-open bound
	HalfOpen         int    // half-open SAs now
}

type admissionCounters struct {
	initRequests, cookiesSent, cookiesLimited, statelessLimited, halfOpenRefused atomic.Uint64
}

func (c *admissionCounters) snapshot(halfOpen int) AdmissionStats {
	return AdmissionStats{InitRequests: c.initRequests.Load(), CookiesSent: c.cookiesSent.Load(),
		CookiesLimited: c.cookiesLimited.Load(), StatelessLimited: c.statelessLimited.Load(),
		HalfOpenRefused: c.halfOpenRefused.Load(), HalfOpen: halfOpen}
}
