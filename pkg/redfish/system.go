package redfish

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/stmcginnis/gofish"
	gfredfish "github.com/stmcginnis/gofish/redfish"
)

// System is what the BMC says about the managed ComputerSystem.
type System struct {
	ID, UUID, Manufacturer, Model, SerialNumber string
	// PowerState is On, Off, PoweringOn, PoweringOff as the BMC reports it.
	PowerState string
	// BootOverrideTarget is the boot source override (None, Pxe, Hdd,
	// ...); BootOverrideEnabled says for how long (Disabled, Once,
	// Continuous).
	BootOverrideTarget, BootOverrideEnabled string
}

// systemExtras are the parts of a ComputerSystem gofish does not parse.
type systemExtras struct {
	Bios struct {
		ODataID string `json:"@odata.id"`
	}
	Boot struct {
		Targets []string `json:"BootSourceOverrideTarget@Redfish.AllowableValues"`
	}
}

func extras(cs *gfredfish.ComputerSystem) (systemExtras, error) {
	var x systemExtras
	if err := json.Unmarshal(cs.RawData, &x); err != nil {
		return x, fmt.Errorf("decode system %s: %w", cs.ODataID, ErrBMC)
	}
	return x, nil
}

// System returns the managed system's identity, power state and boot
// override.
func (c *Client) System(ctx context.Context) (System, error) {
	var s System
	err := c.do(ctx, func(api *gofish.APIClient) error {
		cs, err := c.computerSystem(api)
		if err != nil {
			return err
		}
		s = System{
			ID: cs.ID, UUID: cs.UUID, Manufacturer: cs.Manufacturer, Model: cs.Model,
			SerialNumber: cs.SerialNumber, PowerState: string(cs.PowerState),
			BootOverrideTarget:  string(cs.Boot.BootSourceOverrideTarget),
			BootOverrideEnabled: string(cs.Boot.BootSourceOverrideEnabled),
		}
		return nil
	})
	if err != nil {
		return System{}, c.errorf("get system", err)
	}
	return s, nil
}

// PowerState returns the system's power state (On, Off, ...).
func (c *Client) PowerState(ctx context.Context) (string, error) {
	s, err := c.System(ctx)
	return s.PowerState, err
}

// bootDevices maps SetBootOnce's devices to Redfish boot targets.
var bootDevices = map[string]gfredfish.BootSourceOverrideTarget{
	"pxe":  gfredfish.PxeBootSourceOverrideTarget,
	"disk": gfredfish.HddBootSourceOverrideTarget,
}

// SetBootOnce makes the next boot, and only the next, use device: "pxe"
// (network boot) or "disk" (first hard disk).
func (c *Client) SetBootOnce(ctx context.Context, device string) error {
	target, ok := bootDevices[strings.ToLower(strings.TrimSpace(device))]
	if !ok {
		return c.errorf("set boot once", fmt.Errorf("boot device %q, want pxe or disk: %w", device, ErrInvalid))
	}
	err := c.do(ctx, func(api *gofish.APIClient) error {
		cs, err := c.computerSystem(api)
		if err != nil {
			return err
		}
		x, err := extras(cs)
		if err != nil {
			return err
		}
		if len(x.Boot.Targets) > 0 && !slices.Contains(x.Boot.Targets, string(target)) {
			return fmt.Errorf("boot target %s not offered by the bmc (offers %s): %w",
				target, strings.Join(x.Boot.Targets, ", "), ErrInvalid)
		}
		return cs.SetBoot(gfredfish.Boot{
			BootSourceOverrideTarget:  target,
			BootSourceOverrideEnabled: gfredfish.OnceBootSourceOverrideEnabled,
		})
	})
	if err != nil {
		return c.errorf("set boot once "+device, err)
	}
	return nil
}

// Power actions.
const (
	PowerOn          = "on"           // On
	PowerOff         = "off"          // ForceOff
	PowerGracefulOff = "graceful-off" // GracefulShutdown (ACPI)
	PowerCycle       = "cycle"        // PowerCycle, or ForceRestart where PowerCycle is not offered
	PowerReset       = "reset"        // ForceRestart
)

// Power switches the system: on, off (forced), graceful-off, cycle or
// reset. It is idempotent where that is well defined: on when already on
// and off when already off do nothing; cycle and reset of a system that
// is off power it on, so each of them always ends in a fresh boot (which
// applies staged BIOS settings and a one-time boot device).
func (c *Client) Power(ctx context.Context, action string) error {
	a := strings.ToLower(strings.TrimSpace(action))
	switch a {
	case PowerOn, PowerOff, PowerGracefulOff, PowerCycle, PowerReset:
	default:
		return c.errorf("power", fmt.Errorf("action %q, want on, off, graceful-off, cycle or reset: %w", action, ErrInvalid))
	}
	err := c.do(ctx, func(api *gofish.APIClient) error {
		cs, err := c.computerSystem(api)
		if err != nil {
			return err
		}
		on := cs.PowerState != gfredfish.OffPowerState
		rt, ok := resetType(a, on, cs.SupportedResetTypes)
		if !ok {
			return nil
		}
		if allowed := cs.SupportedResetTypes; len(allowed) > 0 && !slices.Contains(allowed, rt) {
			return fmt.Errorf("reset type %s not offered by the bmc (offers %v): %w", rt, allowed, ErrInvalid)
		}
		return cs.Reset(rt)
	})
	if err != nil {
		return c.errorf("power "+a, err)
	}
	return nil
}

// resetType picks the Redfish ResetType for an action given the power
// state; false means nothing needs doing.
func resetType(action string, on bool, allowed []gfredfish.ResetType) (gfredfish.ResetType, bool) {
	switch action {
	case PowerOn:
		return gfredfish.OnResetType, !on
	case PowerOff:
		return gfredfish.ForceOffResetType, on
	case PowerGracefulOff:
		return gfredfish.GracefulShutdownResetType, on
	}
	if !on {
		return gfredfish.OnResetType, true
	}
	if action == PowerCycle && (len(allowed) == 0 || slices.Contains(allowed, gfredfish.PowerCycleResetType)) {
		return gfredfish.PowerCycleResetType, true
	}
	return gfredfish.ForceRestartResetType, true
}
