// Package crash kills real underlay server processes with SIGKILL and
// checks that nothing acknowledged is lost.
package crash

import (
	"context"
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
	"underlay.dev/test/harness"
)

func freePort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	cmd *exec.Cmd
	log *os.File
}

func startServer(tb testing.TB, bin, dir, api, raft string) *proc {
	tb.Helper()
	logf, err := os.OpenFile(filepath.Join(dir+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "server", "--data-dir", dir, "--node-id", "n1",
		"--listen", api, "--raft-listen", raft, "--metrics-listen", "off", "--https-listen", "off")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &proc{cmd: cmd, log: logf}
	tb.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
	p.log.Close()
}

func dial(tb testing.TB, creds, api string) *client.Client {
	tb.Helper()
	var c *mtls.Creds
	harness.Eventually(tb, 60*time.Second, "admin credentials", func() bool {
		var err error
		c, err = mtls.LoadCreds(creds)
		return err == nil
	})
	cl, err := client.New(client.Options{Servers: []string{api}, Creds: c})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cl.Close() })
	harness.Eventually(tb, 60*time.Second, "the API to answer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cl.Tokens.List(ctx, &underlayv1.ListTokensRequest{})
		return err == nil
	})
	return cl
}

func TestSIGKILLDuringWritesLosesNothingAcknowledged(t *testing.T) {
	bin := harness.Build(t, t.TempDir(), "underlay.dev/server/cmd/underlay")
	dir := filepath.Join(t.TempDir(), "node")
	api, raft := freePort(t), freePort(t)
	p := startServer(t, bin, dir, api, raft)
	cl := dial(t, filepath.Join(dir, "admin"), api)

	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 100000; i++ {
				d := fmt.Sprintf("w%d-%d", w, i)
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := cl.Tokens.Create(cctx, &underlayv1.CreateTokenRequest{Kind: underlayv1.TokenKind_TOKEN_KIND_AGENT, Description: d})
				ccancel()
				if err == nil {
					mu.Lock()
					acked = append(acked, d)
					mu.Unlock()
				}
			}
		}()
	}
	harness.Eventually(t, 60*time.Second, "200 acknowledged writes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	})
	p.cmd.Process.Signal(syscall.SIGKILL) // mid-stream
	p.cmd.Wait()
	cancel()
	wg.Wait()
	// Every write acknowledged before the process died must survive; the
	// writers stop on errors, so nothing is acknowledged after the kill.
	want := acked

	startServer(t, bin, dir, api, raft)
	cl2 := dial(t, filepath.Join(dir, "admin"), api)
	res, err := cl2.Tokens.List(context.Background(), &underlayv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, tok := range res.GetTokens() {
		have[tok.GetDescription()] = true
	}
	lost := 0
	for _, d := range want {
		if !have[d] {
			lost++
			if lost < 10 {
				t.Errorf("acknowledged write %q lost after SIGKILL", d)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", lost, len(want))
	}
	t.Logf("%d acknowledged writes survived SIGKILL", len(want))
}
