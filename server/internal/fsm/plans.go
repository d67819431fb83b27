package fsm

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/machine"
	"underlay.dev/server/internal/plan"
	"underlay.dev/server/internal/store"
)

// Event kinds of plans and jobs. Nodes holding agent sessions watch
// EventJobDispatched and EventJobCancel to deliver work.
const (
	EventPlanAssigned   = "plan.assigned"
	EventPlanWaiting    = "plan.waiting"
	EventPlanStep       = "plan.step"
	EventPlanDone       = "plan.done"
	EventPlanFailed     = "plan.failed"
	EventPlanCancelled  = "plan.cancelled"
	EventPlanRetry      = "plan.retry"
	EventJobDispatched  = "job.dispatched"
	EventJobStarted     = "job.started"
	EventJobFinished    = "job.finished"
	EventJobCancel      = "job.cancel"
	EventRoleTripped    = "role.tripped"
	EventRoleResumed    = "role.resumed"
	EventMachineClassed = "machine.classified"
)

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }

const (
	stDiscovered  = underlayv1.MachineState_MACHINE_STATE_DISCOVERED
	stReady       = underlayv1.MachineState_MACHINE_STATE_READY
	stConfiguring = underlayv1.MachineState_MACHINE_STATE_CONFIGURING
	stDeploying   = underlayv1.MachineState_MACHINE_STATE_DEPLOYING
	stActive      = underlayv1.MachineState_MACHINE_STATE_ACTIVE
	stFailed      = underlayv1.MachineState_MACHINE_STATE_FAILED
	stRedeploying = underlayv1.MachineState_MACHINE_STATE_REDEPLOYING
	stRetired     = underlayv1.MachineState_MACHINE_STATE_RETIRED
)

// moveTo walks a machine through the lifecycle to target by the shortest
// legal path, appending a state event per transition.
func moveTo(tx *store.Tx, m *underlayv1.Machine, target underlayv1.MachineState, reason string) error {
	path, ok := machine.Path(m.GetState(), target)
	if !ok {
		return fmt.Errorf("machine %s: %w", m.GetId(), &machine.TransitionError{From: m.GetState(), To: target})
	}
	for _, next := range path {
		from := m.GetState()
		m.State = next
		msg := machine.StateName(from) + " -> " + machine.StateName(next)
		if reason != "" {
			msg += ": " + reason
		}
		if err := tx.Event(EventMachineState, m.GetId(), msg); err != nil {
			return err
		}
	}
	m.Updated = tx.Now()
	return tx.PutMachine(m)
}

func planOf(tx *store.Tx, id string) (*underlayv1.Plan, error) {
	p, ok := tx.Plan(id)
	if !ok {
		return nil, fmt.Errorf("machine %s has no plan (assign it a role first): %w", id, store.ErrNotFound)
	}
	return p, nil
}

// assignRole gives a machine a role and starts its plan.
func (f *FSM) assignRole(tx *store.Tx, c *underlayv1.AssignRole) (string, error) {
	m, err := tx.Machine(c.GetMachineId())
	if err != nil {
		return "", fmt.Errorf("assign: %w", err)
	}
	if _, ok := tx.Role(c.GetRole()); !ok {
		return "", fmt.Errorf("assign %s: role %q: %w", m.GetId(), c.GetRole(), store.ErrNotFound)
	}
	switch m.GetState() {
	case stDiscovered, stReady, stFailed:
	case stActive:
		return "", fmt.Errorf("machine %s is active with role %s; 'underlay machine redeploy' rebuilds it: %w", m.GetId(), m.GetRole(), store.ErrPrecondition)
	default:
		return "", fmt.Errorf("machine %s is %s (a plan is running); cancel it first: %w", m.GetId(), machine.StateName(m.GetState()), store.ErrPrecondition)
	}
	return m.GetId(), f.startPlan(tx, m, c.GetRole(), false)
}

