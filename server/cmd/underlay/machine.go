package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// errBadLabel is returned for a label argument that is neither k=v nor k-.
var errBadLabel = errors.New("bad label")

func (a *app) newMachineCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "machine",
		Aliases: []string{"machines", "m"},
		Short:   "List, inspect, label and delete machines",
		Long: `Work with machines: the managed hosts (bare metal or VMs) that enrolled with
the cluster. States are discovered, ready, configuring, deploying, active,
failed, redeploying and retired; online/offline presence is shown separately.`,
		Example: `  underlay machine ls --state ready --label rack=r12
  underlay machine show m-3fa9c0d2e1b4
  underlay machine label m-3fa9c0d2e1b4 rack=r12 env-`,
	})
	cmd.AddCommand(a.newMachineListCmd(), a.newMachineShowCmd(), a.newMachineInventoryCmd(),
		a.newMachineLabelCmd(), a.newMachineDeleteCmd(), a.newMachineEventsCmd())
	cmd.AddCommand(a.machineProvisionCmds()...)
	return cmd
}

func (a *app) newMachineListCmd() *cobra.Command {
	var (
		state, onlineFlag string
		labels            []string
	)
	cmd := &cobra.Command{
		Use:     "ls [QUERY]",
		Aliases: []string{"list"},
		Short:   "List machines, optionally filtered",
		Long: `List machines. Filters combine: --state, every --label k=v, --online, and an
optional free-text QUERY matched against ID, hostname, labels, MACs and serials.`,
		Example: `  underlay machine ls
  underlay machine ls --state ready --online true
  underlay machine ls --label rack=r12 --label gpu=a100
  underlay machine ls 52:54:00:12:34:56`,
		Args: rangeArgs(0, 1, "at most one QUERY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &underlayv1.ListMachinesRequest{Read: a.readOptions()}
			if state != "" {
				n, names, ok := parseEnum(underlayv1.MachineState(0).Descriptor(), "MACHINE_STATE_", state)
				if !ok {
					return flagEnum("state", state, names)
				}
				req.State = stateName(underlayv1.MachineState(n))
			}
			switch onlineFlag {
			case "", "true", "false":
				req.Online = onlineFlag
			default:
				return flagEnum("online", onlineFlag, []string{"true", "false"})
			}
			if len(labels) > 0 {
				set, remove, err := parseLabels(labels)
				if err != nil {
					return usagef("--label: %w", err)
				}
				if len(remove) > 0 {
					return usagef("--label: %w %q: filters are k=v", errBadLabel, remove[0]+"-")
				}
				req.Labels = set
			}
			if len(args) == 1 {
				req.Query = args[0]
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Machines.List(ctx, req)
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { p.machinesTable(w, r.GetMachines()) })
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only machines in this state (discovered, ready, ...)")
	f.StringArrayVar(&labels, "label", nil, "only machines with label k=v (repeatable; all must match)")
	f.StringVar(&onlineFlag, "online", "", "only online (true) or offline (false) machines")
	return cmd
}

func (a *app) newMachineShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Aliases: []string{"get"},
		Short:   "Show one machine",
		Long:    `Show a machine's state, role, labels, presence and identity.`,
		Example: `  underlay machine show m-3fa9c0d2e1b4 -o yaml`,
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				m, err := c.Machines.Get(ctx, &underlayv1.GetMachineRequest{Id: args[0], Read: a.readOptions()})
				if err != nil {
					return err
				}
				return p.print(m, func(w io.Writer) { p.machineDetail(w, m) })
			})
		},
	}
}

func (a *app) newMachineInventoryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inventory ID",
		Short: "Show the hardware a machine reported",
		Long: `Show a summary of the hardware inventory a machine reported: system, CPU,
memory, disks and NICs. -o json or -o yaml prints the full inventory.`,
		Example: `  underlay machine inventory m-3fa9c0d2e1b4
  underlay machine inventory m-3fa9c0d2e1b4 -o json`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				inv, err := c.Machines.GetInventory(ctx, &underlayv1.GetMachineRequest{Id: args[0], Read: a.readOptions()})
				if err != nil {
					return err
				}
				return p.print(inv, func(w io.Writer) { p.inventorySummary(w, inv) })
			})
		},
	}
}

