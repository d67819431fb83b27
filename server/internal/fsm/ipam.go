package fsm

import (
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/ipam"
	"underlay.dev/server/internal/store"
)

// Event kinds of address management.
const (
	EventSubnetChanged = "subnet.changed"
	EventSubnetDeleted = "subnet.deleted"
	EventLeaseDeclined = "lease.declined"
)

func putSubnet(tx *store.Tx, c *underlayv1.PutSubnet) (string, error) {
	sn := c.GetSubnet()
	if _, err := ipam.Validate(sn); err != nil {
		return "", fmt.Errorf("%v: %w", err, store.ErrInvalid)
	}
	if err := tx.PutSubnet(sn); err != nil {
		return "", err
	}
	return sn.GetName(), tx.Event(EventSubnetChanged, "", fmt.Sprintf("subnet %s %s range %s-%s", sn.GetName(), sn.GetCidr(), sn.GetRangeStart(), sn.GetRangeEnd()))
}

func deleteSubnet(tx *store.Tx, c *underlayv1.DeleteSubnet) (string, error) {
	if err := tx.DeleteSubnet(c.GetName()); err != nil {
		return "", err
	}
	return c.GetName(), tx.Event(EventSubnetDeleted, "", "subnet "+c.GetName()+" deleted")
}

func pool(tx *store.Tx, name string) (*underlayv1.Subnet, *ipam.Pool, error) {
	sn, err := tx.Subnet(name)
	if err != nil {
		return nil, nil, err
	}
	p, err := ipam.Validate(sn)
	if err != nil {
		return nil, nil, fmt.Errorf("%v: %w", err, store.ErrInvalid)
	}
	return sn, p, nil
}

// free reports whether ip may be given to mac at now.
func free(tx *store.Tx, subnet, ip, mac string, now time.Time) bool {
	if r := tx.ReservationByIP(subnet, ip); r != nil && r.GetMac() != mac {
		return false
	}
	l := tx.LeaseByIP(subnet, ip)
	if l == nil {
		return true
	}
	if l.GetMac() == mac && !l.GetDeclined() {
		return true
	}
	return !l.GetExpires().AsTime().After(now)
}

// allocateLease gives mac an address; see the AllocateLease comment.
func allocateLease(tx *store.Tx, c *underlayv1.AllocateLease) (string, error) {
	sn, p, err := pool(tx, c.GetSubnet())
	if err != nil {
		return "", err
	}
	mac, err := ipam.NormalizeMAC(c.GetMac())
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, store.ErrInvalid)
	}
	now := tx.Now().AsTime()
	name := sn.GetName()
	ip := ""
	if r := tx.Reservation(name, mac); r != nil {
		ip = r.GetIp()
	}
	if ip == "" {
		for _, l := range tx.LeasesByMAC(name, mac) {
			if !l.GetDeclined() && free(tx, name, l.GetIp(), mac, now) {
				ip = l.GetIp()
				break
			}
		}
	}
	if ip == "" && c.GetRequestedIp() != "" {
		if a, err := netip.ParseAddr(c.GetRequestedIp()); err == nil && p.InRange(a) && free(tx, name, a.String(), mac, now) {
			ip = a.String()
		}
	}
	if ip == "" {
		for a := p.Start; p.InRange(a); a = a.Next() {
			if free(tx, name, a.String(), mac, now) {
				ip = a.String()
				break
			}
		}
	}
	if ip == "" {
		return "", fmt.Errorf("subnet %s has no free address for %s (%d in range): %w", name, mac, p.Size(), store.ErrPrecondition)
	}
	// A MAC holds one address per subnet: drop its other leases.
	for _, l := range tx.LeasesByMAC(name, mac) {
		if l.GetIp() != ip && !l.GetDeclined() {
			if err := tx.DeleteLease(name, l.GetIp()); err != nil {
				return "", err
			}
		}
	}
	secs := sn.GetLeaseSeconds()
	if secs <= 0 {
		secs = ipam.DefaultLease
	}
	if c.GetLeaseSeconds() > 0 {
		secs = c.GetLeaseSeconds()
	}
	l := &underlayv1.Lease{
		Subnet:   name,
		Ip:       ip,
		Mac:      mac,
		Hostname: c.GetHostname(),
		Expires:  timestamppb.New(now.Add(time.Duration(secs) * time.Second)),
		Created:  tx.Now(),
	}
	if old := tx.LeaseByIP(name, ip); old != nil && old.GetMac() == mac && c.GetLeaseSeconds() > 0 && old.GetExpires().AsTime().After(l.GetExpires().AsTime()) {
		// An offer never shortens a lease the client already holds.
		l.Expires = old.Expires
	}
	if err := tx.PutLease(l); err != nil {
		return "", err
	}
	return ip, nil
}

