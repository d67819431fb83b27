// Package ra answers IPv6 Router Solicitations on the provisioning network
// with a Router Advertisement that configures nothing (no prefixes, not a
// default router, no DHCPv6). iPXE configures IPv4 and IPv6 together and,
// on a network without IPv6 routers, waits about 16 seconds for a router
// before it goes on; the advertisement lets it go on at once.
package ra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// ErrInterface means the interface cannot be used.
var ErrInterface = errors.New("router advertisement interface")

// Message returns the Router Advertisement sent: current hop limit 0
// (unspecified), no flags (no DHCPv6), router lifetime 0 (not a default
// router), reachable time and retransmit timer 0 (unspecified), and the
// source link-layer address option.
func Message(mac net.HardwareAddr) []byte {
	body := make([]byte, 12, 12+8)
	if len(mac) == 6 {
		body = append(body, 1, 1) // option 1: source link-layer address, length 1 (8 bytes)
		body = append(body, mac...)
	}
	return body
}

type raBody []byte

func (b raBody) Len(int) int { return len(b) }

func (b raBody) Marshal(int) ([]byte, error) { return b, nil }

// Serve answers solicitations on the named interface until ctx is done.
func Serve(ctx context.Context, ifname string, log *slog.Logger) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrInterface, ifname, err)
	}
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("listen icmpv6: %w", err)
	}
	defer c.Close()
	p := c.IPv6PacketConn()
	allRouters := &net.UDPAddr{IP: net.ParseIP("ff02::2")}
	if err := p.JoinGroup(ifi, allRouters); err != nil {
		return fmt.Errorf("join ff02::2 on %s: %w", ifname, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	if err := p.SetICMPFilter(&f); err != nil {
		return fmt.Errorf("icmpv6 filter: %w", err)
	}
	if err := p.SetControlMessage(ipv6.FlagInterface, true); err != nil {
		return fmt.Errorf("icmpv6 control messages: %w", err)
	}
	// RFC 4861: neighbour discovery messages carry hop limit 255.
	if err := p.SetMulticastHopLimit(255); err != nil {
		return fmt.Errorf("hop limit: %w", err)
	}
	if err := p.SetHopLimit(255); err != nil {
		return fmt.Errorf("hop limit: %w", err)
	}
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	msg, err := (&icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: raBody(Message(ifi.HardwareAddr))}).Marshal(nil)
	if err != nil {
		return err
	}
	allNodes := &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: ifname}
	buf := make([]byte, 1500)
	var last time.Time
	for {
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read icmpv6: %w", err)
		}
		if cm == nil || cm.IfIndex != ifi.Index || n < 8 || ipv6.ICMPType(buf[0]) != ipv6.ICMPTypeRouterSolicitation {
			continue
		}
		// Many machines power on together; one advertisement to all nodes
		// answers every solicitation of the same instant.
		if time.Since(last) < 100*time.Millisecond {
			continue
		}
		last = time.Now()
		if _, err := p.WriteTo(msg, &ipv6.ControlMessage{HopLimit: 255, IfIndex: ifi.Index}, allNodes); err != nil {
			log.Warn("router advertisement not sent", "interface", ifname, "err", err)
			continue
		}
		log.Debug("router advertisement sent", "interface", ifname, "solicited_by", src.String())
	}
}
