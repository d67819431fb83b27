// Package orchestrate is the leader's reconciler. On the leader only, it
// moves every running plan on: it dispatches the current step of each
// plan when it can run, records why it waits when it cannot (a link
// nobody published, a required param, a paused role, an offline machine)
// and resumes it by itself when that changes, fails jobs whose agent went
// silent past their timeout, and classifies newly inventoried machines.
// Everything it decides goes through Raft, so the next leader resumes
// where this one stopped: it keeps no state that matters.
package orchestrate

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/classify"
	"underlay.dev/server/internal/fsm"
	"underlay.dev/server/internal/metrics"
	"underlay.dev/server/internal/plan"
	"underlay.dev/server/internal/store"
)

// Cluster is what the orchestrator needs from Raft.
type Cluster interface {
	ID() string
	IsLeader() bool
	Apply(ctx context.Context, cmd *underlayv1.Command) (*underlayv1.ApplyResult, error)
}

// Config wires an Orchestrator.
type Config struct {
	Cluster Cluster
	Store   *store.Store
	Log     *slog.Logger
	Metrics *metrics.Metrics
	// Open opens sealed secrets (to check that a step renders).
	Open plan.Opener
	// Interval is the longest time between passes (default 500ms); a pass
	// also runs as soon as the state changes.
	Interval time.Duration
	// JobGrace is how long past a job's timeout the leader waits for the
	// agent's result before failing the job (default 60s).
	JobGrace time.Duration
	// Parallel bounds the proposals in flight (default 64).
	Parallel int
	Now      func() time.Time
}

// Orchestrator is the leader's reconciler.
type Orchestrator struct {
	cfg Config
	log *slog.Logger
	sem chan struct{}

	mu       sync.Mutex
	inflight map[string]bool
}

// New returns an orchestrator.
func New(cfg Config) *Orchestrator {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.JobGrace <= 0 {
		cfg.JobGrace = time.Minute
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 512
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Orchestrator{cfg: cfg, log: cfg.Log, sem: make(chan struct{}, cfg.Parallel), inflight: map[string]bool{}}
}

// Run reconciles until ctx is done. It acts only while this node leads.
// A change to a machine (an event naming it) makes a pass over that
// machine's plan at once; other changes (definitions, a resumed role) and
// the ticker make a pass over every running plan.
func (o *Orchestrator) Run(ctx context.Context) {
	events, cancel := o.cfg.Store.Subscribe()
	defer func() { cancel() }()
	t := time.NewTicker(o.cfg.Interval)
	defer t.Stop()
	for {
		var dirty map[string]bool // nil: everything
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case ev, ok := <-events:
			dirty = map[string]bool{}
			add := func(ev *underlayv1.Event, ok bool) bool {
				if !ok {
					events, cancel = o.cfg.Store.Subscribe()
					dirty = nil
					return false
				}
				if dirty != nil {
					if ev.GetMachineId() == "" {
						dirty = nil
					} else {
						dirty[ev.GetMachineId()] = true
					}
				}
				return true
			}
			// Take what queued up too, then make one pass for all of it.
			for more := add(ev, ok); more; {
				select {
				case ev, ok := <-events:
					more = add(ev, ok)
				default:
					more = false
				}
			}
		}
		if !o.cfg.Cluster.IsLeader() {
			continue
		}
		o.Pass(ctx, dirty)
	}
}

// Pass makes one reconciliation pass over the plans of the machines in
// only (nil: every running plan, and classification); its proposals run
// in the background.
func (o *Orchestrator) Pass(ctx context.Context, only map[string]bool) {
	start := time.Now()
	view := o.cfg.Store.View()
	now := o.cfg.Now()
	if only != nil {
		for id := range only {
			if p, ok := view.Plan(id); ok && p.GetState() == underlayv1.PlanState_PLAN_STATE_RUNNING {
				o.plan(ctx, view, p, now)
			}
		}
		return
	}
	plans := view.RunningPlans()
	waiting := 0
	for _, p := range plans {
		if o.plan(ctx, view, p, now) {
			waiting++
		}
	}
	o.classify(ctx, view)
	if m := o.cfg.Metrics; m != nil {
		m.PlansRunning.Set(float64(len(plans)))
		m.StepsWaiting.Set(float64(waiting))
		m.OrchestratorPass.Observe(time.Since(start).Seconds())
	}
}