// startPlan builds and stores a new plan generation for m and moves the
// machine to where the plan starts.
func (f *FSM) startPlan(tx *store.Tx, m *underlayv1.Machine, role string, redeploy bool) error {
	var gen uint64 = 1
	if old, ok := tx.Plan(m.GetId()); ok {
		gen = old.GetGeneration() + 1
		if cur := plan.Current(old); cur != nil && !plan.Done(cur.GetState()) && cur.GetJobId() != "" {
			if err := cancelJob(tx, cur.GetJobId(), "superseded by a new plan"); err != nil {
				return err
			}
		}
	}
	inv, _ := tx.Inventory(m.GetId())
	p, err := plan.Build(tx, f.hardware(tx), m, inv, role, gen, redeploy)
	if err != nil {
		return fmt.Errorf("assign %s: %v: %w", m.GetId(), err, store.ErrPrecondition)
	}
	p.Created, p.Updated = tx.Now(), tx.Now()
	if len(p.Steps) > 0 {
		p.Steps[0].Runnable = tx.Now()
	}
	m.Role = role
	target, reason := stConfiguring, "role "+role+" assigned"
	if redeploy {
		target, reason = stRedeploying, "redeploy of role "+role
	}
	switch {
	case p.GetState() == underlayv1.PlanState_PLAN_STATE_FAILED:
		target, reason = stFailed, p.GetReason()
	case len(p.GetSteps()) == 0:
		p.State = underlayv1.PlanState_PLAN_STATE_SUCCEEDED
		target = stActive
	}
	if m.GetState() == stFailed && target == stFailed {
		m.Updated = tx.Now()
		if err := tx.PutMachine(m); err != nil {
			return err
		}
	} else if err := moveTo(tx, m, target, reason); err != nil {
		return err
	}
	if err := tx.PutPlan(p); err != nil {
		return err
	}
	msg := fmt.Sprintf("plan g%d of role %s: %d steps (%s)", gen, role, len(p.Steps), stepNames(p))
	if p.GetState() == underlayv1.PlanState_PLAN_STATE_FAILED {
		msg += "; failed: " + p.GetReason()
	}
	return tx.Event(EventPlanAssigned, m.GetId(), msg)
}

func stepNames(p *underlayv1.Plan) string {
	var names []string
	for _, s := range p.GetSteps() {
		names = append(names, s.GetName())
	}
	return strings.Join(names, ", ")
}

// startJob records the leader's dispatch of a plan's current step.
func startJob(tx *store.Tx, c *underlayv1.StartJob) (string, error) {
	p, err := planOf(tx, c.GetMachineId())
	if err != nil {
		return "", err
	}
	if p.GetGeneration() != c.GetGeneration() || p.GetState() != underlayv1.PlanState_PLAN_STATE_RUNNING {
		return "", fmt.Errorf("start job %s: plan is at generation %d (%s): %w", c.GetJobId(), p.GetGeneration(), p.GetState(), store.ErrPrecondition)
	}
	s := plan.Current(p)
	if s == nil || s.GetIndex() != c.GetStep() {
		return "", fmt.Errorf("start job %s: step %d is not the current step: %w", c.GetJobId(), c.GetStep(), store.ErrPrecondition)
	}
	switch s.GetState() {
	case underlayv1.StepState_STEP_STATE_PENDING, underlayv1.StepState_STEP_STATE_WAITING:
	default:
		return "", fmt.Errorf("start job %s: step %d is %s: %w", c.GetJobId(), s.GetIndex(), s.GetState(), store.ErrPrecondition)
	}
	attempt := s.GetAttempt() + 1
	id := plan.JobID(p.GetMachineId(), p.GetGeneration(), s.GetIndex(), attempt)
	if c.GetJobId() != id {
		return "", invalid("start job: id %q, want %q", c.GetJobId(), id)
	}
	if _, exists := tx.Job(id); exists {
		return "", fmt.Errorf("job %s exists already: %w", id, store.ErrExists)
	}
	m, err := tx.Machine(p.GetMachineId())
	if err != nil {
		return "", err
	}
	s.Attempt, s.JobId, s.State, s.Reason = attempt, id, underlayv1.StepState_STEP_STATE_DISPATCHED, ""
	p.Updated = tx.Now()
	if err := tx.PutPlan(p); err != nil {
		return "", err
	}
	j := &underlayv1.Job{
		Id: id, MachineId: p.GetMachineId(), Generation: p.GetGeneration(), Step: s.GetIndex(), StepName: s.GetName(),
		Attempt: attempt, State: underlayv1.StepState_STEP_STATE_DISPATCHED, Runnable: s.GetRunnable(), Dispatched: tx.Now(),
		Role: p.GetRole(),
	}
	if err := tx.PutJob(j); err != nil {
		return "", err
	}
	if s.GetKind() == plan.KindTask && m.GetState() == stConfiguring {
		if err := moveTo(tx, m, stDeploying, "hardware configured, running tasks"); err != nil {
			return "", err
		}
	}
	if s.GetKind() != plan.KindWipe && m.GetState() == stRedeploying {
		if err := moveTo(tx, m, stConfiguring, "wiped"); err != nil {
			return "", err
		}
		if s.GetKind() == plan.KindTask {
			if err := moveTo(tx, m, stDeploying, "running tasks"); err != nil {
				return "", err
			}
		}
	}
	return id, tx.Event(EventJobDispatched, p.GetMachineId(), fmt.Sprintf("job %s: step %d %s attempt %d dispatched", id, s.GetIndex(), s.GetName(), attempt))
}

