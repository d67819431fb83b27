package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"time"

	"underlay.dev/agent/driver/bios"
	"underlay.dev/agent/runner"
	"underlay.dev/pkg/redfish"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Hardware are the drivers of the hardware steps of a role: RAID, BIOS,
// host networking and the redeploy wipe. A nil driver makes its step fail
// with a message saying it is not available on this machine. The agent's
// main wires the real drivers (mdadm, Redfish, netlink); tests pass fakes.
type Hardware struct {
	// RAID applies a resolved RAID layout (raidconf.Resolved as JSON).
	RAID func(ctx context.Context, specJSON string, log io.Writer) error
	// Network applies a resolved network_data document; check tells
	// whether the machine still reaches the cluster.
	Network func(ctx context.Context, specJSON string, check func(context.Context) error, log io.Writer) error
	// BIOS returns a BIOS driver for the machine's BMC.
	BIOS func(ep redfish.Endpoint) bios.Driver
	// Wipe wipes the machine's disks (args as the task gives them).
	Wipe runner.Action
}

// biosSettled bounds the wait for staged BIOS settings to show after a
// reset that did not take this agent down (a BMC that resets a machine
// other than this one, or applies settings without a host reboot).
var biosSettled = 5 * time.Minute

func (a *Agent) actions() map[string]runner.Action {
	hw := a.cfg.Hardware
	unavailable := func(kind string) runner.Action {
		return runner.ActionFunc(func(context.Context, runner.Job) error {
			return fmt.Errorf("%s steps are not available on this agent (no %s driver)", kind, kind)
		})
	}
	acts := map[string]runner.Action{
		"raid": unavailable("raid"), "network": unavailable("network"),
		"bios": unavailable("bios"), "wipe": unavailable("wipe"),
	}
	if hw.RAID != nil {
		acts["raid"] = runner.ActionFunc(func(ctx context.Context, j runner.Job) error {
			return hw.RAID(ctx, j.Spec().SpecJSON, j.Log())
		})
	}
	if hw.Network != nil {
		acts["network"] = runner.ActionFunc(func(ctx context.Context, j runner.Job) error {
			return hw.Network(ctx, j.Spec().SpecJSON, a.checkServers, j.Log())
		})
	}
	if hw.BIOS != nil {
		acts["bios"] = runner.ActionFunc(a.applyBIOS)
	}
	if hw.Wipe != nil {
		acts["wipe"] = hw.Wipe
	}
	return acts
}

// applyBIOS stages the role's BIOS settings through the BMC and resets
// the machine. When this agent runs on that machine it goes down with it,
// and the step, delivered again after the boot, finds the settings in
// effect.
func (a *Agent) applyBIOS(ctx context.Context, j runner.Job) error {
	spec := j.Spec()
	var s struct {
		Settings map[string]string `json:"settings"`
	}
	if err := json.Unmarshal([]byte(spec.SpecJSON), &s); err != nil {
		return fmt.Errorf("bios spec: %w", err)
	}
	ep := redfish.Endpoint{}
	for _, p := range spec.Params {
		switch p.Name {
		case "bmc_address":
			ep.Address = p.Value
		case "bmc_username":
			ep.Username = p.Value
		case "bmc_password":
			ep.Password = p.Value
		case "bmc_ca":
			ep.CAPEM = []byte(p.Value)
		case "bmc_insecure":
			v, err := strconv.ParseBool(p.Value)
			if err != nil {
				return fmt.Errorf("param bmc_insecure %q: want true or false", p.Value)
			}
			ep.Insecure = v
		}
	}
	log := j.Log()
	d := a.cfg.Hardware.BIOS(ep)
	rep, err := d.Apply(ctx, s.Settings, log)
	if err != nil {
		return err
	}
	if rep.Applied {
		fmt.Fprintf(log, "BIOS settings in effect: %s\n", settingsLine(s.Settings))
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(rep.Changed)) {
		c := rep.Changed[name]
		fmt.Fprintf(log, "staged %s: %s -> %s\n", name, c.From, c.To)
	}
	if !rep.RebootNeeded {
		return nil
	}
	fmt.Fprintf(log, "resetting the machine through its BMC (%s) to apply the staged settings\n", ep.Address)
	if err := d.Reboot(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(biosSettled)
	for time.Now().Before(deadline) {
		if err := a.sleep(ctx, 5*time.Second); err != nil {
			return err
		}
		rep, err := d.Apply(ctx, s.Settings, io.Discard)
		if err == nil && rep.Applied {
			fmt.Fprintf(log, "BIOS settings in effect after the reset: %s\n", settingsLine(s.Settings))
			return nil
		}
	}
	return fmt.Errorf("bios settings still not in effect %s after the reset", biosSettled)
}

func settingsLine(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := ""
	for i, k := range keys {
		if i > 0 {
			out += ", "
		}
		out += k + "=" + m[k]
	}
	return out
}

// checkServers reports whether a management node answers over a fresh
// mTLS connection (after a network change): it tries every known server.
func (a *Agent) checkServers(ctx context.Context) error {
	a.mu.Lock()
	servers := append([]string(nil), a.servers...)
	a.mu.Unlock()
	var errs []error
	for _, addr := range servers {
		conn, err := a.pinnedConn(addr, a.certs.Get, a.clock.Now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = underlayv1.NewNodeServiceClient(conn).Info(cctx, &underlayv1.InfoRequest{})
		cancel()
		conn.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return fmt.Errorf("no management server reachable: %w", errors.Join(errs...))
}
