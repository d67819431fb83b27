// Package join tests the documented one-command install of the agent on an
// existing machine: the CA is checked against its fingerprint, the join
// script and the agent binary are fetched over HTTPS with that CA pinned,
// and the installed agent enrolls.
package join

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"underlay.dev/pkg/client"
	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/node"
	"underlay.dev/test/harness"
)

func TestJoinCommandInstallsAnAgentThatEnrolls(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the join script installs as root; run as root (CI does)")
	}
	for _, tool := range []string{"curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (make test installs it): %v", tool, err)
		}
	}
	dir := t.TempDir()
	agentBin := harness.Build(t, dir, "underlay.dev/agent/cmd/underlay-agent")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := node.Start(ctx, node.Config{
		DataDir: filepath.Join(dir, "n1"), NodeID: "n1",
		Listen: "127.0.0.1:0", RaftListen: "127.0.0.1:0", MetricsListen: "off",
		HTTPSListen: "127.0.0.1:0", AgentBinary: agentBin,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	creds, err := mtls.LoadCreds(n.AdminCredsDir())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(client.Options{Servers: []string{n.APIAddr()}, Creds: creds})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tok, err := cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, TtlSeconds: 600, Uses: 1})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("wrong fingerprint stops before anything is fetched", func(t *testing.T) {
		root := filepath.Join(dir, "bad-root")
		cmd := node.JoinCommand(n.JoinURL(), strings.Repeat("0", 64), tok.GetSecret()) + " --root " + root + " --no-start"
		if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err == nil {
			t.Fatalf("join with a wrong fingerprint succeeded:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(root, "usr/local/bin/underlay-agent")); err == nil {
			t.Fatal("agent installed despite the wrong fingerprint")
		}
	})

	root := filepath.Join(dir, "root")
	cmd := node.JoinCommand(n.JoinURL(), n.Fingerprint(), tok.GetSecret()) + " --root " + root + " --no-start"
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("join command failed: %v\n%s", err, out)
	}
	installed := filepath.Join(root, "usr/local/bin/underlay-agent")
	conf := filepath.Join(root, "etc/underlay/agent.yaml")
	for _, f := range []string{installed, conf, filepath.Join(root, "etc/systemd/system/underlay-agent.service")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("not installed: %v", err)
		}
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), n.Fingerprint()) || !strings.Contains(string(b), n.APIAddr()) {
		t.Fatalf("agent config lacks the fingerprint or server:\n%s", b)
	}

	// The installed agent, with the installed config, enrolls.
	actx, acancel := context.WithCancel(context.Background())
	defer acancel()
	run := exec.CommandContext(actx, installed, "run", "--config", conf, "--state-dir", filepath.Join(dir, "state"))
	out, _ := os.Create(filepath.Join(dir, "agent.log"))
	run.Stdout, run.Stderr = out, out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { acancel(); run.Wait() }()
	harness.Eventually(t, 60*time.Second, "the installed agent to enroll", func() bool {
		r, err := cl.Machines.List(ctx, &underlayv1.ListMachinesRequest{})
		return err == nil && len(r.GetMachines()) == 1 && r.GetMachines()[0].GetOnline()
	})
}
