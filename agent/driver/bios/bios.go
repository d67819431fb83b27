// Package bios applies a role's BIOS settings through the machine's BMC
// (Redfish). Settings are staged on the BMC and take effect when the
// machine resets, so applying them takes two passes: Apply stages and asks
// for a reboot; after the machine is back, the same Apply finds the
// attributes in effect and reports them applied.
package bios

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"

	"underlay.dev/pkg/redfish"
)

// Driver applies BIOS settings.
type Driver interface {
	// Apply compares want with the attributes in effect. When they are
	// equal it changes nothing and returns Report{Applied: true};
	// otherwise it validates want (an unknown attribute is an error naming
	// it, and nothing is staged), stages the differences and returns them
	// in Report.Changed with RebootNeeded. It is idempotent: values
	// already staged are not staged again.
	Apply(ctx context.Context, want map[string]string, log io.Writer) (Report, error)
	// Reboot makes the staged settings take effect with a BMC reset; the
	// machine, and the agent on it, go down.
	Reboot(ctx context.Context) error
}

// Report is the outcome of Apply.
type Report struct {
	// Applied is true when every wanted value is in effect.
	Applied bool
	// Changed are the attributes that differ from want, staged now or
	// before, with their current and wanted values.
	Changed map[string]Change
	// RebootNeeded is true when staged settings wait for a reset.
	RebootNeeded bool
}

// Change is one attribute's move.
type Change struct {
	From, To string
}

// NewRedfish returns a Driver that talks to the BMC at ep. It dials the
// BMC for each call and logs out afterwards.
func NewRedfish(ep redfish.Endpoint, log *slog.Logger) Driver {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &redfishDriver{ep: ep, log: log}
}

type redfishDriver struct {
	ep  redfish.Endpoint
	log *slog.Logger
}

func (d *redfishDriver) dial(ctx context.Context) (*redfish.Client, error) {
	c, err := redfish.Dial(ctx, d.ep)
	if err != nil {
		return nil, fmt.Errorf("bios: %w", err)
	}
	return c, nil
}

func (d *redfishDriver) close(c *redfish.Client) {
	if err := c.Close(); err != nil {
		d.log.Warn("bmc logout failed", "bmc", c.Address(), "err", err)
	}
}

// Apply implements Driver.
func (d *redfishDriver) Apply(ctx context.Context, want map[string]string, out io.Writer) (Report, error) {
	if out == nil {
		out = io.Discard
	}
	if len(want) == 0 {
		fmt.Fprintln(out, "bios: no settings wanted")
		return Report{Applied: true}, nil
	}
	c, err := d.dial(ctx)
	if err != nil {
		return Report{}, err
	}
	defer d.close(c)

	cur, err := c.BIOS(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("bios: %w", err)
	}
	canon, err := cur.Canonical(want)
	if err != nil {
		fmt.Fprintf(out, "bios: %v; nothing staged\n", err)
		return Report{}, fmt.Errorf("bios: %s: %w", c.Address(), err)
	}

	changed := map[string]Change{}
	stage := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(canon)) {
		to := canon[name]
		from := cur.Current[name]
		pending, isPending := cur.Pending[name]
		switch {
		case from != to:
			changed[name] = Change{From: from, To: to}
			if isPending && pending == to {
				fmt.Fprintf(out, "bios: %s: %s -> %s (already staged)\n", name, from, to)
				continue
			}
			fmt.Fprintf(out, "bios: %s: %s -> %s\n", name, from, to)
			stage[name] = to
		case isPending && pending != to:
			// In effect already, but a different value waits for the next
			// reset: stage the wanted one over it.
			fmt.Fprintf(out, "bios: %s: %s (cancelling the staged %s)\n", name, to, pending)
			stage[name] = to
		}
	}
	if len(stage) > 0 {
		if err := c.StageBIOS(ctx, stage); err != nil {
			fmt.Fprintf(out, "bios: staging failed: %v\n", err)
			return Report{}, fmt.Errorf("bios: %w", err)
		}
		d.log.Info("bios settings staged", "bmc", c.Address(), "attributes", len(stage))
	}
	if len(changed) == 0 {
		fmt.Fprintf(out, "bios: all %d settings in effect\n", len(canon))
		return Report{Applied: true}, nil
	}
	fmt.Fprintf(out, "bios: %d settings staged, reboot needed\n", len(changed))
	return Report{Changed: changed, RebootNeeded: true}, nil
}

// Reboot implements Driver: a forced restart through the BMC, which
// applies the staged settings while the machine boots.
func (d *redfishDriver) Reboot(ctx context.Context) error {
	c, err := d.dial(ctx)
	if err != nil {
		return err
	}
	defer d.close(c)
	if err := c.Power(ctx, redfish.PowerReset); err != nil {
		return fmt.Errorf("bios: reboot: %w", err)
	}
	d.log.Info("machine reset through the bmc to apply bios settings", "bmc", c.Address())
	return nil
}
