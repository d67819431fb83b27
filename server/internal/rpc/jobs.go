package rpc

import (
	"context"
	"sync"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/fsm"
	"underlay.dev/server/internal/plan"
)

// Job delivery on agent sessions. The leader dispatches a step by writing
// a job through Raft; whichever node holds the machine's session sees the
// job (an event in its own store) and sends it to the agent. The agent
// runs a job ID at most once and answers a repeated RunStep with the
// stored result, so a job may be sent again on every new session.

// sender serialises sends on one agent session.
type sender struct {
	mu     sync.Mutex
	stream interface {
		Send(*underlayv1.ServerMessage) error
	}
}

func (s *sender) send(m *underlayv1.ServerMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream.Send(m)
}

// open opens a sealed secret with this node's sealing key.
func (s *Server) open(sealed []byte, purpose string) (string, error) {
	if s.sealer == nil {
		return "", errNoSealKey
	}
	b, err := s.sealer.Open(sealed, purpose)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// deliver sends the machine's current job, and cancellations, to the agent
// until ctx ends.
func (s *Server) deliver(ctx context.Context, machineID string, out *sender) {
	events, unsub := s.store.Subscribe()
	defer func() { unsub() }()
	sent := map[string]bool{}
	cancelled := map[string]bool{}
	check := func() {
		for _, j := range s.store.Jobs(machineID) {
			if j.GetState() == underlayv1.StepState_STEP_STATE_CANCELLED && sent[j.GetId()] && !cancelled[j.GetId()] {
				cancelled[j.GetId()] = true
				if err := out.send(&underlayv1.ServerMessage{Msg: &underlayv1.ServerMessage_CancelJob{CancelJob: &underlayv1.CancelJob{JobId: j.GetId(), Reason: j.GetError()}}}); err != nil {
					return
				}
			}
		}
		view := s.store.View()
		p, ok := view.Plan(machineID)
		if !ok || p.GetState() != underlayv1.PlanState_PLAN_STATE_RUNNING {
			return
		}
		step := plan.Current(p)
		if step == nil || step.GetJobId() == "" || sent[step.GetJobId()] {
			return
		}
		if step.GetState() != underlayv1.StepState_STEP_STATE_DISPATCHED && step.GetState() != underlayv1.StepState_STEP_STATE_RUNNING {
			return
		}
		m, ok := view.Machine(machineID)
		if !ok {
			return
		}
		inv, _ := view.Inventory(machineID)
		run, hold := plan.Job(view, s.open, m, inv, p, step)
		sent[step.GetJobId()] = true
		if run == nil {
			// It rendered on the leader a moment ago; something changed
			// since. Fail the job with the reason rather than leave it.
			s.finish(ctx, &underlayv1.FinishJob{JobId: step.GetJobId(), ExitCode: -1, Error: "cannot deliver the job: " + hold})
			return
		}
		if err := out.send(&underlayv1.ServerMessage{Msg: &underlayv1.ServerMessage_RunStep{RunStep: run}}); err != nil {
			return
		}
		s.log.Info("job delivered", "machine_id", machineID, "job_id", run.GetJobId(), "step", run.GetName(), "kind", run.GetKind())
	}
	check()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		case ev, ok := <-events:
			if !ok {
				events, unsub = s.store.Subscribe()
				check()
				continue
			}
			if ev.GetMachineId() == machineID {
				switch ev.GetKind() {
				case fsm.EventJobDispatched, fsm.EventJobCancel, fsm.EventPlanAssigned, fsm.EventPlanRetry:
					check()
				}
			}
		}
	}
}

// jobEvent is one job message from an agent, handled in order by the
// session's writer.
type jobEvent struct {
	started *underlayv1.JobStartedEvent
	log     *underlayv1.JobLog
	result  *underlayv1.JobResult
}

// Flush thresholds of job output: whichever comes first.
const (
	logFlushBytes = 64 << 10
	logFlushEvery = 200 * time.Millisecond
)

