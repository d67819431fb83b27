package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/agent/runner"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Jobs. The agent runs one job at a time and never runs a job ID twice.
// A finished job's result is written to the state directory before it is
// sent and kept until the cluster acknowledges it (JobAck), so that a
// result survives a lost session, a node failover and a restart of the
// agent; a RunStep for a job that finished is answered with that result.
// Output is kept in memory (up to maxJobLog per job) until the result is
// acknowledged and sent again from its start on every new session; the
// cluster stores each byte offset once.

const (
	resultsDir   = "jobs"
	keepResults  = 50
	maxJobLog    = 1 << 20
	logChunk     = 32 << 10
	outboxSize   = 4096
	resendEvery  = 30 * time.Second
	rebootDelay  = 2 * time.Second
	resultSuffix = ".result"
)

// executor owns the agent's jobs. Its methods are called from the session
// loop; the job itself runs in its own goroutine.
type executor struct {
	a      *Agent
	dir    string
	outbox chan *underlayv1.AgentMessage
	// reconnect asks the session loop to end the session (after a network
	// change).
	reconnect chan struct{}

	mu      sync.Mutex
	running *runningJob
	// results of finished jobs: unacked ones are resent.
	results map[string]*storedResult
	logs    map[string][]byte // output of running and unacked jobs
	// rebooting is set once a job's reboot is under way: no new job starts
	// on this boot; the cluster delivers it again after the reboot.
	rebooting bool
}

type runningJob struct {
	id     string
	cancel context.CancelCauseFunc
	done   chan struct{}
}

type storedResult struct {
	res   *underlayv1.JobResult
	acked bool
	mod   time.Time
}

func newExecutor(a *Agent) *executor {
	return &executor{
		a:         a,
		dir:       filepath.Join(a.cfg.StateDir, resultsDir),
		outbox:    make(chan *underlayv1.AgentMessage, outboxSize),
		reconnect: make(chan struct{}, 1),
		results:   map[string]*storedResult{},
		logs:      map[string][]byte{},
	}
}

// load reads the results kept in the state directory.
func (e *executor) load() {
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		return
	}
	for _, ent := range entries {
		name := ent.Name()
		if !strings.HasSuffix(name, resultSuffix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.dir, name))
		if err != nil {
			continue
		}
		var st underlayv1.JobResult
		if err := proto.Unmarshal(b, &st); err != nil {
			e.a.log.Warn("unreadable job result dropped", "file", name, "error", err.Error())
			continue
		}
		info, _ := ent.Info()
		_, acked := os.Stat(filepath.Join(e.dir, name+".acked"))
		sr := &storedResult{res: &st, acked: acked == nil}
		if info != nil {
			sr.mod = info.ModTime()
		}
		e.results[st.GetJobId()] = sr
	}
}

func (e *executor) runningID() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running == nil {
		return ""
	}
	return e.running.id
}

// push queues a message for the current or next session; when the queue
// is full it is dropped (output and results are sent again on the next
// session anyway).
func (e *executor) push(m *underlayv1.AgentMessage) {
	select {
	case e.outbox <- m:
	default:
	}
}

// sessionStarted queues everything the cluster may not have: the running
// job's start and output so far, and every unacknowledged result with its
// output.
func (e *executor) sessionStarted() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running != nil {
		e.push(startedMsg(e.running.id))
		e.pushLogsLocked(e.running.id)
	}
	for _, id := range e.sortedResults() {
		sr := e.results[id]
		if !sr.acked {
			e.pushLogsLocked(id)
			e.push(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_JobResult{JobResult: sr.res}})
		}
	}
}

// resendUnacked queues results the cluster has not acknowledged yet.
func (e *executor) resendUnacked() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range e.sortedResults() {
		if sr := e.results[id]; !sr.acked {
			e.push(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_JobResult{JobResult: sr.res}})
		}
	}
}

func (e *executor) sortedResults() []string {
	ids := make([]string, 0, len(e.results))
	for id := range e.results {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (e *executor) pushLogsLocked(id string) {
	data := e.logs[id]
	for off := 0; off < len(data); off += logChunk {
		end := min(off+logChunk, len(data))
		e.push(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_JobLog{JobLog: &underlayv1.JobLog{
			JobId: id, Offset: uint64(off), Data: data[off:end], Stream: "replay",
		}}})
	}
}

func startedMsg(id string) *underlayv1.AgentMessage {
	return &underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_JobStarted{JobStarted: &underlayv1.JobStartedEvent{JobId: id, At: timestamppb.Now()}}}
}