func releaseLease(tx *store.Tx, c *underlayv1.ReleaseLease) (string, error) {
	mac, err := ipam.NormalizeMAC(c.GetMac())
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, store.ErrInvalid)
	}
	l := tx.LeaseByIP(c.GetSubnet(), c.GetIp())
	if l == nil || l.GetMac() != mac || l.GetDeclined() {
		return "", nil // releasing what one does not hold changes nothing
	}
	return c.GetIp(), tx.DeleteLease(c.GetSubnet(), c.GetIp())
}

func declineLease(tx *store.Tx, c *underlayv1.DeclineLease) (string, error) {
	sn, _, err := pool(tx, c.GetSubnet())
	if err != nil {
		return "", err
	}
	mac, err := ipam.NormalizeMAC(c.GetMac())
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, store.ErrInvalid)
	}
	secs := sn.GetLeaseSeconds()
	if secs <= 0 {
		secs = ipam.DefaultLease
	}
	l := &underlayv1.Lease{
		Subnet: sn.GetName(), Ip: c.GetIp(), Mac: mac, Declined: true, Created: tx.Now(),
		Expires: timestamppb.New(tx.Now().AsTime().Add(time.Duration(secs) * time.Second)),
	}
	if err := tx.PutLease(l); err != nil {
		return "", err
	}
	return c.GetIp(), tx.Event(EventLeaseDeclined, "", fmt.Sprintf("%s declined %s in %s: address in use", mac, c.GetIp(), sn.GetName()))
}

func putReservation(tx *store.Tx, c *underlayv1.PutReservation) (string, error) {
	r := c.GetReservation()
	_, p, err := pool(tx, r.GetSubnet())
	if err != nil {
		return "", err
	}
	mac, err := ipam.NormalizeMAC(r.GetMac())
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, store.ErrInvalid)
	}
	a, err := netip.ParseAddr(r.GetIp())
	if err != nil || !p.Prefix.Contains(a) {
		return "", fmt.Errorf("reservation ip %q is not in %s: %w", r.GetIp(), p.Prefix, store.ErrInvalid)
	}
	if other := tx.ReservationByIP(r.GetSubnet(), a.String()); other != nil && other.GetMac() != mac {
		return "", fmt.Errorf("%s is already reserved for %s: %w", a, other.GetMac(), store.ErrExists)
	}
	if l := tx.LeaseByIP(r.GetSubnet(), a.String()); l != nil && l.GetMac() != mac && l.GetExpires().AsTime().After(tx.Now().AsTime()) {
		return "", fmt.Errorf("%s is leased to %s until %s: %w", a, l.GetMac(), l.GetExpires().AsTime().Format(time.RFC3339), store.ErrPrecondition)
	}
	r.Mac, r.Ip = mac, a.String()
	if err := tx.PutReservation(r); err != nil {
		return "", err
	}
	return r.GetIp(), nil
}

func deleteReservation(tx *store.Tx, c *underlayv1.DeleteReservation) (string, error) {
	mac, err := ipam.NormalizeMAC(c.GetMac())
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, store.ErrInvalid)
	}
	return mac, tx.DeleteReservation(c.GetSubnet(), mac)
}

func setBootSettings(tx *store.Tx, c *underlayv1.SetBootSettings) (string, error) {
	tx.SetBootSettings(c.GetSettings())
	return c.GetSettings().GetDiscoveryTokenId(), nil
}