// setStepWaiting records why a runnable step is held back.
func setStepWaiting(tx *store.Tx, c *underlayv1.SetStepWaiting) (string, error) {
	p, err := planOf(tx, c.GetMachineId())
	if err != nil {
		return "", err
	}
	s := plan.Current(p)
	if p.GetGeneration() != c.GetGeneration() || s == nil || s.GetIndex() != c.GetStep() {
		return "", fmt.Errorf("step %d of generation %d is not current: %w", c.GetStep(), c.GetGeneration(), store.ErrPrecondition)
	}
	if s.GetState() != underlayv1.StepState_STEP_STATE_PENDING && s.GetState() != underlayv1.StepState_STEP_STATE_WAITING {
		return "", fmt.Errorf("step %d is %s: %w", c.GetStep(), s.GetState(), store.ErrPrecondition)
	}
	state := underlayv1.StepState_STEP_STATE_WAITING
	if c.GetReason() == "" {
		state = underlayv1.StepState_STEP_STATE_PENDING
	}
	if s.GetState() == state && s.GetReason() == c.GetReason() {
		return p.GetMachineId(), nil
	}
	s.State, s.Reason = state, c.GetReason()
	p.Updated = tx.Now()
	if err := tx.PutPlan(p); err != nil {
		return "", err
	}
	if c.GetReason() == "" {
		return p.GetMachineId(), nil
	}
	return p.GetMachineId(), tx.Event(EventPlanWaiting, p.GetMachineId(), fmt.Sprintf("step %d %s waiting: %s", s.GetIndex(), s.GetName(), c.GetReason()))
}

// jobStarted records that the agent started a job; repeating it changes
// nothing.
func jobStarted(tx *store.Tx, c *underlayv1.JobStarted) (string, error) {
	j, ok := tx.Job(c.GetJobId())
	if !ok {
		return "", fmt.Errorf("job %s: %w", c.GetJobId(), store.ErrNotFound)
	}
	if j.GetState() != underlayv1.StepState_STEP_STATE_DISPATCHED {
		return j.GetId(), nil
	}
	j.State, j.Started, j.Node = underlayv1.StepState_STEP_STATE_RUNNING, tx.Now(), c.GetNodeId()
	if err := tx.PutJob(j); err != nil {
		return "", err
	}
	if p, ok := tx.Plan(j.GetMachineId()); ok {
		if s := stepOfJob(p, j); s != nil && s.GetState() == underlayv1.StepState_STEP_STATE_DISPATCHED {
			s.State, s.Started = underlayv1.StepState_STEP_STATE_RUNNING, tx.Now()
			p.Updated = tx.Now()
			if err := tx.PutPlan(p); err != nil {
				return "", err
			}
		}
	}
	return j.GetId(), tx.Event(EventJobStarted, j.GetMachineId(), fmt.Sprintf("job %s started (step %s)", j.GetId(), j.GetStepName()))
}

