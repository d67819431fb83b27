package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

func (a *app) newSubnetCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "subnet",
		Short: "Manage subnets (address pools for DHCP and static addresses)",
		Long: `Manage the IPv4 subnets Underlay hands addresses out of. In authoritative DHCP
mode the boot service leases addresses from a subnet's dynamic range; leases
and reservations are replicated through Raft, so every node answers the same.`,
		Example: `  underlay subnet create prov --cidr 10.0.0.0/24 --range 10.0.0.100-10.0.0.199 --gateway 10.0.0.1 --dns 10.0.0.1
  underlay subnet ls`,
	})
	cmd.AddCommand(a.newSubnetCreateCmd(), a.newSubnetListCmd(), a.newSubnetDeleteCmd())
	return cmd
}

func (a *app) newSubnetCreateCmd() *cobra.Command {
	var cidr, rng, gateway, domain string
	var dns []string
	var lease time.Duration
	cmd := &cobra.Command{
		Use:     "create NAME --cidr CIDR --range START-END",
		Short:   "Create or update a subnet",
		Long:    `Create a subnet, or replace the settings of an existing one with the same name.`,
		Example: `  underlay subnet create prov --cidr 10.0.0.0/24 --range 10.0.0.100-10.0.0.199 --gateway 10.0.0.1 --lease-time 1h`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			start, end, ok := strings.Cut(rng, "-")
			if !ok {
				return usagef("--range %q: want START-END, e.g. 10.0.0.100-10.0.0.199", rng)
			}
			if lease < 0 {
				return usagef("--lease-time %s is negative", lease)
			}
			sn := &underlayv1.Subnet{Name: args[0], Cidr: cidr, RangeStart: start, RangeEnd: end, Gateway: gateway,
				Dns: dns, LeaseSeconds: int64(lease / time.Second), Domain: domain}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.IPAM.CreateSubnet(ctx, &underlayv1.CreateSubnetRequest{Subnet: sn})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { subnetsTable(w, []*underlayv1.Subnet{r}) })
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cidr, "cidr", "", "the network, e.g. 10.0.0.0/24 (required)")
	f.StringVar(&rng, "range", "", "the dynamic pool START-END, inclusive (required)")
	f.StringVar(&gateway, "gateway", "", "default router handed to clients")
	f.StringSliceVar(&dns, "dns", nil, "DNS resolvers handed to clients")
	f.StringVar(&domain, "domain", "", "DNS search domain handed to clients")
	f.DurationVar(&lease, "lease-time", time.Hour, "lease duration")
	return cmd
}

func subnetsTable(w io.Writer, subnets []*underlayv1.Subnet) {
	row(w, "NAME", "CIDR", "RANGE", "GATEWAY", "DNS", "LEASE")
	for _, s := range subnets {
		row(w, s.GetName(), s.GetCidr(), s.GetRangeStart()+"-"+s.GetRangeEnd(), orDash(s.GetGateway()),
			orDash(strings.Join(s.GetDns(), ",")), (time.Duration(s.GetLeaseSeconds()) * time.Second).String())
	}
}

