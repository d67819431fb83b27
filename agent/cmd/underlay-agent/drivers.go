package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"underlay.dev/agent"
	"underlay.dev/agent/bootenv"
	"underlay.dev/agent/driver/bios"
	"underlay.dev/agent/driver/network"
	"underlay.dev/agent/driver/raid"
	"underlay.dev/agent/driver/wipe"
	"underlay.dev/pkg/netconf"
	"underlay.dev/pkg/raidconf"
	"underlay.dev/pkg/redfish"
)

// RAIDControllerDir holds the hardware RAID controllers an operator wired
// up as command drivers (docs/raid.md), one file per controller.
const RAIDControllerDir = "/etc/underlay/raid"

// drivers returns the real hardware drivers: mdadm software RAID plus the
// command-driven controllers of RAIDControllerDir, Redfish BIOS, netlink
// networking (DHCP for ipv4_dhcp networks renewed until ctx ends) and the
// disk wipe. stopBootLease, if set, is called once a network config is in
// place.
func drivers(ctx context.Context, log *slog.Logger, stopBootLease func()) agent.Hardware {
	software := raid.NewSoftware(raid.SoftwareConfig{})
	dhcp := func(jctx context.Context, iface string) error {
		_, err := bootenv.Lease(jctx, ctx, bootenv.Options{Log: log.With("component", "dhcp")}, iface)
		return err
	}
	return agent.Hardware{
		RAID: func(ctx context.Context, specJSON string, w io.Writer) error {
			var want raidconf.Resolved
			if err := json.Unmarshal([]byte(specJSON), &want); err != nil {
				return fmt.Errorf("raid spec: %w", err)
			}
			ctrls := map[string]raid.Controller{software.Name(): software}
			cmds, err := raid.LoadCommands(RAIDControllerDir, raid.RunCommand)
			if err != nil {
				return err
			}
			for _, c := range cmds {
				ctrls[c.Name()] = c
			}
			rep, err := raid.Apply(ctx, ctrls, &want, raid.NewDevices(""), w)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "raid: %d created, %d deleted, %d unchanged\n", len(rep.Created), len(rep.Deleted), len(rep.Unchanged))
			return nil
		},
		Network: func(ctx context.Context, specJSON string, check func(context.Context) error, w io.Writer) error {
			d, err := netconf.Parse([]byte(specJSON))
			if err != nil {
				return fmt.Errorf("network spec: %w", err)
			}
			rep, err := network.New(network.Config{Logger: log.With("component", "network"), DHCP: dhcp}).Apply(ctx, d, check, w)
			if err != nil {
				return err
			}
			if stopBootLease != nil {
				stopBootLease()
			}
			if !rep.Changed {
				fmt.Fprintln(w, "network: configuration already in place")
			}
			return nil
		},
		BIOS: func(ep redfish.Endpoint) bios.Driver { return bios.NewRedfish(ep, log.With("component", "bios")) },
		Wipe: wipe.Action(wipe.Config{Stop: software.StopArrays, Logger: log.With("component", "wipe")}),
	}
}

// reboot restarts the machine: through systemd when it runs the machine
// (an installed agent), else directly (the discovery image, where the
// agent is init's child and nothing needs stopping cleanly).
func reboot(ctx context.Context) error {
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		if out, err := exec.CommandContext(ctx, "systemctl", "reboot").CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl reboot: %v: %s", err, out)
		}
		return nil
	}
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}