// stepOfJob returns the step of p that job j is the current attempt of.
func stepOfJob(p *underlayv1.Plan, j *underlayv1.Job) *underlayv1.Step {
	if p.GetGeneration() != j.GetGeneration() || int(j.GetStep()) >= len(p.GetSteps()) {
		return nil
	}
	s := p.GetSteps()[j.GetStep()]
	if s.GetJobId() != j.GetId() {
		return nil
	}
	return s
}

func appendJobLog(tx *store.Tx, c *underlayv1.AppendJobLog) (string, error) {
	for _, ch := range c.GetChunks() {
		if _, err := tx.AppendLog(ch); err != nil {
			if isNotFound(err) {
				continue // the job was dropped by retention or its machine deleted
			}
			return "", err
		}
	}
	return "", nil
}

// finishJob records a job's result and moves its plan on: the next step,
// a retry, or the end of the plan. A result for a job that is finished
// already changes nothing, so an agent may send it again.
func finishJob(tx *store.Tx, c *underlayv1.FinishJob) (string, error) {
	j, ok := tx.Job(c.GetJobId())
	if !ok {
		return "", fmt.Errorf("job %s: %w", c.GetJobId(), store.ErrNotFound)
	}
	if plan.Done(j.GetState()) {
		return j.GetId(), nil
	}
	state := underlayv1.StepState_STEP_STATE_FAILED
	switch {
	case c.GetSuccess() && c.GetSkipped():
		state = underlayv1.StepState_STEP_STATE_SKIPPED
	case c.GetSuccess():
		state = underlayv1.StepState_STEP_STATE_SUCCEEDED
	case c.GetCancelled():
		state = underlayv1.StepState_STEP_STATE_CANCELLED
	}
	j.State, j.ExitCode, j.Error, j.Finished, j.Reboot = state, c.GetExitCode(), c.GetError(), tx.Now(), c.GetReboot()
	j.Outputs = c.GetOutputs()
	if j.Started == nil {
		j.Started = tx.Now()
	}
	if err := tx.PutJob(j); err != nil {
		return "", err
	}
	msg := fmt.Sprintf("job %s (step %s) %s", j.GetId(), j.GetStepName(), stepStateName(state))
	if c.GetError() != "" {
		msg += ": " + c.GetError()
	}
	if err := tx.Event(EventJobFinished, j.GetMachineId(), msg); err != nil {
		return "", err
	}
	p, ok := tx.Plan(j.GetMachineId())
	if !ok {
		return j.GetId(), nil
	}
	s := stepOfJob(p, j)
	if s == nil || plan.Done(s.GetState()) {
		return j.GetId(), nil // a stale attempt: the plan moved on
	}
	m, err := tx.Machine(p.GetMachineId())
	if err != nil {
		return "", err
	}
	s.Finished, s.ExitCode = tx.Now(), c.GetExitCode()
	if s.Started == nil {
		s.Started = tx.Now()
	}
	p.Updated = tx.Now()
	switch state {
	case underlayv1.StepState_STEP_STATE_SUCCEEDED, underlayv1.StepState_STEP_STATE_SKIPPED:
		s.State, s.Reason = state, c.GetError()
		for _, o := range c.GetOutputs() {
			o = clone(o)
			o.Step, o.JobId = s.GetName(), j.GetId()
			plan.SetOutput(p, o)
		}
		if next := plan.Current(p); next != nil {
			next.Runnable = tx.Now()
			if err := tx.PutPlan(p); err != nil {
				return "", err
			}
			return j.GetId(), tx.Event(EventPlanStep, p.GetMachineId(), fmt.Sprintf("step %d %s %s; next: step %d %s", s.GetIndex(), s.GetName(), stepStateName(state), next.GetIndex(), next.GetName()))
		}
		p.State = underlayv1.PlanState_PLAN_STATE_SUCCEEDED
		if err := tx.PutPlan(p); err != nil {
			return "", err
		}
		if err := moveTo(tx, m, stActive, "plan of role "+p.GetRole()+" done"); err != nil {
			return "", err
		}
		return j.GetId(), tx.Event(EventPlanDone, p.GetMachineId(), fmt.Sprintf("plan g%d of role %s done (%d steps)", p.GetGeneration(), p.GetRole(), len(p.GetSteps())))
	case underlayv1.StepState_STEP_STATE_FAILED:
		if s.GetAttempt() < s.GetMaxAttempts() {
			s.State = underlayv1.StepState_STEP_STATE_PENDING
			s.Reason = fmt.Sprintf("attempt %d of %d failed: %s; retrying", s.GetAttempt(), s.GetMaxAttempts(), c.GetError())
			s.Runnable = tx.Now()
			if err := tx.PutPlan(p); err != nil {
				return "", err
			}
			return j.GetId(), tx.Event(EventPlanRetry, p.GetMachineId(), fmt.Sprintf("step %d %s: %s", s.GetIndex(), s.GetName(), s.GetReason()))
		}
		s.State, s.Reason = state, c.GetError()
		return j.GetId(), failPlan(tx, p, m, fmt.Sprintf("step %d %s failed: %s", s.GetIndex(), s.GetName(), c.GetError()))
	default: // cancelled by the agent
		s.State, s.Reason = state, c.GetError()
		p.State, p.Reason = underlayv1.PlanState_PLAN_STATE_CANCELLED, "step "+s.GetName()+" cancelled"
		if err := tx.PutPlan(p); err != nil {
			return "", err
		}
		return j.GetId(), moveTo(tx, m, stFailed, p.GetReason())
	}
}

