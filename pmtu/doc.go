// Package pmtu is packetization-layer path MTU discovery for one path
// (RFC 8899, DPLPMTUD): probes of chosen sizes, sent with DF and
// acknowledged by the peer, find the largest packet the path carries
// without relying on ICMP; ICMP and local EMSGSIZE reports are hints that
// speed the search (RFC 8899 §4.6), never the only source.
//
// A Prober does no I/O: it tells its Sender which probes to send and when,
// and the data plane tells it which acknowledgements arrived. Its timers
// run on an injected clock.Clock, so the whole state machine is tested with
// a manual clock. A Prober is safe for concurrent use; its Sender is called
// without the Prober's lock held, from the goroutine that drives the clock
// or reports the event. PLPMTU is one atomic load, for the data path.
//
// The states are RFC 8899 §5.2's: BASE (confirming the base PLPMTU),
// SEARCHING, SEARCH_COMPLETE (with confirmation probes every
// ConfirmTimer: black-hole detection, since the tunnel carries no
// acknowledgements of its own), ERROR (not even the base size is
// acknowledged), and DISABLED: the peer answered no probe at all (a
// kernel VTEP, a strongSwan gateway): the PLPMTU is then the configured
// Fallback, lowered by hints (which hold until the next raise timer), and a
// base probe every RaiseTimer asks whether the peer takes part now.
package pmtu