// start runs a job unless it runs or ran already.
func (e *executor) start(ctx context.Context, run *underlayv1.RunStep) {
	id := run.GetJobId()
	e.mu.Lock()
	defer e.mu.Unlock()
	if sr, ok := e.results[id]; ok {
		e.a.log.Info("job finished already; sending its result again", "job_id", id)
		e.push(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_JobResult{JobResult: sr.res}})
		return
	}
	if e.rebooting {
		e.a.log.Info("job deferred until after the reboot", "job_id", id)
		return
	}
	if e.running != nil {
		if e.running.id == id {
			e.push(startedMsg(id))
			return
		}
		e.a.log.Warn("job refused: another job is running", "job_id", id, "running", e.running.id)
		e.push(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_JobResult{JobResult: &underlayv1.JobResult{
			JobId: id, ExitCode: -1, Error: "the agent is running another job (" + e.running.id + ")", Finished: timestamppb.Now(),
		}}})
		return
	}
	jctx, cancel := context.WithCancelCause(ctx)
	rj := &runningJob{id: id, cancel: cancel, done: make(chan struct{})}
	e.running = rj
	e.logs[id] = nil
	e.push(startedMsg(id))
	e.a.log.Info("job started", "job_id", id, "step", run.GetName(), "kind", run.GetKind())
	go func() {
		defer close(rj.done)
		defer cancel(nil)
		res := e.a.runJob(jctx, run, func(stream string, data []byte) { e.output(id, stream, data) })
		e.finish(res)
	}()
}

// output records and forwards a piece of a job's output.
func (e *executor) output(id, stream string, data []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	buf := e.logs[id]
	off := len(buf)
	if off >= maxJobLog {
		return
	}
	if off+len(data) > maxJobLog {
		data = data[:maxJobLog-off]
	}
	e.logs[id] = append(buf, data...)
	e.push(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_JobLog{JobLog: &underlayv1.JobLog{
		JobId: id, Offset: uint64(off), Data: append([]byte(nil), data...), Stream: stream,
	}}})
}

// finish keeps a job's result and sends it.
func (e *executor) finish(res *underlayv1.JobResult) {
	res.Finished = timestamppb.Now()
	e.mu.Lock()
	res.LogBytes = uint64(len(e.logs[res.GetJobId()]))
	if err := e.save(res); err != nil {
		e.a.log.Error("cannot keep job result on disk; it is kept in memory only", "job_id", res.GetJobId(), "error", err.Error())
	}
	e.results[res.GetJobId()] = &storedResult{res: res, mod: time.Now()}
	e.running = nil
	e.push(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_JobResult{JobResult: res}})
	e.prune()
	e.mu.Unlock()
	e.a.log.Info("job finished", "job_id", res.GetJobId(), "success", res.GetSuccess(), "skipped", res.GetSkipped(),
		"exit_code", res.GetExitCode(), "error", res.GetError(), "reboot", res.GetReboot())
}

func (e *executor) save(res *underlayv1.JobResult) error {
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return err
	}
	b, err := proto.Marshal(res)
	if err != nil {
		return err
	}
	p := filepath.Join(e.dir, res.GetJobId()+resultSuffix)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// prune forgets the oldest acknowledged results beyond keepResults.
func (e *executor) prune() {
	var acked []string
	for id, sr := range e.results {
		if sr.acked {
			acked = append(acked, id)
		}
	}
	if len(acked) <= keepResults {
		return
	}
	sort.Slice(acked, func(i, j int) bool { return e.results[acked[i]].mod.Before(e.results[acked[j]].mod) })
	for _, id := range acked[:len(acked)-keepResults] {
		delete(e.results, id)
		_ = os.Remove(filepath.Join(e.dir, id+resultSuffix))
		_ = os.Remove(filepath.Join(e.dir, id+resultSuffix+".acked"))
	}
}

// ack marks a result committed by the cluster, and reboots when the job
// asked for it.
func (e *executor) ack(ctx context.Context, id string) {
	e.mu.Lock()
	sr, ok := e.results[id]
	if !ok || sr.acked {
		e.mu.Unlock()
		return
	}
	sr.acked = true
	delete(e.logs, id)
	if err := os.WriteFile(filepath.Join(e.dir, id+resultSuffix+".acked"), nil, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.a.log.Warn("cannot record job acknowledgement", "job_id", id, "error", err.Error())
	}
	reboot := sr.res.GetReboot() && sr.res.GetSuccess()
	if reboot {
		e.rebooting = true
	}
	e.mu.Unlock()
	if reboot {
		e.a.log.Info("rebooting as the job asked", "job_id", id)
		go func() {
			time.Sleep(rebootDelay) // let the log line and acks leave
			if err := e.a.reboot(ctx); err != nil {
				// Go on without it rather than hold every later job.
				e.a.log.Error("reboot failed; continuing without it", "job_id", id, "error", err.Error())
				e.mu.Lock()
				e.rebooting = false
				e.mu.Unlock()
			}
		}()
	}
}

