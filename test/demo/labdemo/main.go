// Command labdemo is `make demo`: it builds a private provisioning network
// from network namespaces, starts a three-node Underlay cluster on it with
// authoritative DHCP, powers on a QEMU VM that PXE-boots the discovery
// image, prints progress while it boots, and shows the machine once it is
// discovered with its inventory. Ctrl-C (or DEMO_DURATION seconds after
// discovery) tears everything down. It needs root.
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
