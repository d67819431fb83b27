package provision_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"underlay.dev/agent"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// TestLogsFollow follows a running job's output with 'underlay logs -f':
// lines show up while the job still runs, and secrets never do.
func TestLogsFollow(t *testing.T) {
	l := newLab(t)
	cl := l.c.Client()
	l.cl.mustApplyYAML(t, `
kind: Task
name: ticker
inputs: [{name: api_key, secret: true}]
script: |
  for i in 1 2 3 4 5 6 7 8; do echo "tick $i key=$UNDERLAY_PARAM_API_KEY"; sleep 0.5; done
---
kind: Role
name: ticking
tasks: [ticker]
`)
	_, id := l.agent(t, "ticks", agent.Hardware{}, nil)
	l.cl.mustCLI(t, "param", "set", "--machine", id, "--secret", "api_key=sup3r-s3cret-k3y")
	server, _ := harness.Binaries(t)
	out := &harness.LogBuffer{}
	cmd := exec.Command(server, "--server", strings.Join(l.cl.addrs, ","), "--creds", l.cl.adminDir, "logs", "-f", id)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	assign(t, cl, id, "ticking")
	harness.Eventually(t, waitLong, "followed output while the job runs", func() bool { return strings.Contains(out.String(), "tick 2") })
	if p := getPlan(t, cl, id); p.GetState() != underlayv1.PlanState_PLAN_STATE_RUNNING {
		t.Errorf("plan is %s when the first lines arrived; want it still running", p.GetState())
	}
	waitPlan(t, cl, id, "the ticker to finish", succeeded)
	harness.Eventually(t, 10*time.Second, "the last line", func() bool { return strings.Contains(out.String(), "tick 8") })
	if strings.Contains(out.String(), "sup3r-s3cret-k3y") || !strings.Contains(out.String(), "key=***") {
		t.Errorf("followed output shows the secret or no redaction:\n%s", out.String())
	}
}