// cancel stops a running job.
func (e *executor) cancel(id, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running != nil && e.running.id == id {
		e.a.log.Info("job cancelled by the cluster", "job_id", id, "reason", reason)
		e.running.cancel(errors.New(reason))
	}
}

// wait waits for the running job, if any, to end (tests and shutdown).
func (e *executor) wait() {
	e.mu.Lock()
	r := e.running
	e.mu.Unlock()
	if r != nil {
		<-r.done
	}
}

// runJob runs one job and returns its result.
func (a *Agent) runJob(ctx context.Context, run *underlayv1.RunStep, log runner.Log) *underlayv1.JobResult {
	res := &underlayv1.JobResult{JobId: run.GetJobId()}
	if skip := a.notApplicable(run); skip != "" {
		log("agent", []byte("step skipped: "+skip+"\n"))
		res.Success, res.Skipped, res.Error = true, true, skip
		return res
	}
	spec := runner.Spec{
		JobID:       run.GetJobId(),
		Kind:        run.GetKind(),
		Script:      run.GetScript(),
		Interpreter: run.GetInterpreter(),
		Args:        run.GetArgs(),
		SpecJSON:    run.GetSpecJson(),
		Timeout:     time.Duration(run.GetTimeoutSeconds()) * time.Second,
		Reboot:      run.GetReboot(),
	}
	for _, p := range run.GetParams() {
		spec.Params = append(spec.Params, runner.Param{Name: p.GetName(), Value: p.GetValue(), Secret: p.GetSecret()})
	}
	for _, o := range run.GetOutputs() {
		spec.Outputs = append(spec.Outputs, runner.Output{Name: o.GetName(), Secret: o.GetSecret()})
	}
	if a.runner == nil {
		res.ExitCode, res.Error = -1, "this agent has no job runner: "+a.runnerErr
		return res
	}
	r := a.runner.Run(ctx, spec, log)
	res.Success, res.ExitCode, res.Error, res.Reboot, res.Cancelled = r.Success, int32(r.ExitCode), r.Err, r.Reboot, r.Cancelled
	secret := map[string]bool{}
	for _, o := range run.GetOutputs() {
		secret[o.GetName()] = o.GetSecret()
	}
	for _, o := range r.Outputs {
		res.Outputs = append(res.Outputs, &underlayv1.Param{Name: o.Name, Value: o.Value, Secret: secret[o.Name] || o.Secret})
	}
	if isHardware(run.GetKind()) {
		a.hardwareChanged(ctx, run.GetKind())
	}
	return res
}

func isHardware(kind string) bool {
	switch kind {
	case "raid", "bios", "network", "wipe":
		return true
	}
	return false
}

// hardwareChanged re-collects the inventory after a hardware step and
// queues it before the step's result, so that the cluster sees the new
// arrays, bonds and addresses when the plan moves on. After a network
// change the session's connection may be dead without knowing it (its
// address is gone), so the agent reconnects at once, and every new session
// starts with a fresh inventory until one has been sent.
func (a *Agent) hardwareChanged(ctx context.Context, kind string) {
	a.hwDirty.Store(true)
	if kind == "network" {
		a.netChanged.Store(true)
		select {
		case a.exec.reconnect <- struct{}{}:
		default:
		}
		return
	}
	inv, err := a.hw.Collect(ctx)
	if err != nil {
		a.log.Warn("inventory after a hardware step", "error", err.Error())
		return
	}
	a.exec.push(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_Inventory{Inventory: inv}})
}

// notApplicable says why a step does not apply to this machine, or "".
func (a *Agent) notApplicable(run *underlayv1.RunStep) string {
	if run.GetKind() == "bios" {
		for _, p := range run.GetParams() {
			if p.GetName() == "bmc_address" && p.GetValue() != "" {
				return ""
			}
		}
		return "no BMC configured for this machine (set its bmc_address, bmc_username and bmc_password params); BIOS settings need a Redfish BMC"
	}
	return ""
}

// reboot restarts the machine.
func (a *Agent) reboot(ctx context.Context) error {
	if a.cfg.Reboot == nil {
		return fmt.Errorf("no reboot method configured")
	}
	return a.cfg.Reboot(ctx)
}
