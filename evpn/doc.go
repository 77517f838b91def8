// Package evpn is vxswitch's BGP EVPN control plane (RFC 7432, RFC 8365):
// a GoBGP speaker that holds iBGP sessions to the fabric's route
// reflectors, advertises each segment as a type-3 Inclusive Multicast
// Ethernet Tag route and each MAC learnt on a segment's TAP as a type-2
// MAC/IP route, and turns the other sites' routes into data-plane peers
// (flood list members) and pinned remote FDB entries.
//
// Ownership: a Speaker owns its GoBGP server (started and stopped by Run)
// and the state derived from received routes; it changes the data plane
// only through the Switch interface. Allocation: control-plane work, off
// the packet path; nothing here runs per packet. Concurrency: Run is one
// goroutine that handles route events and the local MAC poll in turn;
// Status, Sessions and Reload may be called from any goroutine.
package evpn