func (a *app) newMachineLabelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "label ID KEY=VALUE... | KEY-...",
		Short: "Set or remove labels on a machine",
		Long: `Set labels with KEY=VALUE and remove them with KEY- (kubectl style). All
changes are applied together. The machine with its new labels is printed.`,
		Example: `  underlay machine label m-3fa9c0d2e1b4 rack=r12 gpu=a100
  underlay machine label m-3fa9c0d2e1b4 gpu-`,
		Args: rangeArgs(2, -1, "an ID and at least one KEY=VALUE or KEY-"),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, remove, err := parseLabels(args[1:])
			if err != nil {
				return usagef("%w", err)
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				m, err := c.Machines.Label(ctx, &underlayv1.LabelMachineRequest{Id: args[0], Set: set, Remove: remove})
				if err != nil {
					return err
				}
				return p.print(m, func(w io.Writer) {
					fmt.Fprintf(w, "Machine %s labels: %s\n", m.GetId(), labelString(m.GetLabels()))
				})
			})
		},
	}
}

// parseLabels splits k=v (set) and k- (remove) arguments. A key may appear
// only once; keys and values may not contain whitespace.
func parseLabels(args []string) (set map[string]string, remove []string, err error) {
	seen := map[string]bool{}
	for _, arg := range args {
		var key string
		if k, v, ok := strings.Cut(arg, "="); ok {
			if err := checkLabel(arg, k, v); err != nil {
				return nil, nil, err
			}
			if set == nil {
				set = map[string]string{}
			}
			key, set[k] = k, v
		} else if k, ok := strings.CutSuffix(arg, "-"); ok {
			if err := checkLabel(arg, k, ""); err != nil {
				return nil, nil, err
			}
			key = k
			remove = append(remove, k)
		} else {
			return nil, nil, fmt.Errorf("%w %q: use KEY=VALUE to set or KEY- to remove", errBadLabel, arg)
		}
		if seen[key] {
			return nil, nil, fmt.Errorf("%w %q: key %q given twice", errBadLabel, arg, key)
		}
		seen[key] = true
	}
	sort.Strings(remove)
	return set, remove, nil
}

func checkLabel(arg, k, v string) error {
	if k == "" {
		return fmt.Errorf("%w %q: empty key", errBadLabel, arg)
	}
	if strings.ContainsAny(k, " \t\n=") || strings.ContainsAny(v, "\t\n") {
		return fmt.Errorf("%w %q: keys may not contain whitespace or '='", errBadLabel, arg)
	}
	return nil
}

func (a *app) newMachineDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a machine and revoke its certificates",
		Long: `Delete a machine from the cluster. Its certificates are revoked, so its agent
can no longer connect; if the machine boots the discovery image again it
enrolls as new.`,
		Example: `  underlay machine delete m-3fa9c0d2e1b4`,
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Machines.Delete(ctx, &underlayv1.DeleteMachineRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) {
					fmt.Fprintf(w, "Machine %s deleted.\n", args[0])
					if len(r.GetRevokedSerials()) == 0 {
						fmt.Fprintln(w, "No certificate was revoked.")
						return
					}
					fmt.Fprintln(w, "Revoked certificate serials:")
					for _, s := range r.GetRevokedSerials() {
						fmt.Fprintf(w, "  %s\n", s)
					}
				})
			})
		},
	}
}

func (a *app) newMachineEventsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "events ID",
		Short:   "Show a machine's event history",
		Long:    `Show what happened to a machine, oldest first. Times are RFC3339 in UTC.`,
		Example: `  underlay machine events m-3fa9c0d2e1b4`,
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Machines.Events(ctx, &underlayv1.MachineEventsRequest{Id: args[0], Read: a.readOptions()})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { eventsTable(w, r.GetEvents()) })
			})
		},
	}
}
