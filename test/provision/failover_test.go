package provision_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// stepsRole is a role of n tasks that each append their step and job to
// a file of the machine and take a while, so that a failure can strike in
// the middle of a plan.
func stepsRole(n int, sleep string) string {
	var b strings.Builder
	var names []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("step-%d", i)
		names = append(names, name)
		fmt.Fprintf(&b, `kind: Task
name: %s
inputs: [{name: ran_dir, required: true}]
script: |
  mkdir -p "$UNDERLAY_PARAM_RAN_DIR"
  echo "%s $UNDERLAY_JOB_ID" >> "$UNDERLAY_PARAM_RAN_DIR/{{ .machine.id }}"
  sleep %s
---
`, name, name, sleep)
	}
	fmt.Fprintf(&b, "kind: Role\nname: steps\ntasks: [%s]\n", strings.Join(names, ", "))
	return b.String()
}

// ranSteps reads which steps ran on a machine, in order.
func ranSteps(tb testing.TB, dir, id string) []string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(dir, id))
	if err != nil {
		tb.Fatalf("steps that ran on %s: %v", id, err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		out = append(out, strings.Fields(l)[0])
	}
	return out
}

// TestLeaderFailoverMidPlan kills the leader (SIGKILL, a real server
// process) while plans are in the middle of their steps: no finished step
// runs again, no step is lost, and every plan completes.
func TestLeaderFailoverMidPlan(t *testing.T) {
	server, _ := harness.Binaries(t)
	pc := harness.StartProcs(t, server, 3, harness.ProcOptions{})
	cl := pc.Client()
	c := cluster{pc.Addrs(), pc.AdminDir}
	ranDir := t.TempDir()
	var ids []string
	for i := 0; i < 3; i++ {
		a := harness.StartAgent(t, harness.AgentSpec{
			Servers: pc.Addrs(), Fingerprint: pc.Fingerprint,
			Token:   pc.Token(underlayv1.TokenKind_TOKEN_KIND_AGENT, time.Hour, 1),
			Machine: harness.NewSimMachine(t, fmt.Sprintf("fo-%d", i)),
		})
		ids = append(ids, a.WaitEnrolled(t, waitLong))
	}
	const steps = 6
	c.mustCLI(t, "param", "set", "--global", "ran_dir="+ranDir)
	c.mustApplyYAML(t, stepsRole(steps, "1"))
	for _, id := range ids {
		assign(t, cl, id, "steps")
	}
	waitPlan(t, cl, ids[0], "to reach step 3", func(p *underlayv1.Plan) bool {
		return p.GetSteps()[2].GetState() == underlayv1.StepState_STEP_STATE_RUNNING
	})
	st, err := cl.Cluster.Status(ctxT(t), &underlayv1.ClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	leader := pc.Index(st.GetLeaderId())
	if leader < 0 {
		t.Fatalf("leader %q is not one of the nodes", st.GetLeaderId())
	}
	t.Logf("killing leader %s in the middle of the plans", st.GetLeaderId())
	pc.Kill(leader)

	want := make([]string, steps)
	for i := range want {
		want[i] = fmt.Sprintf("step-%d", i+1)
	}
	for _, id := range ids {
		p := waitPlan(t, cl, id, "to complete after the failover", succeeded)
		if diff := cmp.Diff(want, ranSteps(t, ranDir, id)); diff != "" {
			t.Errorf("steps that ran on %s (-want +got):\n%s", id, diff)
		}
		js := jobs(t, cl, id)
		var names []string
		for _, j := range js {
			names = append(names, j.GetStepName())
			if j.GetState() != underlayv1.StepState_STEP_STATE_SUCCEEDED || j.GetAttempt() != 1 {
				t.Errorf("job %s: %s, attempt %d; want one successful attempt", j.GetId(), j.GetState(), j.GetAttempt())
			}
		}
		sort.Strings(names)
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("jobs of %s (-want +got):\n%s", id, diff)
		}
		for _, s := range p.GetSteps() {
			if s.GetAttempt() != 1 {
				t.Errorf("%s step %s took %d attempts", id, s.GetName(), s.GetAttempt())
			}
		}
	}
}
