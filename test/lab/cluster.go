package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"underlay.dev/pkg/client"
	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// DHCP modes of the management nodes.
const (
	Authoritative = "authoritative"
	Proxy         = "proxy"
)

// Ports every node uses on its own address.
const (
	APIPort  = 7443
	RaftPort = 7444
	HTTPPort = 7447
)

// SubnetName is the replicated subnet authoritative clusters lease from.
const SubnetName = "lab"

// ClusterConfig describes a lab cluster.
type ClusterConfig struct {
	// Size is the number of management nodes (default 3).
	Size int
	// DHCPMode is Authoritative, Proxy or "off".
	DHCPMode string
	// Binary is the underlay binary (default: built from the repository).
	Binary string
	// ImageDir holds vmlinuz and initramfs (default: ImageDir).
	ImageDir string
}

// Cluster is a set of 'underlay server' processes, each in its own
// namespace on the lab network at 10.213.N.11, .12, ...
type Cluster struct {
	tb  TB
	net *Network
	cfg ClusterConfig
	Dir string
	// Nodes are the management nodes, n1 first.
	Nodes []*Node
	// Fingerprint is the cluster CA fingerprint.
	Fingerprint string
	// AdminDir holds the bootstrap admin's credentials.
	AdminDir string
}

// Node is one management node.
type Node struct {
	ID      string
	NS      string
	IP      netip.Addr
	DataDir string
	*Proc
}

// API is the node's gRPC address.
func (n *Node) API() string { return netip.AddrPortFrom(n.IP, APIPort).String() }

// StartCluster starts cfg.Size nodes on net: n1 bootstraps (and, for an
// authoritative cluster, gets the subnet SubnetName over .100-.150), the
// others join it. It returns once every node is a healthy voter.
func StartCluster(tb TB, net *Network, cfg ClusterConfig) *Cluster {
	tb.Helper()
	if cfg.Size == 0 {
		cfg.Size = 3
	}
	if cfg.Binary == "" {
		cfg.Binary = BuildServer(tb)
	}
	if cfg.ImageDir == "" {
		cfg.ImageDir = ImageDir(tb)
	}
	c := &Cluster{tb: tb, net: net, cfg: cfg, Dir: tb.TempDir()}
	first := c.startNode("")
	c.AdminDir = filepath.Join(first.DataDir, "admin")
	eventually(tb, NodeDeadline, "n1 to write node.json and admin credentials", func() bool {
		if !first.Running() {
			tb.Fatalf("n1 exited:\n%s", tail(first.Output(), 40))
		}
		fp, err := readFingerprint(first.DataDir)
		c.Fingerprint = fp
		_, cerr := mtls.LoadCreds(c.AdminDir)
		return err == nil && fp != "" && cerr == nil
	})
	cl := c.Client()
	c.waitAPI(cl, first)
	if cfg.DHCPMode == Authoritative {
		sn := &underlayv1.Subnet{Name: SubnetName, Cidr: net.Prefix().String(), RangeStart: net.Addr(100).String(),
			RangeEnd: net.Addr(150).String(), Gateway: net.HostAddr().String(), LeaseSeconds: 3600}
		c.call(func(ctx context.Context) error {
			_, err := cl.IPAM.CreateSubnet(ctx, &underlayv1.CreateSubnetRequest{Subnet: sn})
			return err
		}, "create subnet")
	}
	for len(c.Nodes) < cfg.Size {
		var tok string
		c.call(func(ctx context.Context) error {
			res, err := cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{Kind: underlayv1.TokenKind_TOKEN_KIND_SERVER, TtlSeconds: 3600, Uses: 1})
			tok = res.GetSecret()
			return err
		}, "create server token")
		c.waitAPI(cl, c.startNode(tok))
	}
	c.WaitHealthy(cfg.Size)
	return c
}

func (c *Cluster) startNode(token string) *Node {
	c.tb.Helper()
	i := len(c.Nodes) + 1
	n := &Node{ID: fmt.Sprintf("n%d", i), IP: c.net.Addr(10 + i)}
	n.NS = fmt.Sprintf("ulab%d-%s", c.net.N, n.ID)
	n.DataDir = filepath.Join(c.Dir, n.ID)
	c.net.AddNamespace(n.NS, n.IP)
	ip := n.IP.String()
	args := []string{c.cfg.Binary, "server", "--data-dir", n.DataDir, "--node-id", n.ID,
		"--listen", n.API(), "--raft-listen", netip.AddrPortFrom(n.IP, RaftPort).String(),
		"--metrics-listen", "off", "--https-listen", "off",
		"--dhcp-mode", c.cfg.DHCPMode, "--dhcp-interface", "eth0", "--boot-server-ip", ip,
		"--boot-http-listen", netip.AddrPortFrom(n.IP, HTTPPort).String(), "--tftp-listen", ip + ":69",
		"--image-dir", c.cfg.ImageDir, "--kernel-args", "console=ttyS0"}
	if c.cfg.DHCPMode == Authoritative {
		args = append(args, "--dhcp-subnet", SubnetName)
	}
	if token != "" {
		args = append(args, "--join", c.Nodes[0].API(), "--token", token, "--ca-fingerprint", c.Fingerprint)
	}
	n.Proc = StartProc(c.tb, "underlay "+n.ID, n.NS, filepath.Join(c.Dir, n.ID+".log"), args...)
	c.tb.Cleanup(func() {
		if c.tb.Failed() {
			c.tb.Logf("log of %s (tail):\n%s", n.ID, tail(n.Output(), 25))
		}
	})
	c.Nodes = append(c.Nodes, n)
	return n
}

