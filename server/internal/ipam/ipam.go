// Package ipam holds the address-management rules shared by the FSM and
// the API: subnet validation, pools and MAC normalisation. It does no I/O.
package ipam

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// ErrInvalid means a subnet, address or MAC is malformed.
var ErrInvalid = errors.New("invalid")

// DefaultLease is the lease time of a subnet that does not set one.
const DefaultLease = 3600

// Pool is a validated subnet.
type Pool struct {
	Prefix     netip.Prefix
	Start, End netip.Addr
	Gateway    netip.Addr
	DNS        []netip.Addr
}

// Validate checks a subnet and returns its pool.
func Validate(sn *underlayv1.Subnet) (*Pool, error) {
	if sn.GetName() == "" {
		return nil, fmt.Errorf("subnet name is required: %w", ErrInvalid)
	}
	pfx, err := netip.ParsePrefix(sn.GetCidr())
	if err != nil || !pfx.Addr().Is4() {
		return nil, fmt.Errorf("subnet %s: cidr %q is not an IPv4 network like 10.0.0.0/24: %w", sn.GetName(), sn.GetCidr(), ErrInvalid)
	}
	if pfx.Bits() > 30 {
		return nil, fmt.Errorf("subnet %s: %s is too small for a pool: %w", sn.GetName(), pfx, ErrInvalid)
	}
	pfx = pfx.Masked()
	p := &Pool{Prefix: pfx}
	parse := func(what, s string) (netip.Addr, error) {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return netip.Addr{}, fmt.Errorf("subnet %s: %s %q is not an IPv4 address: %w", sn.GetName(), what, s, ErrInvalid)
		}
		if !pfx.Contains(a) {
			return netip.Addr{}, fmt.Errorf("subnet %s: %s %s is outside %s: %w", sn.GetName(), what, a, pfx, ErrInvalid)
		}
		return a, nil
	}
	if p.Start, err = parse("range start", sn.GetRangeStart()); err != nil {
		return nil, err
	}
	if p.End, err = parse("range end", sn.GetRangeEnd()); err != nil {
		return nil, err
	}
	if p.End.Less(p.Start) {
		return nil, fmt.Errorf("subnet %s: range end %s is before range start %s: %w", sn.GetName(), p.End, p.Start, ErrInvalid)
	}
	network, broadcast := pfx.Addr(), lastAddr(pfx)
	if p.Start == network || p.End == broadcast {
		return nil, fmt.Errorf("subnet %s: the range must not include the network (%s) or broadcast (%s) address: %w", sn.GetName(), network, broadcast, ErrInvalid)
	}
	if sn.GetGateway() != "" {
		if p.Gateway, err = parse("gateway", sn.GetGateway()); err != nil {
			return nil, err
		}
		if !p.Gateway.Less(p.Start) && !p.End.Less(p.Gateway) {
			return nil, fmt.Errorf("subnet %s: gateway %s is inside the dynamic range: %w", sn.GetName(), p.Gateway, ErrInvalid)
		}
	}
	for _, d := range sn.GetDns() {
		a, err := netip.ParseAddr(d)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("subnet %s: dns %q is not an IPv4 address: %w", sn.GetName(), d, ErrInvalid)
		}
		p.DNS = append(p.DNS, a)
	}
	if sn.GetLeaseSeconds() < 0 {
		return nil, fmt.Errorf("subnet %s: lease time must not be negative: %w", sn.GetName(), ErrInvalid)
	}
	return p, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	host := uint32(1)<<(32-p.Bits()) - 1
	return fromUint(toUint(p.Addr()) | host)
}

func toUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromUint(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// InRange reports whether a is in the dynamic range.
func (p *Pool) InRange(a netip.Addr) bool {
	return !a.Less(p.Start) && !p.End.Less(a)
}

// Size is the number of addresses in the dynamic range.
func (p *Pool) Size() int { return int(toUint(p.End)-toUint(p.Start)) + 1 }

// Nth is the address i places after the start of the range (0 <= i < Size).
func (p *Pool) Nth(i int) netip.Addr { return fromUint(toUint(p.Start) + uint32(i)) }

// NormalizeMAC returns a MAC in lowercase colon form.
func NormalizeMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("mac %q is not an Ethernet address: %w", s, ErrInvalid)
	}
	return hw.String(), nil
}
