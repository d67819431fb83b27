// Package plan is the domain core of provisioning: it resolves a role into
// the ordered steps of one machine's plan (hardware steps resolved against
// the machine's inventory, then the role's tasks), tracks which step is
// current, resolves the params a step sees (with where each value came
// from) and renders a step into the job the agent runs. It does no I/O and
// reads no clock, so the FSM can build plans deterministically.
package plan

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Step kinds.
const (
	KindTask    = "task"
	KindBIOS    = "bios"
	KindRAID    = "raid"
	KindNetwork = "network"
	KindWipe    = "wipe"
)

// Default timeouts, in seconds.
const (
	DefaultTaskTimeout     = 3600
	DefaultHardwareTimeout = 1800
)

var (
	// ErrNoRole means the role to assign does not exist.
	ErrNoRole = errors.New("no such role")
	// ErrNoTask means a role names a task that does not exist.
	ErrNoTask = errors.New("no such task")
)

// State is what building and resolving read from the cluster state
// (store.Tx in the FSM, store.View elsewhere).
type State interface {
	Task(name string) (*underlayv1.Task, bool)
	Role(name string) (*underlayv1.Role, bool)
	Profile(name string) (*underlayv1.Profile, bool)
	Global() *underlayv1.GlobalParams
	Plan(machineID string) (*underlayv1.Plan, bool)
	PlansWithRole(role string) []*underlayv1.Plan
}

// Hardware resolves a role's hardware profile against a machine's
// inventory. Each func returns the resolved spec (JSON) and summary lines.
// Nil funcs mean the kind is not supported (the step fails saying so).
type Hardware struct {
	BIOS    func(settings map[string]string) (spec string, summary []string, err error)
	RAID    func(raidJSON string, m *underlayv1.Machine, inv *underlayv1.Inventory, role string) (spec string, summary []string, err error)
	Network func(networkJSON string, m *underlayv1.Machine, inv *underlayv1.Inventory, role string) (spec string, summary []string, err error)
}

// JobID is the ID of attempt of step of a machine's plan generation.
func JobID(machineID string, generation uint64, step, attempt int32) string {
	return fmt.Sprintf("%s.g%d.s%d.a%d", machineID, generation, step, attempt)
}

// Build resolves the plan of machine m for role roleName. Hardware that
// cannot be resolved (a RAID level the disks cannot satisfy, a NIC that
// does not exist) does not fail the build: that step is created failed with
// the reason, and so is the plan, so that the operator sees where and why.
// redeploy puts a wipe step first.
func Build(st State, hw Hardware, m *underlayv1.Machine, inv *underlayv1.Inventory, roleName string, generation uint64, redeploy bool) (*underlayv1.Plan, error) {
	role, ok := st.Role(roleName)
	if !ok {
		return nil, fmt.Errorf("role %q: %w", roleName, ErrNoRole)
	}
	p := &underlayv1.Plan{
		MachineId:   m.GetId(),
		Role:        roleName,
		RoleVersion: role.GetMeta().GetVersion(),
		Generation:  generation,
		State:       underlayv1.PlanState_PLAN_STATE_RUNNING,
		Redeploy:    redeploy,
	}
	add := func(s *underlayv1.Step) {
		s.Index = int32(len(p.Steps))
		if s.State == underlayv1.StepState_STEP_STATE_UNSPECIFIED {
			s.State = underlayv1.StepState_STEP_STATE_PENDING
		}
		p.Steps = append(p.Steps, s)
	}
	if redeploy {
		add(&underlayv1.Step{Name: KindWipe, Kind: KindWipe, MaxAttempts: 1, TimeoutSeconds: DefaultHardwareTimeout,
			Summary: []string{"wipe signatures and partition tables of every disk not holding a mounted filesystem"}})
	}
	for _, kind := range []string{KindBIOS, KindRAID, KindNetwork} {
		if !hasHardware(role, kind) {
			continue
		}
		add(HardwareStep(hw, role, kind, m, inv))
	}
	seen := map[string]int{}
	for _, name := range role.GetTasks() {
		t, ok := st.Task(name)
		if !ok {
			return nil, fmt.Errorf("role %s: task %q: %w", roleName, name, ErrNoTask)
		}
		seen[name]++
		stepName := name
		if seen[name] > 1 {
			stepName = fmt.Sprintf("%s#%d", name, seen[name])
		}
		timeout := t.GetTimeoutSeconds()
		if timeout <= 0 {
			timeout = DefaultTaskTimeout
		}
		add(&underlayv1.Step{
			Name: stepName, Kind: KindTask, Task: name, TaskVersion: t.GetMeta().GetVersion(),
			MaxAttempts: t.GetRetries() + 1, TimeoutSeconds: timeout,
		})
	}
	for _, s := range p.Steps {
		if s.GetState() == underlayv1.StepState_STEP_STATE_FAILED {
			p.State = underlayv1.PlanState_PLAN_STATE_FAILED
			p.Reason = fmt.Sprintf("step %d %s: %s", s.GetIndex(), s.GetName(), s.GetReason())
			break
		}
	}
	return p, nil
}

