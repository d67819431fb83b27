package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// bootDevices are the one-time boot overrides machine boot accepts.
var bootDevices = []string{"pxe", "disk"}

func (a *app) newMachinePowerCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "power",
		Short: "Switch a machine on, off or power-cycle it through its BMC",
		Long: `Drive a machine's power through its BMC (Redfish), using the machine's
bmc_address, bmc_username and bmc_password params (set them with 'underlay
param set --machine ID ... --secret bmc_password=...'). Each command prints
the power state the BMC reports afterwards.`,
		Example: `  underlay machine power status m-3fa9c0d2e1b4
  underlay machine power cycle m-3fa9c0d2e1b4`,
	})
	for _, act := range []struct{ action, short, long string }{
		{"on", "Power a machine on", "Power a machine on through its BMC. A machine that is already on stays on."},
		{"off", "Power a machine off (hard)", "Power a machine off through its BMC, without waiting for its operating system to shut down."},
		{"cycle", "Power-cycle a machine (off, then on)", "Power-cycle a machine through its BMC: off, then on again (a machine that is off is switched on)."},
		{"status", "Show a machine's power state", "Show the power state and the boot override the machine's BMC reports. Nothing is changed, so readonly operators may use it too."},
	} {
		cmd.AddCommand(a.newPowerActionCmd(act.action, act.short, act.long))
	}
	return cmd
}

func (a *app) newPowerActionCmd(action, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:     action + " ID",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  underlay machine power %s m-3fa9c0d2e1b4", action),
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				var r *underlayv1.PowerResponse
				var err error
				if action == "status" {
					r, err = c.Power.PowerStatus(ctx, &underlayv1.PowerStatusRequest{MachineId: args[0]})
				} else {
					r, err = c.Power.Power(ctx, &underlayv1.PowerRequest{MachineId: args[0], Action: action})
				}
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { powerTable(w, r) })
			})
		},
	}
}

func (a *app) newMachineBootCmd() *cobra.Command {
	var once string
	cmd := &cobra.Command{
		Use:   "boot ID --once pxe|disk",
		Short: "Set a machine's next boot device through its BMC",
		Long: `Make the machine boot once from the network (pxe) or from its disk (disk) at
its next boot, through its BMC. The override is one-time: the boot after that
follows the machine's normal boot order. Combine it with 'underlay machine
power cycle' to boot now.`,
		Example: `  underlay machine boot m-3fa9c0d2e1b4 --once pxe
  underlay machine power cycle m-3fa9c0d2e1b4`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dev := strings.ToLower(once)
			if !slices.Contains(bootDevices, dev) {
				return flagEnum("once", once, bootDevices)
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Power.Boot(ctx, &underlayv1.BootRequest{MachineId: args[0], Device: dev})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { powerTable(w, r) })
			})
		},
	}
	cmd.Flags().StringVar(&once, "once", "", "boot device for the next boot: pxe or disk (required)")
	return cmd
}

func powerTable(w io.Writer, r *underlayv1.PowerResponse) {
	kv(w, "Machine", r.GetMachineId())
	kv(w, "Power", r.GetPowerState())
	kv(w, "Boot override", r.GetBootOverride())
	kv(w, "BMC", r.GetBmc())
}