// failPlan ends a plan failed, fails the machine and counts the failure
// against the role's circuit breaker.
func failPlan(tx *store.Tx, p *underlayv1.Plan, m *underlayv1.Machine, reason string) error {
	p.State, p.Reason = underlayv1.PlanState_PLAN_STATE_FAILED, reason
	if err := tx.PutPlan(p); err != nil {
		return err
	}
	if err := moveTo(tx, m, stFailed, reason); err != nil {
		return err
	}
	if err := tx.Event(EventPlanFailed, m.GetId(), "plan of role "+p.GetRole()+" failed: "+reason); err != nil {
		return err
	}
	return countFailure(tx, p.GetRole(), m.GetId())
}

func countFailure(tx *store.Tx, roleName, machineID string) error {
	rs := tx.RoleStatus(roleName)
	if !slices.Contains(rs.FailedMachines, machineID) {
		rs.FailedMachines = append(rs.FailedMachines, machineID)
		slices.Sort(rs.FailedMachines)
	}
	rs.Failures = int32(len(rs.FailedMachines))
	role, _ := tx.Role(roleName)
	limit := role.GetBreaker().GetMaxFailures()
	tripped := false
	if limit > 0 && rs.Failures >= limit && !rs.Paused {
		rs.Paused, tripped = true, true
		rs.Reason = fmt.Sprintf("circuit breaker tripped: %d machines failed (limit %d): %s; 'underlay role resume %s' continues the rollout",
			rs.Failures, limit, strings.Join(rs.FailedMachines, ", "), roleName)
	}
	if err := tx.PutRoleStatus(rs); err != nil {
		return err
	}
	if tripped {
		return tx.Event(EventRoleTripped, "", "role "+roleName+": "+rs.Reason)
	}
	return nil
}

// cancelJob marks a running job cancelled; the node holding the agent's
// session tells the agent on EventJobCancel.
func cancelJob(tx *store.Tx, id, reason string) error {
	j, ok := tx.Job(id)
	if !ok || plan.Done(j.GetState()) {
		return nil
	}
	j.State, j.Error, j.Finished = underlayv1.StepState_STEP_STATE_CANCELLED, reason, tx.Now()
	if err := tx.PutJob(j); err != nil {
		return err
	}
	return tx.Event(EventJobCancel, j.GetMachineId(), fmt.Sprintf("job %s cancelled: %s", id, reason))
}

