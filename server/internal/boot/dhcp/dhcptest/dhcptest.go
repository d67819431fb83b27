// Package dhcptest provides a recording in-memory dhcp.Backend for tests.
package dhcptest

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"underlay.dev/server/internal/boot/dhcp"
)

// Call records one Backend call.
type Call struct {
	Method    string // "lease", "release" or "decline"
	MAC       string
	IP        string // requested (lease) or given (release, decline) address
	Offer     bool
	Hostname  string
	Duration  time.Duration
	Result    string // leased address, empty on error
	ResultErr string
}

// Backend is a dhcp.Backend that hands out addresses sequentially from
// First, keeps one address per MAC and records every call. Set Err to make
// every call fail, and Panic to make Lease panic.
type Backend struct {
	// First is the first address handed out; Last the last.
	First, Last net.IP
	// Expires is returned as the lease expiry (zero means none).
	Expires time.Time
	Err     error
	Panic   bool

	mu       sync.Mutex
	byMAC    map[string]net.IP
	byIP     map[string]string
	declined map[string]bool
	calls    []Call
}

// New returns a Backend with the pool first..last.
func New(first, last net.IP) *Backend {
	return &Backend{First: first.To4(), Last: last.To4()}
}

// Reserve gives ip to mac as if it had been leased before.
func (b *Backend) Reserve(mac, ip string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	parsed := net.ParseIP(ip).To4()
	b.byMAC[mac] = parsed
	b.byIP[parsed.String()] = mac
}

func (b *Backend) init() {
	if b.byMAC == nil {
		b.byMAC = map[string]net.IP{}
		b.byIP = map[string]string{}
		b.declined = map[string]bool{}
	}
}

// Calls returns the recorded calls in order.
func (b *Backend) Calls() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Call(nil), b.calls...)
}

// LeaseOf returns the address held by mac, or "".
func (b *Backend) LeaseOf(mac string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ip, ok := b.byMAC[mac]; ok {
		return ip.String()
	}
	return ""
}

// Lease implements dhcp.Backend.
func (b *Backend) Lease(_ context.Context, req dhcp.LeaseRequest) (dhcp.Lease, error) {
	if b.Panic {
		panic("dhcptest: lease panics as asked")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	call := Call{Method: "lease", MAC: req.MAC.String(), IP: ipString(req.Requested), Offer: req.Offer,
		Hostname: req.Hostname, Duration: req.Duration}
	ip, err := b.lease(req)
	if err != nil {
		call.ResultErr = err.Error()
		b.calls = append(b.calls, call)
		return dhcp.Lease{}, err
	}
	call.Result = ip.String()
	b.calls = append(b.calls, call)
	return dhcp.Lease{IP: ip, Expires: b.Expires}, nil
}

func (b *Backend) lease(req dhcp.LeaseRequest) (net.IP, error) {
	if b.Err != nil {
		return nil, b.Err
	}
	mac := req.MAC.String()
	if req.Requested != nil {
		owner, taken := b.byIP[req.Requested.To4().String()]
		switch {
		case taken && owner != mac:
			if req.Offer {
				break // offer something else
			}
			return nil, fmt.Errorf("%v held by %s: %w", req.Requested, owner, dhcp.ErrAddressTaken)
		case b.inPool(req.Requested) && !b.declined[req.Requested.String()]:
			b.give(mac, req.Requested.To4())
			return req.Requested.To4(), nil
		}
	}
	if ip, ok := b.byMAC[mac]; ok {
		return ip, nil
	}
	first := binary.BigEndian.Uint32(b.First)
	last := binary.BigEndian.Uint32(b.Last)
	for n := first; n <= last && n >= first; n++ {
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, n)
		if _, taken := b.byIP[ip.String()]; taken || b.declined[ip.String()] {
			continue
		}
		b.give(mac, ip)
		return ip, nil
	}
	return nil, dhcp.ErrNoAddress
}

func (b *Backend) give(mac string, ip net.IP) {
	if old, ok := b.byMAC[mac]; ok {
		delete(b.byIP, old.String())
	}
	b.byMAC[mac] = ip
	b.byIP[ip.String()] = mac
}

func (b *Backend) inPool(ip net.IP) bool {
	v4 := ip.To4()
	if v4 == nil {
		return false
	}
	n := binary.BigEndian.Uint32(v4)
	return n >= binary.BigEndian.Uint32(b.First) && n <= binary.BigEndian.Uint32(b.Last)
}

// Release implements dhcp.Backend.
func (b *Backend) Release(_ context.Context, mac net.HardwareAddr, ip net.IP) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.calls = append(b.calls, Call{Method: "release", MAC: mac.String(), IP: ipString(ip)})
	if b.Err != nil {
		return b.Err
	}
	if held, ok := b.byMAC[mac.String()]; ok && held.Equal(ip) {
		delete(b.byMAC, mac.String())
		delete(b.byIP, held.String())
	}
	return nil
}

// Decline implements dhcp.Backend: the address is never handed out again.
func (b *Backend) Decline(_ context.Context, mac net.HardwareAddr, ip net.IP) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.calls = append(b.calls, Call{Method: "decline", MAC: mac.String(), IP: ipString(ip)})
	if b.Err != nil {
		return b.Err
	}
	b.declined[ip.To4().String()] = true
	if held, ok := b.byMAC[mac.String()]; ok && held.Equal(ip) {
		delete(b.byMAC, mac.String())
		delete(b.byIP, held.String())
	}
	return nil
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}