func (a *app) newSubnetListCmd() *cobra.Command {
	return &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List subnets",
		Long:    `List subnets with their dynamic range, gateway, DNS and lease time.`,
		Example: `  underlay subnet ls -o yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.IPAM.ListSubnets(ctx, &underlayv1.ListSubnetsRequest{Read: a.readOptions()})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { subnetsTable(w, r.GetSubnets()) })
			})
		},
	}
}

func (a *app) newSubnetDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Aliases: []string{"rm"}, Short: "Delete a subnet with its leases and reservations",
		Long:    `Delete a subnet. Its leases and reservations go with it.`,
		Example: `  underlay subnet delete prov`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.IPAM.DeleteSubnet(ctx, &underlayv1.DeleteSubnetRequest{Name: args[0]})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { fmt.Fprintf(w, "Deleted subnet %s.\n", args[0]) })
			})
		},
	}
}

func (a *app) newLeaseCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "lease",
		Short: "Show DHCP leases",
		Long:  `Show the addresses leased by the boot service's authoritative DHCP.`,
		Example: `  underlay lease ls
  underlay lease ls --subnet prov --all`,
	})
	var subnet string
	var all bool
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List leases",
		Long:    `List current leases (--all includes expired and declined ones).`,
		Example: `  underlay lease ls --subnet prov`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.IPAM.ListLeases(ctx, &underlayv1.ListLeasesRequest{Read: a.readOptions(), Subnet: subnet, All: all})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) {
					row(w, "SUBNET", "IP", "MAC", "HOSTNAME", "EXPIRES", "STATE")
					for _, l := range r.GetLeases() {
						state := "active"
						if l.GetDeclined() {
							state = "declined"
						} else if !l.GetExpires().AsTime().After(time.Now()) {
							state = "expired"
						}
						row(w, l.GetSubnet(), l.GetIp(), l.GetMac(), orDash(l.GetHostname()), p.ago(l.GetExpires()), state)
					}
				})
			})
		},
	}
	ls.Flags().StringVar(&subnet, "subnet", "", "only this subnet")
	ls.Flags().BoolVar(&all, "all", false, "include expired and declined leases")
	cmd.AddCommand(ls)
	return cmd
}

func (a *app) newReservationCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "reservation",
		Short: "Pin addresses to MACs",
		Long:  `Manage reservations: a MAC always gets the same address of a subnet.`,
		Example: `  underlay reservation add prov 52:54:00:12:34:56 10.0.0.20 --hostname db1
  underlay reservation ls`,
	})
	var hostname, subnet string
	add := &cobra.Command{
		Use: "add SUBNET MAC IP", Short: "Reserve an address for a MAC",
		Long:    `Reserve IP in SUBNET for MAC. The address may be inside or outside the dynamic range.`,
		Example: `  underlay reservation add prov 52:54:00:12:34:56 10.0.0.20`,
		Args:    exactArgs("SUBNET", "MAC", "IP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.IPAM.CreateReservation(ctx, &underlayv1.CreateReservationRequest{Reservation: &underlayv1.Reservation{
					Subnet: args[0], Mac: args[1], Ip: args[2], Hostname: hostname,
				}})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { reservationsTable(w, []*underlayv1.Reservation{r}) })
			})
		},
	}
	add.Flags().StringVar(&hostname, "hostname", "", "host name handed to the client")
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List reservations",
		Long: `List reservations.`, Example: `  underlay reservation ls --subnet prov`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.IPAM.ListReservations(ctx, &underlayv1.ListReservationsRequest{Read: a.readOptions(), Subnet: subnet})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { reservationsTable(w, r.GetReservations()) })
			})
		},
	}
	ls.Flags().StringVar(&subnet, "subnet", "", "only this subnet")
	del := &cobra.Command{
		Use: "delete SUBNET MAC", Aliases: []string{"rm"}, Short: "Remove a reservation",
		Long: `Remove the reservation of MAC in SUBNET.`, Example: `  underlay reservation delete prov 52:54:00:12:34:56`,
		Args: exactArgs("SUBNET", "MAC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.IPAM.DeleteReservation(ctx, &underlayv1.DeleteReservationRequest{Subnet: args[0], Mac: args[1]})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { fmt.Fprintf(w, "Removed the reservation of %s in %s.\n", args[1], args[0]) })
			})
		},
	}
	cmd.AddCommand(add, ls, del)
	return cmd
}

func reservationsTable(w io.Writer, rs []*underlayv1.Reservation) {
	row(w, "SUBNET", "MAC", "IP", "HOSTNAME")
	for _, r := range rs {
		row(w, r.GetSubnet(), r.GetMac(), r.GetIp(), orDash(r.GetHostname()))
	}
}
