// Package ipxetest provides a recording in-memory ipxe.Backend for tests.
package ipxetest

import (
	"context"
	"fmt"
	"net"
	"sync"

	"underlay.dev/server/internal/boot/ipxe"
)

// Backend returns Plans by MAC (unknown MACs get ipxe.ErrUnknownMachine)
// and Params; Err, if set, fails every call. Calls records MACs asked for.
type Backend struct {
	Plans  map[string]ipxe.Plan
	Params ipxe.Params
	Err    error

	mu    sync.Mutex
	calls []string
}

// BootPlan implements ipxe.Backend.
func (b *Backend) BootPlan(_ context.Context, mac net.HardwareAddr) (ipxe.Plan, error) {
	b.mu.Lock()
	b.calls = append(b.calls, "plan "+mac.String())
	b.mu.Unlock()
	if b.Err != nil {
		return ipxe.Plan{}, b.Err
	}
	p, ok := b.Plans[mac.String()]
	if !ok {
		return ipxe.Plan{}, fmt.Errorf("machine %s: %w", mac, ipxe.ErrUnknownMachine)
	}
	return p, nil
}

// KernelParams implements ipxe.Backend.
func (b *Backend) KernelParams(context.Context) (ipxe.Params, error) {
	b.mu.Lock()
	b.calls = append(b.calls, "params")
	b.mu.Unlock()
	if b.Err != nil {
		return ipxe.Params{}, b.Err
	}
	return b.Params, nil
}

// Calls returns the recorded calls.
func (b *Backend) Calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}