func readFingerprint(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "node.json"))
	if err != nil {
		return "", err
	}
	var st struct {
		Fingerprint string `json:"ca_fingerprint"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return "", fmt.Errorf("node.json: %w", err)
	}
	return st.Fingerprint, nil
}

// Client returns an admin client to every node, closed at cleanup.
func (c *Cluster) Client() *client.Client {
	c.tb.Helper()
	var addrs []string
	for i := 1; i <= max(c.cfg.Size, 1); i++ {
		addrs = append(addrs, netip.AddrPortFrom(c.net.Addr(10+i), APIPort).String())
	}
	cl, err := client.New(client.Options{Servers: addrs, CredsDir: c.AdminDir})
	if err != nil {
		c.tb.Fatalf("client: %v", err)
	}
	c.tb.Cleanup(func() { cl.Close() })
	return cl
}

// call retries f until it succeeds or NodeDeadline passes.
func (c *Cluster) call(f func(ctx context.Context) error, what string) {
	c.tb.Helper()
	var last error
	eventually(c.tb, NodeDeadline, what, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		last = f(ctx)
		return last == nil
	})
	_ = last
}

func (c *Cluster) waitAPI(cl *client.Client, n *Node) {
	c.tb.Helper()
	one, err := client.New(client.Options{Servers: []string{n.API()}, CredsDir: c.AdminDir})
	if err != nil {
		c.tb.Fatalf("client: %v", err)
	}
	defer one.Close()
	eventually(c.tb, NodeDeadline, "node "+n.ID+" to answer", func() bool {
		if !n.Running() {
			c.tb.Fatalf("node %s exited:\n%s", n.ID, tail(n.Output(), 40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := one.Tokens.List(ctx, &underlayv1.ListTokensRequest{})
		return err == nil
	})
}

// WaitHealthy waits until size voters are healthy and one leads.
func (c *Cluster) WaitHealthy(size int) {
	c.tb.Helper()
	cl := c.Client()
	eventually(c.tb, NodeDeadline, fmt.Sprintf("%d healthy voters", size), func() bool {
		return harness.Healthy(cl, size)
	})
}

// Node returns the node whose address is ip, or nil.
func (c *Cluster) Node(ip netip.Addr) *Node {
	for _, n := range c.Nodes {
		if n.IP == ip {
			return n
		}
	}
	return nil
}

// RepoRoot is the directory holding the module's go.mod.
func RepoRoot(tb TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(out) < 2 {
		tb.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(string(out[:len(out)-1]))
}

// BuildServer builds the underlay binary into a temporary directory.
func BuildServer(tb TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "underlay")
	cmd := exec.Command("go", "build", "-o", bin, "./server/cmd/underlay")
	cmd.Dir = RepoRoot(tb)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build underlay: %v\n%s", err, out)
	}
	return bin
}

// ImageDir returns a directory with vmlinuz and initramfs linked to the
// discovery image in discovery-image/out. It waits for a build.sh that is
// already running, and runs build.sh itself only when the image is missing.
func ImageDir(tb TB) string {
	tb.Helper()
	out := filepath.Join(RepoRoot(tb), "discovery-image", "out")
	kernel, initrd := filepath.Join(out, "vmlinuz"), filepath.Join(out, "initramfs.cpio.zst")
	if exists(filepath.Join(out, "stage")) {
		// build.sh is running (make image, or another test): building too
		// would race it over out/stage, so wait for its result instead.
		tb.Logf("waiting for a running discovery-image/build.sh")
		eventually(tb, 15*time.Minute, "discovery-image/build.sh to finish", func() bool {
			return !exists(filepath.Join(out, "stage"))
		})
	}
	if !exists(kernel) || !exists(initrd) {
		tb.Logf("building the discovery image (discovery-image/build.sh)")
		cmd := exec.Command("bash", "build.sh")
		cmd.Dir = filepath.Dir(out)
		if b, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("build.sh: %v\n%s", err, tail(b, 40))
		}
	}
	dir := tb.TempDir()
	for name, target := range map[string]string{"vmlinuz": kernel, "initramfs": initrd} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			tb.Fatalf("image dir: %v", err)
		}
	}
	return dir
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// eventually polls cond until it holds, failing tb after d.
func eventually(tb TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: %v after %v", what, ErrTimeout, d)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
