package crypto

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
)

// SADB holds the inbound SAs by SPI. Lookup and Open take no lock: the
// table is an immutable map behind an atomic pointer, replaced by a copy on
// every Add and Remove (rare: one per rekey). During a rekey the old and
// the new SA are both in the table, so packets sealed under either open.
// The zero value is an empty SADB ready to use.
type SADB struct {
	mu    sync.Mutex // serialises writers
	table atomic.Pointer[map[uint32]*InboundSA]

	truncated  atomic.Uint64
	unknownSPI atomic.Uint64
}

// DBStats counts the packets SADB.Open dropped before it found an SA.
type DBStats struct {
	SAs        int
	Truncated  uint64 // shorter than MinPacketLen
	UnknownSPI uint64 // no SA with the packet's SPI
}

// Add inserts sa; it fails with ErrSPIInUse when its SPI is taken.
func (db *SADB) Add(sa *InboundSA) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	old := db.load()
	if _, ok := old[sa.spi]; ok {
		return fmt.Errorf("add SA spi 0x%08x: %w", sa.spi, ErrSPIInUse)
	}
	m := make(map[uint32]*InboundSA, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[sa.spi] = sa
	db.table.Store(&m)
	return nil
}

// Remove deletes the SA with the given SPI, if any, and zeroes its keys.
// A packet being opened under it at that moment fails with ErrExpired or
// ErrAuth.
func (db *SADB) Remove(spi uint32) {
	db.mu.Lock()
	defer db.mu.Unlock()
	old := db.load()
	sa, ok := old[spi]
	if !ok {
		return
	}
	m := make(map[uint32]*InboundSA, len(old))
	for k, v := range old {
		if k != spi {
			m[k] = v
		}
	}
	db.table.Store(&m)
	sa.Zero()
}

func (db *SADB) load() map[uint32]*InboundSA {
	if p := db.table.Load(); p != nil {
		return *p
	}
	return nil
}

// Lookup returns the SA with the given SPI, or nil.
func (db *SADB) Lookup(spi uint32) *InboundSA {
	return db.load()[spi]
}

// SAs returns the inbound SAs, in no particular order.
func (db *SADB) SAs() []*InboundSA {
	m := db.load()
	out := make([]*InboundSA, 0, len(m))
	for _, sa := range m {
		out = append(out, sa)
	}
	return out
}

// Stats returns the SADB's own drop counters.
func (db *SADB) Stats() DBStats {
	return DBStats{
		SAs:        len(db.load()),
		Truncated:  db.truncated.Load(),
		UnknownSPI: db.unknownSPI.Load(),
	}
}

// Open finds the SA by the packet's SPI and opens the packet with it (see
// InboundSA.Open). sa is nil when the error is ErrTruncated or
// ErrUnknownSPI; those are counted in the SADB's Stats, the others in the
// SA's.
func (db *SADB) Open(pkt []byte) (payload []byte, nextHeader uint8, sa *InboundSA, err error) {
	if len(pkt) < MinPacketLen {
		db.truncated.Add(1)
		return nil, 0, nil, ErrTruncated
	}
	sa = db.Lookup(binary.BigEndian.Uint32(pkt))
	if sa == nil {
		db.unknownSPI.Add(1)
		return nil, 0, nil, ErrUnknownSPI
	}
	payload, nextHeader, err = sa.Open(pkt)
	return payload, nextHeader, sa, err
}
