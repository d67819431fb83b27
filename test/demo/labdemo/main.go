// Command labdemo is `make demo`: it builds a private provisioning network
// from network namespaces, starts a three-node Underlay cluster on it with
// authoritative DHCP, powers on a QEMU VM that PXE-boots the discovery
// image, prints progress while it boots, and shows the machine once it is
// discovered with its inventory. It then gives the VM a role whose RAID 1
// is resolved against its disks and built with mdadm in the discovery
// image, and runs the two-role example (examples/two-role) on three local
// agents, with live progress. Ctrl-C (or DEMO_DURATION seconds after the
// end) tears everything down. It needs root.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
	"underlay.dev/test/lab"
)

// demo implements lab.TB for a program: logs go to stdout with the time
// since start, a fatal error runs the cleanups and exits.
type demo struct {
	once     sync.Once
	start    time.Time
	cleanups []func()
	dir      string
	failed   bool
}

func (d *demo) Helper() {}

func (d *demo) Logf(format string, args ...any) {
	fmt.Printf("[%6.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "demo: %s\n", fmt.Sprintf(format, args...))
}

func (d *demo) Fatalf(format string, args ...any) {
	d.failed = true
	fmt.Fprintf(os.Stderr, "demo failed: %s\n", fmt.Sprintf(format, args...))
	d.cleanup()
	os.Exit(1)
}

func (d *demo) Cleanup(f func()) { d.cleanups = append(d.cleanups, f) }

func (d *demo) TempDir() string {
	dir, err := os.MkdirTemp(d.dir, "t")
	if err != nil {
		d.Fatalf("temp dir: %v", err)
	}
	return dir
}

func (d *demo) Failed() bool { return d.failed }

func (d *demo) cleanup() {
	d.once.Do(func() {
		for i := len(d.cleanups) - 1; i >= 0; i-- {
			d.cleanups[i]()
		}
		os.RemoveAll(d.dir)
	})
}

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "make demo builds network namespaces and runs QEMU: run it as root")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "underlay-lab-demo")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	d := &demo{start: time.Now(), dir: dir}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	finished := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-finished:
			return
		}
		d.Logf("interrupted: tearing the lab down")
		d.cleanup()
		d.Logf("lab removed")
		os.Exit(130)
	}()

	bin, _ := filepath.Abs("bin/underlay")
	d.Logf("checking lab packages (QEMU, OVMF, iPXE, dnsmasq)")
	lab.EnsurePackages(d)
	net := lab.NewNetwork(d)
	d.Logf("provisioning network %s in namespace %s", net.Prefix(), net.NS)
	c := lab.StartCluster(d, net, lab.ClusterConfig{DHCPMode: lab.Authoritative, Binary: bin})
	var servers []string
	for _, n := range c.Nodes {
		servers = append(servers, n.API())
	}
	env := append(os.Environ(), "UNDERLAY_CREDS="+c.AdminDir, "UNDERLAY_SERVER="+strings.Join(servers, ","))
	cli := func(args ...string) {
		fmt.Printf("\n$ underlay %s\n", strings.Join(args, " "))
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, os.Stdout, os.Stderr
		cmd.Run()
		fmt.Println()
	}
	cli("cluster", "status")
	cli("subnet", "ls")

	d.Logf("powering on a VM (2 vCPUs, 1.5 GiB, two disks, two NICs) that PXE-boots from the cluster")
	vm := lab.StartVM(d, net, lab.VMConfig{Name: "demo", CPUs: 2, MemoryMiB: 1536, Disks: []int64{2 << 30, 3 << 30}, NICs: 2})
	boot := lab.WaitDiscovered(d, c.Client(), vm)
	id := boot.Machine.GetId()
	d.Logf("machine %s discovered", id)
	cli("machine", "ls")
	cli("machine", "show", id)
	cli("machine", "inventory", id)
	cli("lease", "ls")

	d.Logf("roles and tasks: a RAID 1 role for the VM (resolved against its disks), then the two-role example on three local agents")
	cli("apply", "-f", "examples/storage", "-f", "examples/two-role")
	cli("machine", "assign", id, "--role", "mirror", "--wait")
	cli("machine", "plan", id)
	cli("logs", id)
	twoRole(d, c, net, cli)

	fmt.Printf("The lab keeps running. In another shell:\n  export UNDERLAY_CREDS=%s UNDERLAY_SERVER=%s\n  %s machine inventory %s -o yaml\n\n",
		c.AdminDir, strings.Join(servers, ","), bin, id)
	if s := os.Getenv("DEMO_DURATION"); s != "" {
		secs, _ := strconv.Atoi(s)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(secs) * time.Second):
		}
	} else {
		fmt.Println("Press Ctrl-C to stop the lab.")
		<-ctx.Done()
	}
	close(finished)
	d.cleanup()
	d.Logf("lab removed")
}

// twoRole runs examples/two-role on three in-process agents of simulated
// machines: the workers are assigned first and wait for the control
// plane's join token and URL, then join.
func twoRole(d *demo, c *lab.Cluster, net *lab.Network, cli func(args ...string)) {
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, TtlSeconds: 3600, Uses: 3})
	if err != nil {
		d.Fatalf("agent token: %v", err)
	}
	var servers []string
	for _, n := range c.Nodes {
		servers = append(servers, n.API())
	}
	stateDir := d.TempDir()
	cli("param", "set", "--global", "state_dir="+stateDir, "cluster_name=demo")
	ids := map[string]string{}
	for _, name := range []string{"control-plane-1", "worker-1", "worker-2"} {
		m := harness.NewSimMachine(d, name)
		if name == "control-plane-1" {
			// It serves the join API on the host's lab address.
			m.Addresses = []string{net.HostAddr().String() + "/24"}
		}
		a := harness.StartAgent(d, harness.AgentSpec{Servers: servers, Fingerprint: c.Fingerprint, Token: tok.GetSecret(), Machine: m})
		ids[name] = a.WaitEnrolled(d, 2*time.Minute)
		d.Logf("local agent %s enrolled as %s", name, ids[name])
	}
	d.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(stateDir, ids["control-plane-1"], "httpd.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
	cli("machine", "assign", ids["worker-1"], "--role", "worker")
	cli("machine", "assign", ids["worker-2"], "--role", "worker")
	time.Sleep(2 * time.Second)
	cli("machine", "plan", ids["worker-1"])
	cli("machine", "assign", ids["control-plane-1"], "--role", "control-plane", "--wait")
	for _, w := range []string{"worker-1", "worker-2"} {
		waitPlan(d, cl, ids[w])
		cli("machine", "plan", ids[w])
	}
	cli("logs", ids["worker-1"])
	cli("param", "show", ids["worker-1"])
	cli("role", "status")
}

// waitPlan waits until a machine's plan has ended.
func waitPlan(d *demo, cl *client.Client, id string) {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := cl.Provision.GetPlan(ctx, &underlayv1.GetPlanRequest{MachineId: id})
		cancel()
		if err == nil && p.GetState() != underlayv1.PlanState_PLAN_STATE_RUNNING {
			d.Logf("plan of %s: %s %s", id, strings.ToLower(strings.TrimPrefix(p.GetState().String(), "PLAN_STATE_")), p.GetReason())
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	d.Fatalf("plan of %s did not end within 3 minutes", id)
}