// plan handles one running plan and reports whether its step waits.
func (o *Orchestrator) plan(ctx context.Context, view *store.View, p *underlayv1.Plan, now time.Time) bool {
	s := plan.Current(p)
	if s == nil {
		return false
	}
	m, ok := view.Machine(p.GetMachineId())
	if !ok {
		return false
	}
	switch s.GetState() {
	case underlayv1.StepState_STEP_STATE_PENDING, underlayv1.StepState_STEP_STATE_WAITING:
		hold := o.hold(view, m, p, s)
		key := fmt.Sprintf("%s/%d/%d/%d", p.GetMachineId(), p.GetGeneration(), s.GetIndex(), s.GetAttempt())
		if hold != "" {
			if s.GetState() != underlayv1.StepState_STEP_STATE_WAITING || s.GetReason() != hold {
				o.propose(ctx, key+"/wait", &underlayv1.Command{Cmd: &underlayv1.Command_SetStepWaiting{SetStepWaiting: &underlayv1.SetStepWaiting{
					MachineId: p.GetMachineId(), Generation: p.GetGeneration(), Step: s.GetIndex(), Reason: hold,
				}}})
			}
			return true
		}
		id := plan.JobID(p.GetMachineId(), p.GetGeneration(), s.GetIndex(), s.GetAttempt()+1)
		if o.propose(ctx, key+"/start", &underlayv1.Command{Cmd: &underlayv1.Command_StartJob{StartJob: &underlayv1.StartJob{
			MachineId: p.GetMachineId(), Generation: p.GetGeneration(), Step: s.GetIndex(), JobId: id,
		}}}) && o.cfg.Metrics != nil {
			o.cfg.Metrics.JobsDispatched.Inc()
		}
	case underlayv1.StepState_STEP_STATE_RUNNING, underlayv1.StepState_STEP_STATE_DISPATCHED:
		j, ok := view.Job(s.GetJobId())
		if !ok || j.GetStarted() == nil {
			return false
		}
		deadline := j.GetStarted().AsTime().Add(time.Duration(s.GetTimeoutSeconds())*time.Second + o.cfg.JobGrace)
		if s.GetTimeoutSeconds() > 0 && now.After(deadline) {
			o.propose(ctx, j.GetId()+"/expire", &underlayv1.Command{Cmd: &underlayv1.Command_FinishJob{FinishJob: &underlayv1.FinishJob{
				JobId: j.GetId(), ExitCode: -1,
				Error: fmt.Sprintf("no result from the agent within the step's timeout (%s) and %s grace; the agent may be gone", time.Duration(s.GetTimeoutSeconds())*time.Second, o.cfg.JobGrace),
			}}})
		}
	}
	return false
}

// hold returns why step s of p cannot be dispatched now, or "".
func (o *Orchestrator) hold(view *store.View, m *underlayv1.Machine, p *underlayv1.Plan, s *underlayv1.Step) string {
	if rs := view.RoleStatus(p.GetRole()); rs.GetPaused() {
		return "role " + p.GetRole() + " is paused: " + rs.GetReason()
	}
	if !m.GetOnline() {
		return "machine is offline; the step runs when its agent connects"
	}
	inv, _ := view.Inventory(m.GetId())
	_, hold := plan.Job(view, o.cfg.Open, m, inv, p, s)
	return hold
}

// classify runs the classification rules on machines that have no role yet
// and whose inventory or the rules changed since they were last classified.
func (o *Orchestrator) classify(ctx context.Context, view *store.View) {
	defs := view.Definitions(store.KindRule)
	if len(defs) == 0 {
		return
	}
	digest := store.RulesDigest(defs)
	rules := make([]*underlayv1.Rule, 0, len(defs))
	for _, d := range defs {
		rules = append(rules, d.GetRule())
	}
	unclassified := view.MachinesWhere(func(m *underlayv1.Machine) bool {
		return m.GetRole() == "" && m.GetInventoryVersion() != 0 &&
			(m.GetClassifiedVersion() != m.GetInventoryVersion() || m.GetClassifiedRules() != digest)
	})
	for _, m := range unclassified {
		inv, _ := view.Inventory(m.GetId())
		d, err := classify.Decide(rules, m, inv)
		if err != nil {
			o.log.Warn("classification rules", "machine_id", m.GetId(), "err", err)
		}
		key := fmt.Sprintf("classify/%s/%d/%s", m.GetId(), m.GetInventoryVersion(), digest)
		o.propose(ctx, key, &underlayv1.Command{Actor: "node/" + o.cfg.Cluster.ID() + "/rules", Cmd: &underlayv1.Command_ClassifyMachine{ClassifyMachine: &underlayv1.ClassifyMachine{
			MachineId: m.GetId(), InventoryVersion: m.GetInventoryVersion(),
			Rules: d.Rules, Labels: d.Labels, Profiles: d.Profiles, Role: d.Role, RulesDigest: digest,
		}}})
	}
}

// propose applies cmd in the background unless a proposal with the same
// key is in flight. It reports whether it started one.
func (o *Orchestrator) propose(ctx context.Context, key string, cmd *underlayv1.Command) bool {
	o.mu.Lock()
	if o.inflight[key] {
		o.mu.Unlock()
		return false
	}
	o.inflight[key] = true
	o.mu.Unlock()
	if cmd.Actor == "" {
		cmd.Actor = "node/" + o.cfg.Cluster.ID() + "/orchestrator"
	}
	select {
	case o.sem <- struct{}{}:
	case <-ctx.Done():
		o.done(key)
		return false
	}
	go func() {
		defer func() { <-o.sem; o.done(key) }()
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := o.cfg.Cluster.Apply(actx, cmd)
		if err == nil {
			err = fsm.Err(res)
		}
		if err != nil && ctx.Err() == nil {
			o.log.Debug("orchestrator proposal refused", "key", key, "err", err)
		}
	}()
	return true
}

func (o *Orchestrator) done(key string) {
	o.mu.Lock()
	delete(o.inflight, key)
	o.mu.Unlock()
}