func retryPlan(tx *store.Tx, f *FSM, c *underlayv1.RetryPlan) (string, error) {
	p, err := planOf(tx, c.GetMachineId())
	if err != nil {
		return "", err
	}
	if p.GetState() != underlayv1.PlanState_PLAN_STATE_FAILED && p.GetState() != underlayv1.PlanState_PLAN_STATE_CANCELLED {
		return "", fmt.Errorf("plan of %s is %s; only a failed or cancelled plan can be retried: %w", p.GetMachineId(), planStateName(p.GetState()), store.ErrPrecondition)
	}
	m, err := tx.Machine(p.GetMachineId())
	if err != nil {
		return "", err
	}
	s := plan.Current(p)
	if s == nil {
		return "", fmt.Errorf("plan of %s has no step left to retry: %w", p.GetMachineId(), store.ErrPrecondition)
	}
	if s.GetKind() != plan.KindTask && s.GetKind() != plan.KindWipe && s.GetSpecJson() == "" && s.GetJobId() == "" {
		// The hardware profile did not resolve: resolve it again, against
		// the role and inventory of now.
		role, ok := tx.Role(p.GetRole())
		if !ok {
			return "", fmt.Errorf("role %s: %w", p.GetRole(), store.ErrNotFound)
		}
		inv, _ := tx.Inventory(m.GetId())
		fresh := plan.HardwareStep(f.hardware(tx), role, s.GetKind(), m, inv)
		if fresh.GetState() == underlayv1.StepState_STEP_STATE_FAILED {
			return "", fmt.Errorf("retry %s: %s: %w", m.GetId(), fresh.GetReason(), store.ErrPrecondition)
		}
		s.SpecJson, s.Summary = fresh.GetSpecJson(), fresh.GetSummary()
	}
	s.State, s.Reason, s.Runnable = underlayv1.StepState_STEP_STATE_PENDING, "retried by "+tx.Actor(), tx.Now()
	s.MaxAttempts = s.GetAttempt() + 1
	p.State, p.Reason, p.Updated = underlayv1.PlanState_PLAN_STATE_RUNNING, "", tx.Now()
	if err := tx.PutPlan(p); err != nil {
		return "", err
	}
	target := stConfiguring
	switch {
	case s.GetKind() == plan.KindTask:
		target = stDeploying
	case s.GetKind() == plan.KindWipe:
		target = stRedeploying
	}
	if m.GetState() != target {
		if err := moveTo(tx, m, target, "retry of step "+s.GetName()); err != nil {
			return "", err
		}
	}
	return m.GetId(), tx.Event(EventPlanRetry, m.GetId(), fmt.Sprintf("step %d %s retried", s.GetIndex(), s.GetName()))
}

func cancelPlan(tx *store.Tx, c *underlayv1.CancelPlan) (string, error) {
	p, err := planOf(tx, c.GetMachineId())
	if err != nil {
		return "", err
	}
	if p.GetState() != underlayv1.PlanState_PLAN_STATE_RUNNING {
		return "", fmt.Errorf("plan of %s is %s, not running: %w", p.GetMachineId(), planStateName(p.GetState()), store.ErrPrecondition)
	}
	m, err := tx.Machine(p.GetMachineId())
	if err != nil {
		return "", err
	}
	reason := "cancelled by " + tx.Actor()
	if c.GetReason() != "" {
		reason += ": " + c.GetReason()
	}
	if s := plan.Current(p); s != nil {
		if s.GetJobId() != "" && !plan.Done(s.GetState()) && s.GetState() != underlayv1.StepState_STEP_STATE_PENDING && s.GetState() != underlayv1.StepState_STEP_STATE_WAITING {
			if err := cancelJob(tx, s.GetJobId(), reason); err != nil {
				return "", err
			}
		}
		s.State, s.Reason, s.Finished = underlayv1.StepState_STEP_STATE_CANCELLED, reason, tx.Now()
	}
	p.State, p.Reason, p.Updated = underlayv1.PlanState_PLAN_STATE_CANCELLED, reason, tx.Now()
	if err := tx.PutPlan(p); err != nil {
		return "", err
	}
	if err := moveTo(tx, m, stFailed, reason); err != nil {
		return "", err
	}
	return m.GetId(), tx.Event(EventPlanCancelled, m.GetId(), "plan of role "+p.GetRole()+" "+reason)
}

