package provision_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// TestTwoRoleExample runs examples/two-role on a real three-node cluster
// of server processes: the control plane is the real agent binary in its
// own network namespace (real inventory, real address), the two workers
// are in-process agents. The workers are assigned first and wait for the
// control plane's outputs (cluster linking); once it publishes its join
// token and serves its join API they join with the token.
func TestTwoRoleExample(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the control plane's network namespace")
	}
	server, agentBin := harness.Binaries(t)
	l := harness.NewLink(t)
	pc := harness.StartProcs(t, server, 3, harness.ProcOptions{APIHost: l.HostIP})
	cl := pc.Client()
	c := cluster{pc.Addrs(), pc.AdminDir}
	stateDir := t.TempDir()

	cp := harness.StartNetnsAgent(t, l, agentBin, pc.Addrs(), pc.Fingerprint, pc.Token(underlayv1.TokenKind_TOKEN_KIND_AGENT, time.Hour, 1))
	var workers []*harness.Agent
	for _, name := range []string{"worker-a", "worker-b"} {
		workers = append(workers, harness.StartAgent(t, harness.AgentSpec{
			Servers: pc.Addrs(), Fingerprint: pc.Fingerprint,
			Token:   pc.Token(underlayv1.TokenKind_TOKEN_KIND_AGENT, time.Hour, 1),
			Machine: harness.NewSimMachine(t, name),
		}))
	}
	var workerIDs []string
	for _, w := range workers {
		workerIDs = append(workerIDs, w.WaitEnrolled(t, waitLong))
	}
	var cpID string
	harness.Eventually(t, waitLong, "the control plane's agent to enroll", func() bool {
		if err, exited := cp.Exited(); exited {
			t.Fatalf("control plane agent exited: %v", err)
		}
		res, err := cl.Machines.List(ctxT(t), &underlayv1.ListMachinesRequest{Online: "true"})
		if err != nil {
			return false
		}
		for _, m := range res.GetMachines() {
			if m.GetHostname() != "worker-a" && m.GetHostname() != "worker-b" {
				cpID = m.GetId()
			}
		}
		return cpID != ""
	})
	t.Cleanup(func() {
		// The join API runs in its own session, outside the agent.
		if b, err := os.ReadFile(filepath.Join(stateDir, cpID, "httpd.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	out := c.mustCLI(t, "apply", "-f", filepath.Join(repoRoot(t), "examples", "two-role"))
	for _, want := range []string{"cp-token", "cp-serve", "worker-join", "control-plane", "worker", "created"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	c.mustCLI(t, "param", "set", "--global", "state_dir="+stateDir, "cluster_name=lab")

	for _, id := range workerIDs {
		c.mustCLI(t, "machine", "assign", id, "--role", "worker")
	}
	for _, id := range workerIDs {
		waitPlan(t, cl, id, "to wait for the control plane", func(p *underlayv1.Plan) bool {
			s := p.GetSteps()[0]
			return s.GetState() == underlayv1.StepState_STEP_STATE_WAITING &&
				strings.Contains(s.GetReason(), "waiting for output join_token of a machine with role control-plane")
		})
	}
	if out := c.mustCLI(t, "machine", "plan", workerIDs[0]); !strings.Contains(out, "waiting") {
		t.Errorf("machine plan does not show the waiting step:\n%s", out)
	}

	c.mustCLI(t, "machine", "assign", cpID, "--role", "control-plane")
	cpPlan := waitPlan(t, cl, cpID, "the control plane to succeed", succeeded)
	outs := outputs(cpPlan)
	if outs["join_token"] != "<secret>" || !strings.HasPrefix(outs["api_url"], "http://"+l.GuestIP+":") {
		t.Errorf("control plane outputs = %v, want a secret join_token and api_url on %s", outs, l.GuestIP)
	}
	sum := sha256.Sum256([]byte("lab/" + cpID))
	token := hex.EncodeToString(sum[:])[:32]

	for i, id := range workerIDs {
		p := waitPlan(t, cl, id, "the worker to join", succeeded)
		if got, want := outputs(p)["member"], []string{"worker-a", "worker-b"}[i]; got != want {
			t.Errorf("worker %s published member=%q, want %q", id, got, want)
		}
		joined, err := os.ReadFile(filepath.Join(stateDir, id, "joined"))
		if err != nil || strings.TrimSpace(string(joined)) != "welcome to cluster lab" {
			t.Errorf("worker %s joined file = %q, %v", id, joined, err)
		}
		logs := logsOf(t, cl, id)
		if !strings.Contains(logs, "control plane says: welcome to cluster lab") {
			t.Errorf("worker %s logs lack the join reply:\n%s", id, logs)
		}
		if strings.Contains(logs, token) {
			t.Errorf("worker %s logs contain the secret join token", id)
		}
		js := jobs(t, cl, id)
		if len(js) != 1 || js[0].GetState() != underlayv1.StepState_STEP_STATE_SUCCEEDED || js[0].GetExitCode() != 0 || js[0].GetStarted() == nil || js[0].GetFinished() == nil {
			t.Errorf("worker %s jobs = %v", id, js)
		}
		params := c.mustCLI(t, "param", "show", id)
		if !strings.Contains(params, "join_token") || !strings.Contains(params, "<secret>") || !strings.Contains(params, "link control-plane/join_token from "+cpID) {
			t.Errorf("param show of %s does not explain the linked secret:\n%s", id, params)
		}
		if strings.Contains(params, token) {
			t.Errorf("param show prints the secret token:\n%s", params)
		}
	}
	cpLogs := logsOf(t, cl, cpID)
	if !strings.Contains(cpLogs, "join API up on "+l.GuestIP) || strings.Contains(cpLogs, token) {
		t.Errorf("control plane logs (want the API line, not the token):\n%s", cpLogs)
	}
	for _, p := range pc.Procs {
		b, _ := os.ReadFile(p.Log)
		if strings.Contains(string(b), token) {
			t.Errorf("server log of %s contains the secret join token", p.ID)
		}
	}
}