func hasHardware(r *underlayv1.Role, kind string) bool {
	h := r.GetHardware()
	switch kind {
	case KindBIOS:
		return len(h.GetBios()) > 0
	case KindRAID:
		return strings.TrimSpace(h.GetRaidJson()) != ""
	case KindNetwork:
		return strings.TrimSpace(h.GetNetworkJson()) != ""
	}
	return false
}

// HardwareStep resolves one hardware step of role for a machine. A
// resolution error gives a failed step whose reason is the error.
func HardwareStep(hw Hardware, role *underlayv1.Role, kind string, m *underlayv1.Machine, inv *underlayv1.Inventory) *underlayv1.Step {
	s := &underlayv1.Step{Name: kind, Kind: kind, MaxAttempts: 1, TimeoutSeconds: DefaultHardwareTimeout}
	var (
		spec    string
		summary []string
		err     error
	)
	h := role.GetHardware()
	switch {
	case kind == KindBIOS && hw.BIOS != nil:
		spec, summary, err = hw.BIOS(h.GetBios())
	case kind == KindRAID && hw.RAID != nil:
		spec, summary, err = hw.RAID(h.GetRaidJson(), m, inv, role.GetName())
	case kind == KindNetwork && hw.Network != nil:
		spec, summary, err = hw.Network(h.GetNetworkJson(), m, inv, role.GetName())
	default:
		err = fmt.Errorf("%s configuration is not supported by this server", kind)
	}
	if err != nil {
		s.State = underlayv1.StepState_STEP_STATE_FAILED
		s.Reason = "cannot resolve the " + kind + " profile of role " + role.GetName() + " for this machine: " + err.Error()
		return s
	}
	s.SpecJson, s.Summary = spec, summary
	return s
}

// Current returns the step a plan is at: the first that has not succeeded
// or been skipped, or nil when every step is done.
func Current(p *underlayv1.Plan) *underlayv1.Step {
	for _, s := range p.GetSteps() {
		switch s.GetState() {
		case underlayv1.StepState_STEP_STATE_SUCCEEDED, underlayv1.StepState_STEP_STATE_SKIPPED:
			continue
		}
		return s
	}
	return nil
}

// Done reports whether a step state is final.
func Done(s underlayv1.StepState) bool {
	switch s {
	case underlayv1.StepState_STEP_STATE_SUCCEEDED, underlayv1.StepState_STEP_STATE_FAILED,
		underlayv1.StepState_STEP_STATE_CANCELLED, underlayv1.StepState_STEP_STATE_SKIPPED:
		return true
	}
	return false
}

// SetOutput publishes (or replaces) an output of a plan; outputs stay
// sorted by name.
func SetOutput(p *underlayv1.Plan, o *underlayv1.Output) {
	for i, x := range p.Outputs {
		if x.GetName() == o.GetName() {
			p.Outputs[i] = o
			return
		}
	}
	p.Outputs = append(p.Outputs, o)
	sort.Slice(p.Outputs, func(i, j int) bool { return p.Outputs[i].GetName() < p.Outputs[j].GetName() })
}

// Output returns a published output of a plan.
func Output(p *underlayv1.Plan, name string) (*underlayv1.Output, bool) {
	for _, o := range p.GetOutputs() {
		if o.GetName() == name {
			return o, true
		}
	}
	return nil, false
}
