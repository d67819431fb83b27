package rpc

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"underlay.dev/pkg/redfish"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/plan"
)

// bmcOf returns the Redfish endpoint of a machine from its resolved
// params (bmc_address, bmc_username, bmc_password, bmc_insecure, bmc_ca).
func (s *Server) bmcOf(ctx context.Context, machineID string) (redfish.Endpoint, error) {
	if err := s.read(ctx, nil); err != nil {
		return redfish.Endpoint{}, err
	}
	view := s.store.View()
	m, ok := view.Machine(machineID)
	if !ok {
		return redfish.Endpoint{}, notFoundf("machine %q", machineID)
	}
	p, _ := view.Plan(machineID)
	vals, _ := plan.Params(view, m, p, nil)
	get := func(name string) (string, error) {
		v, ok := vals[name]
		if !ok {
			return "", nil
		}
		if len(v.Sealed) > 0 {
			return s.open(v.Sealed, v.Purpose)
		}
		return v.Value, nil
	}
	var ep redfish.Endpoint
	var err error
	if ep.Address, err = get("bmc_address"); err != nil {
		return ep, err
	}
	if ep.Address == "" {
		return ep, preconditionf("machine %s has no BMC: set its bmc_address, bmc_username and bmc_password params (e.g. 'underlay param set --machine %s bmc_address=10.0.9.5 bmc_username=admin --secret bmc_password=...')", machineID, machineID)
	}
	if ep.Username, err = get("bmc_username"); err != nil {
		return ep, err
	}
	if ep.Password, err = get("bmc_password"); err != nil {
		return ep, err
	}
	insecure, err := get("bmc_insecure")
	if err != nil {
		return ep, err
	}
	if insecure != "" {
		if ep.Insecure, err = strconv.ParseBool(insecure); err != nil {
			return ep, invalidf("param bmc_insecure %q: want true or false", insecure)
		}
	}
	ca, err := get("bmc_ca")
	if err != nil {
		return ep, err
	}
	ep.CAPEM = []byte(ca)
	return ep, nil
}

func (s *powerService) withBMC(ctx context.Context, machineID string, fn func(context.Context, *redfish.Client) error) (*underlayv1.PowerResponse, error) {
	ep, err := s.bmcOf(ctx, machineID)
	if err != nil {
		return nil, toStatus(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := redfish.Dial(ctx, ep)
	if err != nil {
		return nil, toStatus(preconditionf("BMC of %s: %v", machineID, err))
	}
	defer c.Close()
	if err := fn(ctx, c); err != nil {
		return nil, toStatus(preconditionf("BMC of %s: %v", machineID, err))
	}
	sys, err := c.System(ctx)
	if err != nil {
		return nil, toStatus(preconditionf("BMC of %s: %v", machineID, err))
	}
	return &underlayv1.PowerResponse{MachineId: machineID, PowerState: sys.PowerState, BootOverride: sys.BootOverrideTarget + " (" + sys.BootOverrideEnabled + ")", Bmc: c.Address()}, nil
}

// Power switches a machine on, off or through a power cycle, or reports
// its power state, through its BMC.
func (s *powerService) Power(ctx context.Context, req *underlayv1.PowerRequest) (*underlayv1.PowerResponse, error) {
	switch req.GetAction() {
	case "on", "off", "cycle", "reset", "status":
	default:
		return nil, toStatus(invalidf("power action %q: want on, off, cycle, reset or status", req.GetAction()))
	}
	res, err := s.withBMC(ctx, req.GetMachineId(), func(ctx context.Context, c *redfish.Client) error {
		if req.GetAction() == "status" {
			return nil
		}
		return c.Power(ctx, req.GetAction())
	})
	if err == nil && req.GetAction() != "status" {
		s.log.Info("machine power", "machine_id", req.GetMachineId(), "action", req.GetAction(), "by", actor(ctx))
	}
	return res, err
}

// PowerStatus reports a machine's power state and boot override as its BMC
// sees them; it changes nothing, so readonly operators may call it.
func (s *powerService) PowerStatus(ctx context.Context, req *underlayv1.PowerStatusRequest) (*underlayv1.PowerResponse, error) {
	return s.withBMC(ctx, req.GetMachineId(), func(context.Context, *redfish.Client) error { return nil })
}

// Boot sets a machine's one-time boot device through its BMC.
func (s *powerService) Boot(ctx context.Context, req *underlayv1.BootRequest) (*underlayv1.PowerResponse, error) {
	switch req.GetDevice() {
	case "pxe", "disk":
	default:
		return nil, toStatus(invalidf("boot device %q: want pxe or disk", req.GetDevice()))
	}
	res, err := s.withBMC(ctx, req.GetMachineId(), func(ctx context.Context, c *redfish.Client) error {
		return c.SetBootOnce(ctx, req.GetDevice())
	})
	if err == nil {
		s.log.Info("machine boot device", "machine_id", req.GetMachineId(), "device", req.GetDevice(), "by", actor(ctx))
	}
	return res, err
}

func preconditionf(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), errPrecondition)
}
