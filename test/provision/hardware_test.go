package provision_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"underlay.dev/agent"
	"underlay.dev/agent/driver/bios"
	"underlay.dev/agent/driver/raid"
	raidtest "underlay.dev/agent/driver/raid/drivertest"
	"underlay.dev/pkg/raidconf"
	"underlay.dev/pkg/redfish"
	underlayv1 "underlay.dev/proto/underlay/v1"
	redfishsim "underlay.dev/test/redfish"
)

// startBMC runs the Redfish BMC simulator with the default BIOS registry,
// the machine switched on.
func startBMC(t *testing.T) (*redfishsim.BMC, *redfishsim.MemoryPower) {
	t.Helper()
	power := redfishsim.NewMemoryPower(true)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := redfishsim.Start(ctx, redfishsim.Config{
		Username: "admin", Password: "bmc-secret-pw",
		Systems: []redfishsim.SystemConfig{{ID: "System.Embedded.1", Attributes: redfishsim.DefaultAttributes(), Power: power}},
	})
	if err != nil {
		t.Fatalf("start BMC simulator: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b, power
}

// withBMC sets a machine's BMC params, the password as a secret through
// the CLI.
func (l *lab) withBMC(t *testing.T, id string, b *redfishsim.BMC) {
	t.Helper()
	cl := l.c.Client()
	if _, err := cl.Provision.SetParams(ctxT(t), &underlayv1.SetParamsRequest{MachineId: id, Set: map[string]*underlayv1.ParamValue{
		"bmc_address": {Value: b.URL()}, "bmc_username": {Value: "admin"}, "bmc_ca": {Value: string(b.CAPEM())},
	}}); err != nil {
		t.Fatal(err)
	}
	l.cl.mustCLI(t, "param", "set", "--machine", id, "--secret", "bmc_password=bmc-secret-pw")
}

var redfishBIOS = agent.Hardware{BIOS: func(ep redfish.Endpoint) bios.Driver { return bios.NewRedfish(ep, nil) }}

// TestBIOSThroughRedfish applies a role's BIOS settings through the
// Redfish simulator: staged, applied at the reset the agent asks the BMC
// for, then in effect; an unknown attribute fails the step naming it,
// stages nothing and leaves the machine recoverable; a machine without a
// BMC skips the step and says so. Power and one-time boot go through
// 'underlay machine power' and 'underlay machine boot'.
func TestBIOSThroughRedfish(t *testing.T) {
	b, power := startBMC(t)
	l := newLab(t)
	cl := l.c.Client()
	_, id := l.agent(t, "with-bmc", redfishBIOS, nil)
	_, noBMC := l.agent(t, "no-bmc", redfishBIOS, nil)
	l.withBMC(t, id, b)
	l.cl.mustApplyYAML(t, `
kind: Role
name: tuned
hardware:
  bios: {ProcTurboMode: Disabled, LogicalProc: Disabled}
---
kind: Role
name: typo
hardware:
  bios: {ProcTurboMod: Disabled}
`)
	const sys = "System.Embedded.1"

	// An unknown attribute: the step fails with the BMC's word for it and
	// nothing is staged.
	assign(t, cl, id, "typo")
	p := waitPlan(t, cl, id, "to fail on the unknown attribute", func(p *underlayv1.Plan) bool {
		return p.GetState() == underlayv1.PlanState_PLAN_STATE_FAILED
	})
	if r := p.GetSteps()[0].GetReason(); !strings.Contains(r, "ProcTurboMod") {
		t.Errorf("bios step reason %q does not name the unknown attribute", r)
	}
	if pend := b.Pending(sys); len(pend) != 0 {
		t.Errorf("pending BIOS settings after a refused apply: %v", pend)
	}

	// The machine is recoverable: assign the right role.
	plan := l.cl.mustCLI(t, "machine", "assign", id, "--role", "tuned")
	if !strings.Contains(plan, "ProcTurboMode = Disabled") {
		t.Errorf("plan does not show the BIOS settings it will apply:\n%s", plan)
	}
	p = waitPlan(t, cl, id, "the BIOS settings to be applied", succeeded)
	attrs := b.Attributes(sys)
	if attrs["ProcTurboMode"] != "Disabled" || attrs["LogicalProc"] != "Disabled" {
		t.Errorf("BIOS in effect after the plan: %v", attrs)
	}
	boots := b.Boots(sys)
	if len(boots) != 1 || boots[0].Applied["ProcTurboMode"] != "Disabled" {
		t.Errorf("boots = %+v, want one reset that applied the staged settings", boots)
	}
	logs := logsOf(t, cl, id)
	for _, want := range []string{"ProcTurboMode: Enabled -> Disabled", "resetting the machine through its BMC", "in effect after the reset"} {
		if !strings.Contains(logs, want) {
			t.Errorf("bios job output lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "bmc-secret-pw") {
		t.Errorf("the BMC password shows in the job output")
	}

	// A machine without a BMC skips the step and says why.
	assign(t, cl, noBMC, "tuned")
	p = waitPlan(t, cl, noBMC, "the bios step to be skipped", succeeded)
	if s := p.GetSteps()[0]; s.GetState() != underlayv1.StepState_STEP_STATE_SKIPPED || !strings.Contains(s.GetReason(), "no BMC configured") {
		t.Errorf("bios step on a machine without a BMC: %s %q", s.GetState(), s.GetReason())
	}

	// Power and one-time boot from the CLI.
	if out := l.cl.mustCLI(t, "machine", "power", "status", id); !strings.Contains(out, "On") {
		t.Errorf("power status: %s", out)
	}
	l.cl.mustCLI(t, "machine", "power", "off", id)
	if st, _ := power.State(context.Background()); st != "Off" {
		t.Errorf("after power off the machine is %s", st)
	}
	l.cl.mustCLI(t, "machine", "boot", id, "--once", "pxe")
	l.cl.mustCLI(t, "machine", "power", "on", id)
	l.cl.mustCLI(t, "machine", "power", "cycle", id)
	boots = b.Boots(sys)
	if n := len(boots); n < 3 || boots[n-2].Device != "Pxe" || boots[n-1].Device != "" {
		t.Errorf("boots = %+v: want the power-on to boot PXE once, and the cycle after it the normal order", boots)
	}
	if out, code := l.cl.cli(t, "machine", "power", "status", noBMC); code == 0 || !strings.Contains(out, "has no BMC") {
		t.Errorf("power status of a machine without BMC: exit %d\n%s", code, out)
	}
}

// fakeRAID applies RAID layouts with the recording fake controller over
// the simulated machine's disks.
func fakeRAID(ctrl *raidtest.Controller) func(ctx context.Context, spec string, w io.Writer) error {
	return func(ctx context.Context, spec string, w io.Writer) error {
		var want raidconf.Resolved
		if err := json.Unmarshal([]byte(spec), &want); err != nil {
			return err
		}
		devs := raidtest.Devices{}
		for _, v := range want.Volumes {
			for _, m := range v.Members {
				devs[m.Name] = "/dev/" + m.Name
			}
		}
		_, err := raid.Apply(ctx, map[string]raid.Controller{"software": ctrl}, &want, devs, w)
		return err
	}
}

// TestHardwareResolvedAtAssignment resolves a role's RAID and network
// profiles against the machine's inventory when the role is assigned:
// the plan shows which disks form which array and which NICs bond; a
// level the disks cannot satisfy, or a NIC the machine does not have,
// fails that step with the reason, and the machine takes a good role
// afterwards.
func TestHardwareResolvedAtAssignment(t *testing.T) {
	l := newLab(t)
	cl := l.c.Client()
	ctrl := raidtest.New("software")
	a, id := l.agent(t, "two-disks", agent.Hardware{RAID: fakeRAID(ctrl)}, nil)
	_ = a
	m, err := cl.Machines.GetInventory(ctxT(t), &underlayv1.GetMachineRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	mac := m.GetNics()[0].GetMac()
	l.cl.mustApplyYAML(t, fmt.Sprintf(`
kind: Role
name: raid5
hardware:
  raid: {logical_disks: [{raid_level: "5", size_gb: MAX}]}
---
kind: Role
name: ghost-nic
hardware:
  network:
    links: [{id: nic, type: phy, ethernet_mac_address: "52:54:00:de:ad:00"}]
    networks: [{id: n, type: ipv4_dhcp, link: nic}]
---
kind: Role
name: mirror
hardware:
  raid: {logical_disks: [{raid_level: "1", size_gb: MAX}]}
---
kind: Role
name: one-nic
hardware:
  network:
    links: [{id: nic, type: phy, ethernet_mac_address: "%s"}]
    networks: [{id: n, type: ipv4_dhcp, link: nic}]
`, mac))
	for _, tt := range []struct{ role, step, want string }{
		{"raid5", "raid", "needs at least 3 disks, 2 match"},
		{"ghost-nic", "network", "52:54:00:de:ad:00"},
	} {
		out, code := l.cl.cli(t, "machine", "assign", id, "--role", tt.role)
		p := getPlan(t, cl, id)
		if p.GetState() != underlayv1.PlanState_PLAN_STATE_FAILED || p.GetSteps()[0].GetName() != tt.step ||
			!strings.Contains(p.GetSteps()[0].GetReason(), tt.want) {
			t.Errorf("assign %s (exit %d): plan %s, want step %s failed with %q\n%s\n%s", tt.role, code, p.GetState(), tt.step, tt.want, describePlan(p), out)
		}
		if len(jobs(t, cl, id)) != 0 {
			t.Errorf("assign %s dispatched a job despite the failed resolution", tt.role)
		}
	}
	out := l.cl.mustCLI(t, "machine", "assign", id, "--role", "mirror")
	if !strings.Contains(out, "raid1 of nvme0n1, nvme1n1") {
		t.Errorf("plan does not show the array's member disks:\n%s", out)
	}
	waitPlan(t, cl, id, "the mirror to be built", succeeded)
	if vols := ctrl.Volumes(); len(vols) != 1 || vols[0].Level != "1" || len(vols[0].Members) != 2 {
		t.Errorf("arrays after the plan: %+v", vols)
	}
}
