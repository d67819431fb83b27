package agent

import "time"

// backoff computes reconnect delays: exponential growth from base up to max,
// with full jitter (a uniform draw in [0, ceiling]). It is not safe for
// concurrent use; the agent uses it from its Run loop only.
type backoff struct {
	base, max time.Duration
	// healthy is how long a connection must have lasted for observe to
	// reset the growth.
	healthy time.Duration
	// rand returns a uniform value in [0, n); n > 0.
	rand    func(n int64) int64
	attempt int
}

// ceiling returns the upper bound of the next draw without consuming it.
func (b *backoff) ceiling() time.Duration {
	c := b.base
	for i := 0; i < b.attempt && c < b.max; i++ {
		c *= 2
	}
	if c > b.max || c <= 0 {
		c = b.max
	}
	return c
}

// next returns the delay before the next attempt and grows the ceiling.
func (b *backoff) next() time.Duration {
	c := b.ceiling()
	if c < b.max {
		b.attempt++
	}
	return time.Duration(b.rand(int64(c) + 1))
}

// reset starts the growth over from base.
func (b *backoff) reset() { b.attempt = 0 }

// observe resets the backoff when a connection stayed up for at least the
// healthy period.
func (b *backoff) observe(up time.Duration) {
	if up >= b.healthy {
		b.reset()
	}
}