func (f *FSM) redeploy(tx *store.Tx, c *underlayv1.RedeployMachine) (string, error) {
	m, err := tx.Machine(c.GetMachineId())
	if err != nil {
		return "", fmt.Errorf("redeploy: %w", err)
	}
	if m.GetRole() == "" {
		return "", fmt.Errorf("machine %s has no role to redeploy; assign one: %w", m.GetId(), store.ErrPrecondition)
	}
	switch m.GetState() {
	case stActive, stFailed, stReady:
	default:
		return "", fmt.Errorf("machine %s is %s; a redeploy starts from active, failed or ready (cancel the running plan first): %w", m.GetId(), machine.StateName(m.GetState()), store.ErrPrecondition)
	}
	if _, ok := tx.Role(m.GetRole()); !ok {
		return "", fmt.Errorf("role %s of machine %s does not exist any more: %w", m.GetRole(), m.GetId(), store.ErrPrecondition)
	}
	return m.GetId(), f.startPlan(tx, m, m.GetRole(), true)
}

func resumeRole(tx *store.Tx, c *underlayv1.ResumeRole) (string, error) {
	if _, ok := tx.Role(c.GetRole()); !ok {
		return "", fmt.Errorf("role %s: %w", c.GetRole(), store.ErrNotFound)
	}
	rs := tx.RoleStatus(c.GetRole())
	was := rs.GetPaused()
	rs.Paused, rs.Reason, rs.Failures, rs.FailedMachines = false, "", 0, nil
	if err := tx.PutRoleStatus(rs); err != nil {
		return "", err
	}
	msg := "role " + c.GetRole() + " resumed"
	if !was {
		msg += " (it was not paused; failure count reset)"
	}
	return c.GetRole(), tx.Event(EventRoleResumed, "", msg)
}

// classify applies what the classification rules decided for an
// inventory version and rule set; a decision for an older inventory or for
// rules that have changed since is ignored, and so is one for what the
// machine was already classified against. (Commands written before rule
// digests existed carry none and are judged by the inventory version alone,
// as they were then.)
func (f *FSM) classify(tx *store.Tx, c *underlayv1.ClassifyMachine) (string, error) {
	m, err := tx.Machine(c.GetMachineId())
	if err != nil {
		return "", fmt.Errorf("classify: %w", err)
	}
	if m.GetInventoryVersion() != c.GetInventoryVersion() {
		return m.GetId(), nil
	}
	if c.GetRulesDigest() == "" {
		if m.GetClassifiedVersion() == c.GetInventoryVersion() {
			return m.GetId(), nil
		}
	} else {
		current := store.RulesDigest(tx.Definitions(store.KindRule))
		if c.GetRulesDigest() != current ||
			(m.GetClassifiedVersion() == c.GetInventoryVersion() && m.GetClassifiedRules() == current) {
			return m.GetId(), nil
		}
	}
	m.ClassifiedVersion, m.ClassifiedBy, m.ClassifiedRules = c.GetInventoryVersion(), c.GetRules(), c.GetRulesDigest()
	if m.Labels == nil && len(c.GetLabels()) > 0 {
		m.Labels = map[string]string{}
	}
	for _, k := range slices.Sorted(maps.Keys(c.GetLabels())) {
		m.Labels[k] = c.GetLabels()[k]
	}
	for _, p := range c.GetProfiles() {
		if _, ok := tx.Profile(p); ok && !slices.Contains(m.Profiles, p) {
			m.Profiles = append(m.Profiles, p)
		}
	}
	m.Updated = tx.Now()
	if err := tx.PutMachine(m); err != nil {
		return "", err
	}
	if len(c.GetRules()) > 0 {
		msg := fmt.Sprintf("rules %s matched", strings.Join(c.GetRules(), ", "))
		if len(c.GetLabels()) > 0 || len(c.GetProfiles()) > 0 {
			msg += fmt.Sprintf(": labels %v, profiles %v", c.GetLabels(), c.GetProfiles())
		}
		if err := tx.Event(EventMachineClassed, m.GetId(), msg); err != nil {
			return "", err
		}
	}
	if c.GetRole() != "" && m.GetRole() == "" && (m.GetState() == stDiscovered || m.GetState() == stReady) {
		if _, ok := tx.Role(c.GetRole()); ok {
			return m.GetId(), f.startPlan(tx, m, c.GetRole(), false)
		}
	}
	return m.GetId(), nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func stepStateName(s underlayv1.StepState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STEP_STATE_"))
}

func planStateName(s underlayv1.PlanState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "PLAN_STATE_"))
}
