// Package ike negotiates the ESP SAs of vxswitch with IKEv2 (RFC 7296)
// and pre-shared keys, interoperable with strongSwan.
//
// What it does: IKE_SA_INIT and IKE_AUTH as initiator and responder,
// CREATE_CHILD_SA to rekey Child SAs (make-before-break, with PFS) and the
// IKE SA, INFORMATIONAL for deletes and dead peer detection, COOKIE
// challenges, INVALID_KE_PAYLOAD renegotiation, retransmission with
// exponential backoff, simultaneous-rekey handling (RFC 7296 §2.8.1),
// and path MTU probes padded into INFORMATIONAL requests (Probe) for peers
// whose data plane answers none of its own.
// IKE messages are encrypted with AES-GCM-16 (RFC 5282) or
// ChaCha20-Poly1305 (RFC 7634); PRFs are HMAC-SHA2-256/384/512; DH groups
// 31 (X25519, RFC 8031), 19 and 20 (RFC 5903). ESP is always
// UDP-encapsulated on port 4500: vxswitch sends a NAT_DETECTION_SOURCE_IP
// that cannot match, as strongSwan's encap=yes does, so that the peer
// encapsulates too. Child SA traffic selectors are UDP between the two VTEP
// addresses, all ports (VXLAN source ports are a flow hash, RFC 7348 §5).
//
// Ownership: the wire decoders (DecodeHeader, DecodePayloads, ParseSA, ...)
// return values that alias their input; the Daemon copies every message
// it keeps. Key material in ChildSA is owned by the receiver.
//
// Allocation: this is the control plane; it allocates freely and never
// sits on the packet path.
//
// Concurrency: a Daemon is safe for concurrent use; HandleMessage may be
// called from several socket readers. Handler and Transport calls happen
// outside the Daemon's lock, one at a time, in event order (possibly on
// another goroutine that is already delivering events).
//
// Secrets (PSK, keys, nonces) are never logged.
package ike
