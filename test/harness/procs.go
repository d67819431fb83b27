package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"underlay.dev/pkg/client"
	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Build compiles the Go package pkg (an import path such as
// "underlay.dev/server/cmd/underlay") into dir and returns the binary's path.
func Build(tb testing.TB, dir, pkg string) string {
	tb.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// ProcOptions tune a cluster of real server processes.
type ProcOptions struct {
	// APIHost is the IP the API listens on and advertises (default
	// 127.0.0.1). Raft always stays on loopback.
	APIHost string
	// Args are extra flags for every 'underlay server'.
	Args []string
}

// ProcCluster is a cluster of real 'underlay server' processes, each with
// its own data directory and log file.
type ProcCluster struct {
	tb   testing.TB
	bin  string
	opts ProcOptions
	Dir  string
	// Procs are the nodes, n1 first.
	Procs []*Proc
	// Fingerprint is the cluster CA fingerprint (from n1's node.json).
	Fingerprint string
	// AdminDir holds the bootstrap admin's credentials.
	AdminDir string
}

// Proc is one server process.
type Proc struct {
	ID      string
	DataDir string
	API     string
	Raft    string
	Log     string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// StartProcs starts size server processes from the binary bin: n1
// bootstraps, the others join it with server tokens made with the admin
// credentials. It waits until every node is a healthy voter.
func StartProcs(tb testing.TB, bin string, size int, opts ProcOptions) *ProcCluster {
	tb.Helper()
	if opts.APIHost == "" {
		opts.APIHost = "127.0.0.1"
	}
	c := &ProcCluster{tb: tb, bin: bin, opts: opts, Dir: tb.TempDir()}
	tb.Cleanup(c.KillAll)
	first := c.start(nil, "")
	c.AdminDir = filepath.Join(first.DataDir, "admin")
	Eventually(tb, 60*time.Second, "n1 to write node.json", func() bool {
		fp, err := readFingerprint(first.DataDir)
		c.Fingerprint = fp
		return err == nil && fp != ""
	})
	c.waitAPI(first)
	for i := 1; i < size; i++ {
		tok := c.Token(underlayv1.TokenKind_TOKEN_KIND_SERVER, time.Hour, 1)
		c.waitAPI(c.start(c.Addrs(), tok))
	}
	c.WaitHealthy(size)
	return c
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
		return "", err
	}
	return st.Fingerprint, nil
}

func (c *ProcCluster) freeAddr(host string) string {
	c.tb.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		c.tb.Fatalf("free port on %s: %v", host, err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start launches the next node; with join set it joins with tok.
func (c *ProcCluster) start(join []string, tok string) *Proc {
	c.tb.Helper()
	id := fmt.Sprintf("n%d", len(c.Procs)+1)
	p := &Proc{
		ID:      id,
		DataDir: filepath.Join(c.Dir, id),
		API:     c.freeAddr(c.opts.APIHost),
		Raft:    c.freeAddr("127.0.0.1"),
		Log:     filepath.Join(c.Dir, id+".log"),
	}
	args := []string{"server", "--data-dir", p.DataDir, "--node-id", id,
		"--listen", p.API, "--raft-listen", p.Raft, "--metrics-listen", "off", "--https-listen", "off"}
	for _, j := range join {
		args = append(args, "--join", j)
	}
	if tok != "" {
		args = append(args, "--token", tok, "--ca-fingerprint", c.Fingerprint)
	}
	args = append(args, c.opts.Args...)
	c.Procs = append(c.Procs, p)
	c.run(p, args)
	return p
}

func (c *ProcCluster) run(p *Proc, args []string) {
	c.tb.Helper()
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.tb.Fatal(err)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.tb.Fatalf("start %s: %v", p.ID, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// waitAPI waits until p answers an authenticated call.
func (c *ProcCluster) waitAPI(p *Proc) {
	c.tb.Helper()
	var creds *mtls.Creds
	Eventually(c.tb, 60*time.Second, "admin credentials in "+c.AdminDir, func() bool {
		var err error
		creds, err = mtls.LoadCreds(c.AdminDir)
		return err == nil
	})
	cl, err := client.New(client.Options{Servers: []string{p.API}, Creds: creds})
	if err != nil {
		c.tb.Fatal(err)
	}
	defer cl.Close()
	Eventually(c.tb, 90*time.Second, "node "+p.ID+" to answer (log "+p.Log+")", func() bool {
		if !p.Running() {
			b, _ := os.ReadFile(p.Log)
			c.tb.Fatalf("node %s exited:\n%s", p.ID, b)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := cl.Tokens.List(ctx, &underlayv1.ListTokensRequest{})
		return err == nil
	})
}

// Addrs lists the API addresses of running nodes.
func (c *ProcCluster) Addrs() []string {
	var out []string
	for _, p := range c.Procs {
		if p.Running() {
			out = append(out, p.API)
		}
	}
	return out
}

// Index returns the index of the node with the given ID, or -1.
func (c *ProcCluster) Index(id string) int {
	for i, p := range c.Procs {
		if p.ID == id {
			return i
		}
	}
	return -1
}

// Client returns an admin client to every running node, closed at the end
// of the test.
func (c *ProcCluster) Client() *client.Client {
	c.tb.Helper()
	cl, err := client.New(client.Options{Servers: c.Addrs(), CredsDir: c.AdminDir})
	if err != nil {
		c.tb.Fatalf("client: %v", err)
	}
	c.tb.Cleanup(func() { cl.Close() })
	return cl
}

// Token creates a token through the API and returns its secret.
func (c *ProcCluster) Token(kind underlayv1.TokenKind, ttl time.Duration, uses int32) string {
	c.tb.Helper()
	cl, err := client.New(client.Options{Servers: c.Addrs(), CredsDir: c.AdminDir})
	if err != nil {
		c.tb.Fatalf("client: %v", err)
	}
	defer cl.Close()
	var secret string
	Eventually(c.tb, 60*time.Second, "a token to be created", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := cl.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{Kind: kind, TtlSeconds: int64(ttl / time.Second), Uses: uses})
		secret = res.GetSecret()
		return err == nil
	})
	return secret
}

// WaitHealthy waits until the cluster reports size voters, all healthy,
// and a leader.
func (c *ProcCluster) WaitHealthy(size int) {
	c.tb.Helper()
	cl := c.Client()
	Eventually(c.tb, 90*time.Second, fmt.Sprintf("%d healthy voters", size), func() bool {
		return Healthy(cl, size)
	})
}

// Kill sends SIGKILL to node i and waits until it is gone.
func (c *ProcCluster) Kill(i int) {
	p := c.Procs[i]
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// KillAll kills every node; it runs at the end of the test.
func (c *ProcCluster) KillAll() {
	for i := range c.Procs {
		c.Kill(i)
	}
	if c.tb.Failed() {
		for _, p := range c.Procs {
			if b, err := os.ReadFile(p.Log); err == nil {
				c.tb.Logf("log of %s (last 4KiB):\n%s", p.ID, tail(b, 4096))
			}
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Healthy reports whether the cluster behind cl has size members, all
// healthy, one of them the leader.
func Healthy(cl *client.Client, size int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := cl.Cluster.Members(ctx, &underlayv1.MembersRequest{})
	if err != nil || len(res.GetMembers()) != size {
		return false
	}
	leader := false
	for _, m := range res.GetMembers() {
		if m.GetHealth() != "healthy" {
			return false
		}
		leader = leader || m.GetRole() == "leader"
	}
	return leader
}

// binaries are the server and agent binaries, built once per test binary.
var binaries struct {
	once          sync.Once
	dir           string
	server, agent string
	err           error
}

// Binaries builds the underlay server and agent once per test binary and
// returns their paths; call RemoveBinaries from TestMain when done.
func Binaries(tb testing.TB) (server, agent string) {
	tb.Helper()
	binaries.once.Do(func() {
		binaries.dir, binaries.err = os.MkdirTemp("", "underlay-binaries-")
		if binaries.err != nil {
			return
		}
		binaries.server = Build(tb, binaries.dir, "underlay.dev/server/cmd/underlay")
		binaries.agent = Build(tb, binaries.dir, "underlay.dev/agent/cmd/underlay-agent")
	})
	if binaries.err != nil || binaries.server == "" || binaries.agent == "" {
		tb.Fatalf("binaries were not built: %v", binaries.err)
	}
	return binaries.server, binaries.agent
}

// RemoveBinaries deletes what Binaries built.
func RemoveBinaries() {
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
}
