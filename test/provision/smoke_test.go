package provision_test

import (
	"strings"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// TestScriptTaskRunsAndPublishes runs a two-task role on one in-process
// agent of a three-node in-process cluster: the first task publishes an
// output, the second consumes it as a param; logs and outputs are kept.
func TestScriptTaskRunsAndPublishes(t *testing.T) {
	c := harness.Start(t, 3, harness.Options{OfflineGrace: 3 * time.Second})
	cl := c.Client()
	a := harness.StartAgent(t, harness.AgentSpec{
		Servers: c.Addrs(), Fingerprint: c.Fingerprint,
		Token:   c.Token(underlayv1.TokenKind_TOKEN_KIND_AGENT, time.Hour, 1),
		Machine: harness.NewSimMachine(t, "smoke"),
	})
	id := a.WaitEnrolled(t, waitLong)
	cluster{c.Addrs(), c.AdminDir}.mustApplyYAML(t, `
kind: Task
name: make-greeting
inputs: [{name: who, default: world}]
outputs: [{name: greeting}]
script: |
  echo "making a greeting for {{ .params.who }}"
  echo "greeting=hello {{ .params.who }} from {{ .machine.hostname }}" >> "$UNDERLAY_OUTPUTS"
---
kind: Task
name: say
inputs: [{name: greeting, required: true}]
script: |
  echo "the greeting is: $UNDERLAY_PARAM_GREETING"
---
kind: Role
name: greeter
tasks: [make-greeting, say]
params: {who: operators}
`)
	assign(t, cl, id, "greeter")
	p := waitPlan(t, cl, id, "to succeed", succeeded)
	if got, want := outputs(p)["greeting"], "hello operators from smoke"; got != want {
		t.Errorf("greeting = %q, want %q", got, want)
	}
	logs := logsOf(t, cl, id)
	if !strings.Contains(logs, "the greeting is: hello operators from smoke") {
		t.Errorf("logs lack the second task's line:\n%s", logs)
	}
	for _, j := range jobs(t, cl, id) {
		if j.GetState() != underlayv1.StepState_STEP_STATE_SUCCEEDED || j.GetAttempt() != 1 {
			t.Errorf("job %s: %s attempt %d", j.GetId(), j.GetState(), j.GetAttempt())
		}
	}
	m, _ := cl.Machines.Get(ctxT(t), &underlayv1.GetMachineRequest{Id: id})
	if m.GetState() != underlayv1.MachineState_MACHINE_STATE_ACTIVE || m.GetRole() != "greeter" {
		t.Errorf("machine is %s with role %q, want active greeter", m.GetState(), m.GetRole())
	}
}
