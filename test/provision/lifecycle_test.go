package provision_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"underlay.dev/agent"
	"underlay.dev/agent/driver/wipe"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// lab is an in-process three-node cluster with its CLI.
type lab struct {
	c  *harness.Cluster
	cl cluster
}

func newLab(t *testing.T) *lab {
	t.Helper()
	c := harness.Start(t, 3, harness.Options{OfflineGrace: 3 * time.Second})
	return &lab{c: c, cl: cluster{c.Addrs(), c.AdminDir}}
}

func (l *lab) agent(t *testing.T, name string, hw agent.Hardware, reboot func(*harness.Agent)) (*harness.Agent, string) {
	t.Helper()
	a := harness.StartAgent(t, harness.AgentSpec{
		Servers: l.c.Addrs(), Fingerprint: l.c.Fingerprint,
		Token:   l.c.Token(underlayv1.TokenKind_TOKEN_KIND_AGENT, time.Hour, 1),
		Machine: harness.NewSimMachine(t, name), Hardware: hw, Reboot: reboot,
	})
	return a, a.WaitEnrolled(t, waitLong)
}

// loopDisk makes a loop device over a sparse file with an ext4 filesystem
// on it; it is detached at the end of the test.
func loopDisk(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(harness.Run(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	harness.Run(t, "mkfs.ext4", "-q", "-F", dev)
	return dev
}

func hasSignature(dev string) bool {
	out, _ := exec.Command("blkid", "-p", "-o", "value", "-s", "TYPE", dev).Output()
	return strings.TrimSpace(string(out)) != ""
}

// comparablePlan drops what differs between runs of the same plan: the
// generation, job IDs, times and reasons that name actors.
func comparablePlan(p *underlayv1.Plan) *underlayv1.Plan {
	p = proto.Clone(p).(*underlayv1.Plan)
	p.Generation, p.Created, p.Updated, p.CreateIndex, p.ModifyIndex = 0, nil, nil, 0, 0
	for _, s := range p.GetSteps() {
		s.JobId, s.Runnable, s.Started, s.Finished = "", nil, nil, nil
	}
	for _, o := range p.GetOutputs() {
		o.JobId = ""
	}
	return p
}

const redeployDefs = `
kind: Task
name: fingerprint
inputs: [{name: site, default: lab1}]
outputs: [{name: fingerprint}]
script: |
  echo "fingerprint=$(printf '%s/%s' "$UNDERLAY_PARAM_SITE" "{{ .machine.id }}" | sha256sum | cut -c1-16)" >> "$UNDERLAY_OUTPUTS"
---
kind: Task
name: motd
inputs: [{name: motd_dir, required: true}, {name: fingerprint, required: true}]
action: write-file
args: {path: "{{ .params.motd_dir }}/{{ .machine.id }}.motd", content: "built {{ .params.fingerprint }}\n"}
---
kind: Role
name: rebuildable
tasks: [fingerprint, motd]
`

// TestRedeployTwice deploys a role, then redeploys it twice in a row: each
// redeploy wipes the machine's disk for real (a loop device with an ext4
// filesystem, through the agent's wipe action) and rebuilds the role, and
// the two redeploys give the same plan, the same outputs as the first
// deployment and the same final state.
func TestRedeployTwice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices")
	}
	dev := loopDisk(t)
	l := newLab(t)
	cl := l.c.Client()
	_, id := l.agent(t, "rebuild", agent.Hardware{Wipe: wipe.Action(wipe.Config{Devices: []string{dev}})}, nil)
	motdDir := t.TempDir()
	l.cl.mustCLI(t, "param", "set", "--global", "motd_dir="+motdDir)
	l.cl.mustApplyYAML(t, redeployDefs)

	first := waitPlan(t, cl, assign(t, cl, id, "rebuildable").GetMachineId(), "the first deployment", succeeded)
	motd, err := os.ReadFile(filepath.Join(motdDir, id+".motd"))
	if err != nil || !strings.HasPrefix(string(motd), "built ") {
		t.Fatalf("motd after the first deployment = %q, %v", motd, err)
	}
	var plans []*underlayv1.Plan
	var states []underlayv1.MachineState
	for round := 1; round <= 2; round++ {
		if !hasSignature(dev) {
			harness.Run(t, "mkfs.ext4", "-q", "-F", dev)
		}
		if err := os.Remove(filepath.Join(motdDir, id+".motd")); err != nil {
			t.Fatal(err)
		}
		out := l.cl.mustCLI(t, "machine", "redeploy", id)
		if !strings.Contains(out, "wipe") {
			t.Errorf("redeploy %d output does not show the wipe step:\n%s", round, out)
		}
		p := waitPlan(t, cl, id, "the redeploy to succeed", func(p *underlayv1.Plan) bool {
			return p.GetGeneration() == first.GetGeneration()+uint64(round) && succeeded(p)
		})
		if p.GetSteps()[0].GetKind() != "wipe" || p.GetSteps()[0].GetState() != underlayv1.StepState_STEP_STATE_SUCCEEDED {
			t.Errorf("redeploy %d: first step %s is %s, want a succeeded wipe", round, p.GetSteps()[0].GetName(), p.GetSteps()[0].GetState())
		}
		if hasSignature(dev) {
			t.Errorf("redeploy %d: %s still has a filesystem signature after the wipe", round, dev)
		}
		if got, err := os.ReadFile(filepath.Join(motdDir, id+".motd")); err != nil || string(got) != string(motd) {
			t.Errorf("redeploy %d: motd = %q, %v; want %q as after the first deployment", round, got, err, motd)
		}
		if diff := cmp.Diff(outputs(first), outputs(p)); diff != "" {
			t.Errorf("redeploy %d outputs differ from the first deployment (-first +redeploy):\n%s", round, diff)
		}
		m, err := cl.Machines.Get(ctxT(t), &underlayv1.GetMachineRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		plans, states = append(plans, p), append(states, m.GetState())
	}
	if diff := cmp.Diff(comparablePlan(plans[0]), comparablePlan(plans[1]), protocmp.Transform()); diff != "" {
		t.Errorf("the two redeploys gave different plans (-first +second):\n%s", diff)
	}
	for i, st := range states {
		if st != underlayv1.MachineState_MACHINE_STATE_ACTIVE {
			t.Errorf("after redeploy %d the machine is %s, want active", i+1, st)
		}
	}
	logs := logsOf(t, cl, id)
	if !strings.Contains(logs, dev+": wiped") {
		t.Errorf("logs do not show the wipe of %s:\n%s", dev, logs)
	}
}

// TestCircuitBreaker trips a role's breaker after the configured number of
// failed machines: the next machine of the role waits, saying why, until
// 'underlay role resume' continues the rollout.
func TestCircuitBreaker(t *testing.T) {
	l := newLab(t)
	cl := l.c.Client()
	l.cl.mustApplyYAML(t, `
kind: Task
name: maybe-fail
inputs: [{name: should_fail, type: bool, default: false}]
script: |
  if [ "$UNDERLAY_PARAM_SHOULD_FAIL" = true ]; then echo "failing on purpose" >&2; exit 3; fi
  echo ok
---
kind: Role
name: flaky
tasks: [maybe-fail]
breaker: {max_failures: 2}
`)
	var ids []string
	for _, name := range []string{"bad-1", "bad-2", "good"} {
		_, id := l.agent(t, name, agent.Hardware{}, nil)
		ids = append(ids, id)
	}
	for _, id := range ids[:2] {
		setParams(t, cl, id, map[string]string{"should_fail": "true"})
		assign(t, cl, id, "flaky")
	}
	for _, id := range ids[:2] {
		p := waitPlan(t, cl, id, "to fail", func(p *underlayv1.Plan) bool { return p.GetState() == underlayv1.PlanState_PLAN_STATE_FAILED })
		if s := p.GetSteps()[0]; s.GetExitCode() != 3 || !strings.Contains(s.GetReason(), "exit status 3") {
			t.Errorf("%s: step ended with exit %d, reason %q", id, s.GetExitCode(), s.GetReason())
		}
	}
	harness.Eventually(t, waitLong, "the breaker to trip", func() bool {
		out, _ := l.cl.cli(t, "role", "status")
		return strings.Contains(out, "circuit breaker tripped")
	})
	assign(t, cl, ids[2], "flaky")
	waitPlan(t, cl, ids[2], "to wait for the paused role", func(p *underlayv1.Plan) bool {
		s := p.GetSteps()[0]
		return s.GetState() == underlayv1.StepState_STEP_STATE_WAITING && strings.Contains(s.GetReason(), "role flaky is paused")
	})
	time.Sleep(2 * time.Second)
	if js := jobs(t, cl, ids[2]); len(js) != 0 {
		t.Fatalf("a job was dispatched while the role was paused: %v", js)
	}
	l.cl.mustCLI(t, "role", "resume", "flaky")
	waitPlan(t, cl, ids[2], "to run after the resume", succeeded)
	out := l.cl.mustCLI(t, "role", "status", "-o", "json")
	if strings.Contains(out, `"paused": true`) {
		t.Errorf("role still paused after resume:\n%s", out)
	}
}

// TestRebootContinuesPlan runs a task that asks for a reboot: the agent
// restarts (an in-process "reboot" on the same state directory), connects
// again, and the plan goes on with the next step; the step that asked for
// the reboot does not run again.
func TestRebootContinuesPlan(t *testing.T) {
	l := newLab(t)
	cl := l.c.Client()
	ranDir := t.TempDir()
	l.cl.mustCLI(t, "param", "set", "--global", "ran_dir="+ranDir)
	l.cl.mustApplyYAML(t, stepsRole(2, "0")+`---
kind: Task
name: kernel-update
inputs: [{name: ran_dir, required: true}]
reboot: true
script: |
  echo "kernel-update $UNDERLAY_JOB_ID" >> "$UNDERLAY_PARAM_RAN_DIR/{{ .machine.id }}"
---
kind: Role
name: rebooting
tasks: [step-1, kernel-update, step-2]
`)
	a, id := l.agent(t, "reboots", agent.Hardware{}, func(a *harness.Agent) { a.Restart() })
	assign(t, cl, id, "rebooting")
	waitPlan(t, cl, id, "to complete across the reboot", succeeded)
	if diff := cmp.Diff([]string{"step-1", "kernel-update", "step-2"}, ranSteps(t, ranDir, id)); diff != "" {
		t.Errorf("steps that ran (-want +got):\n%s", diff)
	}
	if a.Boots != 2 {
		t.Errorf("agent started %d times, want 2 (one reboot)", a.Boots)
	}
	for _, j := range jobs(t, cl, id) {
		if j.GetAttempt() != 1 || j.GetState() != underlayv1.StepState_STEP_STATE_SUCCEEDED {
			t.Errorf("job %s: %s attempt %d", j.GetId(), j.GetState(), j.GetAttempt())
		}
		if j.GetStepName() == "kernel-update" && !j.GetReboot() {
			t.Errorf("job %s does not record the reboot it asked for", j.GetId())
		}
	}
	if !a.Log.Has("rebooting as the job asked") {
		t.Errorf("agent log does not show the reboot")
	}
}

// TestTimeoutRetryCancel covers a task that times out (the process group
// is killed) and is retried, and an operator cancel of a running job
// followed by a retry that succeeds.
func TestTimeoutRetryCancel(t *testing.T) {
	l := newLab(t)
	cl := l.c.Client()
	marks := t.TempDir()
	l.cl.mustCLI(t, "param", "set", "--global", "marks="+marks)
	l.cl.mustApplyYAML(t, `
kind: Task
name: slow
inputs: [{name: marks, required: true}, {name: delay, type: int, default: 60}]
timeout: 2s
retries: 1
script: |
  echo "attempt $UNDERLAY_JOB_ID starts"
  sleep "$UNDERLAY_PARAM_DELAY" &
  wait
  touch "$UNDERLAY_PARAM_MARKS/{{ .machine.id }}.done"
---
kind: Role
name: slow
tasks: [slow]
---
kind: Task
name: long
inputs: [{name: marks, required: true}, {name: delay, type: int, default: 60}]
script: |
  sleep "$UNDERLAY_PARAM_DELAY"
  touch "$UNDERLAY_PARAM_MARKS/{{ .machine.id }}.long"
---
kind: Role
name: long
tasks: [long]
`)
	_, a := l.agent(t, "times-out", agent.Hardware{}, nil)
	_, b := l.agent(t, "cancelled", agent.Hardware{}, nil)

	assign(t, cl, a, "slow")
	p := waitPlan(t, cl, a, "to fail after two timeouts", func(p *underlayv1.Plan) bool { return p.GetState() == underlayv1.PlanState_PLAN_STATE_FAILED })
	if s := p.GetSteps()[0]; s.GetAttempt() != 2 || !strings.Contains(s.GetReason(), "timed out after 2s") {
		t.Errorf("step: attempt %d, reason %q; want 2 attempts that timed out", s.GetAttempt(), s.GetReason())
	}
	if _, err := os.Stat(filepath.Join(marks, a+".done")); err == nil {
		t.Errorf("the timed-out script went on to finish")
	}
	if n := len(jobs(t, cl, a)); n != 2 {
		t.Errorf("%d jobs, want 2 (one retry)", n)
	}
	setParams(t, cl, a, map[string]string{"delay": "0"})
	l.cl.mustCLI(t, "machine", "retry", a)
	waitPlan(t, cl, a, "to succeed on retry", succeeded)

	assign(t, cl, b, "long")
	waitPlan(t, cl, b, "to run", func(p *underlayv1.Plan) bool {
		return p.GetSteps()[0].GetState() == underlayv1.StepState_STEP_STATE_RUNNING
	})
	l.cl.mustCLI(t, "machine", "cancel", b)
	p = waitPlan(t, cl, b, "to be cancelled", func(p *underlayv1.Plan) bool { return p.GetState() == underlayv1.PlanState_PLAN_STATE_CANCELLED })
	harness.Eventually(t, waitLong, "the agent to report the cancelled job", func() bool {
		js := jobs(t, cl, b)
		return len(js) == 1 && js[0].GetState() == underlayv1.StepState_STEP_STATE_CANCELLED
	})
	time.Sleep(time.Second)
	if _, err := os.Stat(filepath.Join(marks, b+".long")); err == nil {
		t.Errorf("the cancelled script went on to finish")
	}
	setParams(t, cl, b, map[string]string{"delay": "0"})
	l.cl.mustCLI(t, "machine", "retry", b)
	waitPlan(t, cl, b, "to succeed on retry", succeeded)
	if _, err := os.Stat(filepath.Join(marks, b+".long")); err != nil {
		t.Errorf("the retried script did not finish: %v", err)
	}
	_ = p
}
