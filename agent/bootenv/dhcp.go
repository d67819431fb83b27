package bootenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// renewRetry is how long the renewer waits after a failed renewal.
const renewRetry = 30 * time.Second

// answer is one link's DHCP result.
type answer struct {
	iface  string
	client *nclient4.Client
	lease  *nclient4.Lease
	err    error
}

func dhcpModifiers(vendorClass string) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorClass)),
		dhcpv4.WithRequestedOptions(
			dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionDomainName, dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionHostName,
			dhcpv4.OptionClasslessStaticRoute, dhcpv4.OptionInterfaceMTU,
		),
	}
}

// dhcpAll runs DHCP on every link at once until one gets a lease or ctx
// ends, configures the winner and keeps its lease renewed.
func dhcpAll(ctx context.Context, log *slog.Logger, o Options, links []string) (NetConfig, error) {
	return dhcpRace(ctx, ctx, log, o, links)
}

// Lease runs DHCP on one link until it gets a lease or ctx ends,
// configures it (address, routes, resolv.conf) and, unless o.NoRenew,
// renews it in the background until renew ends. The host network driver
// uses it for ipv4_dhcp networks of a role's network config.
func Lease(ctx, renew context.Context, o Options, iface string) (NetConfig, error) {
	o = o.withDefaults()
	return dhcpRace(ctx, renew, o.Log, o, []string{iface})
}

func dhcpRace(ctx, renew context.Context, log *slog.Logger, o Options, links []string) (NetConfig, error) {
	if len(links) == 0 {
		return NetConfig{}, ErrNoLinks
	}
	race, cancel := context.WithCancel(ctx)
	defer cancel()
	mods := dhcpModifiers(o.VendorClass)
	answers := make(chan answer, len(links))
	for _, l := range links {
		go func() { answers <- dhcpLink(race, log, o, l, mods) }()
	}
	var win *answer
	var errs []error
	for range links {
		a := <-answers
		switch {
		case a.err == nil && win == nil:
			win = &a
			cancel() // the others stop trying
		case a.err == nil:
			a.client.Close()
		default:
			errs = append(errs, a.err)
		}
	}
	if win == nil {
		return NetConfig{}, fmt.Errorf("%w: %w", ErrNoLease, errors.Join(errs...))
	}
	nc, err := fromLease(win.iface, win.lease.ACK)
	if err != nil {
		win.client.Close()
		return NetConfig{}, err
	}
	log.Info("dhcp lease", "interface", nc.Interface, "address", nc.Address.String(),
		"server", nc.Server.String(), "routes", len(nc.Routes), "dns", len(nc.DNS), "lease", nc.Lease)
	if err := apply(log, nc, o.ResolvConf); err != nil {
		win.client.Close()
		return nc, err
	}
	if o.NoRenew || nc.Lease == 0 || nc.Lease == time.Duration(^uint32(0))*time.Second {
		win.client.Close()
		return nc, nil
	}
	go renewLoop(renew, log, o, win.client, win.lease, nc, mods)
	return nc, nil
}

// dhcpLink tries DHCP on one link until it gets a lease or ctx ends.
func dhcpLink(ctx context.Context, log *slog.Logger, o Options, iface string, mods []dhcpv4.Modifier) answer {
	c, err := nclient4.New(iface, nclient4.WithTimeout(o.Attempt/2), nclient4.WithRetry(2))
	if err != nil {
		return answer{iface: iface, err: fmt.Errorf("dhcp client on %s: %w", iface, err)}
	}
	for attempt := 1; ; attempt++ {
		lease, err := c.Request(ctx, mods...)
		if err == nil {
			return answer{iface: iface, client: c, lease: lease}
		}
		if ctx.Err() != nil {
			c.Close()
			return answer{iface: iface, err: fmt.Errorf("dhcp on %s: %w", iface, ctx.Err())}
		}
		log.Info("no dhcp answer yet", "interface", iface, "attempt", attempt, "err", err)
		// Request already waited its timeouts; a short pause keeps a link
		// that fails at once (no carrier) from spinning.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// renewLoop renews the lease at T1 until ctx ends, re-applying the
// configuration each time; when the lease runs out it starts over with a
// full exchange on the same link.
func renewLoop(ctx context.Context, log *slog.Logger, o Options, c *nclient4.Client, lease *nclient4.Lease, nc NetConfig, mods []dhcpv4.Modifier) {
	defer c.Close()
	wait := nc.Renew
	expires := time.Now().Add(nc.Lease)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		var next *nclient4.Lease
		var err error
		if time.Now().Before(expires) {
			next, err = c.Renew(ctx, lease, mods...)
		} else {
			next, err = c.Request(ctx, mods...)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("dhcp renew failed", "interface", nc.Interface, "err", err)
			wait = renewRetry
			continue
		}
		n, err := fromLease(nc.Interface, next.ACK)
		if err == nil {
			err = apply(log, n, o.ResolvConf)
		}
		if err != nil {
			log.Warn("dhcp renew not applied", "interface", nc.Interface, "err", err)
			wait = renewRetry
			continue
		}
		lease, nc = next, n
		wait, expires = nc.Renew, time.Now().Add(nc.Lease)
		log.Info("dhcp lease renewed", "interface", nc.Interface, "address", nc.Address.String(), "lease", nc.Lease)
	}
}
