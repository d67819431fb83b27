// Package provision_test runs roles and tasks end to end: real three-node
// clusters (in-process nodes, or real server processes that are killed),
// real agents running real scripts (in-process, and the agent binary in
// its own network namespace), the two-role example of examples/two-role.
package provision_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

const waitLong = 3 * time.Minute

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// repoRoot is the repository's top directory.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// cluster is what the CLI needs to reach a cluster.
type cluster struct {
	addrs    []string
	adminDir string
}

// cli runs the real underlay CLI against c and returns its combined
// output and exit code.
func (c cluster) cli(tb testing.TB, args ...string) (string, int) {
	tb.Helper()
	server, _ := harness.Binaries(tb)
	full := append([]string{"--server", strings.Join(c.addrs, ","), "--creds", c.adminDir, "--timeout", "30s"}, args...)
	cmd := exec.Command(server, full...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatalf("run underlay %v: %v", args, err)
	}
	return string(out), code
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func (c cluster) mustCLI(tb testing.TB, args ...string) string {
	tb.Helper()
	out, code := c.cli(tb, args...)
	if code != 0 {
		tb.Fatalf("underlay %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// writeYAML writes text to a new file and returns its path.
func writeYAML(tb testing.TB, text string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "defs.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// applyYAML applies definitions with 'underlay apply -f'.
func (c cluster) applyYAML(tb testing.TB, text string) (string, int) {
	tb.Helper()
	return c.cli(tb, "apply", "-f", writeYAML(tb, text))
}

func (c cluster) mustApplyYAML(tb testing.TB, text string) {
	tb.Helper()
	if out, code := c.applyYAML(tb, text); code != 0 {
		tb.Fatalf("apply: exit %d\n%s", code, out)
	}
}

func assign(tb testing.TB, cl *client.Client, id, role string) *underlayv1.Plan {
	tb.Helper()
	p, err := cl.Provision.Assign(ctxT(tb), &underlayv1.AssignRequest{MachineId: id, Role: role})
	if err != nil {
		tb.Fatalf("assign %s to %s: %v", role, id, err)
	}
	return p
}

func getPlan(tb testing.TB, cl *client.Client, id string) *underlayv1.Plan {
	tb.Helper()
	var p *underlayv1.Plan
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		p, err = cl.Provision.GetPlan(ctxT(tb), &underlayv1.GetPlanRequest{MachineId: id})
		if err == nil {
			return p
		}
		time.Sleep(500 * time.Millisecond)
	}
	tb.Fatalf("plan of %s: %v", id, err)
	return nil
}

// waitPlan polls the plan of id until cond holds, and returns it.
func waitPlan(tb testing.TB, cl *client.Client, id, what string, cond func(*underlayv1.Plan) bool) *underlayv1.Plan {
	tb.Helper()
	var last *underlayv1.Plan
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		last = getPlan(tb, cl, id)
		if cond(last) {
			return last
		}
		if last.GetState() == underlayv1.PlanState_PLAN_STATE_FAILED && !strings.Contains(what, "fail") {
			tb.Fatalf("plan of %s failed while waiting for %s: %s\n%s\njob output:\n%s", id, what, last.GetReason(), describePlan(last), logsOf(tb, cl, id))
		}
		time.Sleep(200 * time.Millisecond)
	}
	tb.Fatalf("timed out waiting for plan of %s: %s\n%s\njob output:\n%s", id, what, describePlan(last), logsOf(tb, cl, id))
	return nil
}

func succeeded(p *underlayv1.Plan) bool {
	return p.GetState() == underlayv1.PlanState_PLAN_STATE_SUCCEEDED
}

func describePlan(p *underlayv1.Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan %s g%d role %s: %s %s\n", p.GetMachineId(), p.GetGeneration(), p.GetRole(), p.GetState(), p.GetReason())
	for _, s := range p.GetSteps() {
		fmt.Fprintf(&b, "  %d %-14s %-8s %-22s attempt %d/%d %s\n", s.GetIndex(), s.GetName(), s.GetKind(), s.GetState(), s.GetAttempt(), s.GetMaxAttempts(), s.GetReason())
	}
	return b.String()
}

func jobs(tb testing.TB, cl *client.Client, id string) []*underlayv1.Job {
	tb.Helper()
	res, err := cl.Provision.ListJobs(ctxT(tb), &underlayv1.ListJobsRequest{MachineId: id})
	if err != nil {
		tb.Fatalf("jobs of %s: %v", id, err)
	}
	return res.GetJobs()
}

// logsOf returns the stored output of every job of a machine.
func logsOf(tb testing.TB, cl *client.Client, id string) string {
	tb.Helper()
	stream, err := cl.Provision.Logs(ctxT(tb), &underlayv1.LogsRequest{MachineId: id})
	if err != nil {
		tb.Fatalf("logs of %s: %v", id, err)
	}
	var b strings.Builder
	for {
		c, err := stream.Recv()
		if err != nil {
			break
		}
		b.Write(c.GetData())
	}
	return b.String()
}

func outputs(p *underlayv1.Plan) map[string]string {
	out := map[string]string{}
	for _, o := range p.GetOutputs() {
		v := o.GetValue()
		if o.GetSecret() {
			v = "<secret>"
		}
		out[o.GetName()] = v
	}
	return out
}

func setParams(tb testing.TB, cl *client.Client, machineID string, kv map[string]string) {
	tb.Helper()
	set := map[string]*underlayv1.ParamValue{}
	for k, v := range kv {
		set[k] = &underlayv1.ParamValue{Value: v}
	}
	if _, err := cl.Provision.SetParams(ctxT(tb), &underlayv1.SetParamsRequest{MachineId: machineID, Set: set}); err != nil {
		tb.Fatalf("set params: %v", err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBinaries()
	os.Exit(code)
}