// writer turns an agent's job messages into Raft writes, in the order they
// came: output in batches, then start and result records. A result is
// acknowledged to the agent only once it is committed.
func (s *Server) writer(ctx context.Context, machineID string, in <-chan jobEvent, out *sender) {
	var batch []*underlayv1.LogChunk
	size := 0
	flush := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		cmd := &underlayv1.Command{Actor: "machine/" + machineID, Cmd: &underlayv1.Command_AppendJobLog{AppendJobLog: &underlayv1.AppendJobLog{Chunks: batch}}}
		for attempt := 0; attempt < 5; attempt++ {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := s.apply(actx, cmd)
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			s.log.Warn("store job output", "machine_id", machineID, "attempt", attempt+1, "err", err)
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
		batch, size = nil, 0
	}
	defer func() {
		// Keep what the agent sent before the session ended.
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		flush(fctx)
	}()
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			flush(ctx)
		case ev := <-in:
			// Take what else is queued: a job that started and finished
			// within one batch needs no separate start record (FinishJob
			// sets the start time), one Raft write less per short task.
			evs := []jobEvent{ev}
			for more := true; more && len(evs) < 256; {
				select {
				case e := <-in:
					evs = append(evs, e)
				default:
					more = false
				}
			}
			finished := map[string]bool{}
			for _, e := range evs {
				if e.result != nil {
					finished[e.result.GetJobId()] = true
				}
			}
			for _, e := range evs {
				switch {
				case e.log != nil:
					batch = append(batch, &underlayv1.LogChunk{JobId: e.log.GetJobId(), Offset: e.log.GetOffset(), Data: e.log.GetData(), Stream: e.log.GetStream()})
					size += len(e.log.GetData())
					if size >= logFlushBytes {
						flush(ctx)
					}
				case e.started != nil:
					if finished[e.started.GetJobId()] {
						s.observeStart(e.started.GetJobId())
						continue
					}
					flush(ctx)
					s.jobStarted(ctx, e.started)
				case e.result != nil:
					flush(ctx)
					if s.jobResult(ctx, machineID, e.result) {
						_ = out.send(&underlayv1.ServerMessage{Msg: &underlayv1.ServerMessage_JobAck{JobAck: &underlayv1.JobAck{JobId: e.result.GetJobId()}}})
					}
				}
			}
		}
	}
}

func (s *Server) jobStarted(ctx context.Context, ev *underlayv1.JobStartedEvent) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.apply(actx, &underlayv1.Command{Cmd: &underlayv1.Command_JobStarted{JobStarted: &underlayv1.JobStarted{JobId: ev.GetJobId(), NodeId: s.cluster.ID()}}}); err != nil {
		s.log.Warn("record job start", "job_id", ev.GetJobId(), "err", err)
		return
	}
	s.observeStart(ev.GetJobId())
}

// observeStart records the dispatch latency of a job the agent started.
func (s *Server) observeStart(id string) {
	if j, err := s.store.Job(id); err == nil && s.metrics != nil && j.GetRunnable() != nil {
		s.metrics.DispatchLatency.Observe(s.now().Sub(j.GetRunnable().AsTime()).Seconds())
	}
}

// jobResult commits a job's result and reports whether it is committed
// (then the agent may forget it).
func (s *Server) jobResult(ctx context.Context, machineID string, r *underlayv1.JobResult) bool {
	fin := &underlayv1.FinishJob{
		JobId: r.GetJobId(), Success: r.GetSuccess(), ExitCode: r.GetExitCode(), Error: r.GetError(),
		Reboot: r.GetReboot(), Cancelled: r.GetCancelled(), Skipped: r.GetSkipped(),
	}
	for _, o := range r.GetOutputs() {
		out := &underlayv1.Output{Name: o.GetName(), Secret: o.GetSecret(), Value: o.GetValue()}
		if o.GetSecret() {
			if s.sealer == nil {
				s.log.Error("secret output without a sealing key", "job_id", r.GetJobId(), "output", o.GetName())
				return false
			}
			b, err := s.sealer.Seal([]byte(o.GetValue()), plan.OutputPurpose(o.GetName()))
			if err != nil {
				s.log.Error("seal output", "job_id", r.GetJobId(), "err", err)
				return false
			}
			out.Value, out.Sealed = "", b
		}
		fin.Outputs = append(fin.Outputs, out)
	}
	if !s.finish(ctx, fin) {
		return false
	}
	if s.metrics != nil {
		result := "failed"
		switch {
		case r.GetSkipped():
			result = "skipped"
		case r.GetSuccess():
			result = "succeeded"
		case r.GetCancelled():
			result = "cancelled"
		}
		s.metrics.JobsFinished.WithLabelValues(result).Inc()
	}
	s.log.Info("job finished", "machine_id", machineID, "job_id", r.GetJobId(), "success", r.GetSuccess(), "exit_code", r.GetExitCode(), "error", r.GetError())
	return true
}

func (s *Server) finish(ctx context.Context, fin *underlayv1.FinishJob) bool {
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := s.apply(actx, &underlayv1.Command{Cmd: &underlayv1.Command_FinishJob{FinishJob: fin}}); err != nil {
		s.log.Warn("record job result", "job_id", fin.GetJobId(), "err", err)
		return false
	}
	return true
}
