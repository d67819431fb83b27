package agent

import (
	"sync"
	"time"
)

// clock is the local clock corrected by an offset learnt from a management
// node. Discovery images often boot with the RTC far off (or at the epoch),
// so every certificate validity check and renewal decision uses this clock.
type clock struct {
	local func() time.Time

	mu     sync.Mutex
	offset time.Duration
	synced bool
}

// Now returns the server-corrected time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	off := c.offset
	c.mu.Unlock()
	return c.local().Add(off)
}

// sync sets the offset from one request: sent and received are local
// readings taken around the call, server is the time the server reported.
// The server is assumed to have read its clock half-way through the round
// trip.
func (c *clock) sync(sent, received, server time.Time) time.Duration {
	mid := sent.Add(received.Sub(sent) / 2)
	off := server.Sub(mid)
	c.mu.Lock()
	c.offset = off
	c.synced = true
	c.mu.Unlock()
	return off
}

// Offset returns the current correction and whether it was ever set.
func (c *clock) Offset() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset, c.synced
}
