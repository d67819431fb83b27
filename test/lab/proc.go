package lab

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// Proc is a background process whose output goes to a log file.
type Proc struct {
	Name string
	Log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProc starts args (in namespace ns unless ns is "") with its output
// in logPath, and kills it at cleanup.
func StartProc(tb TB, name, ns, logPath string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{Name: name, Log: logPath}
	p.start(tb, ns, args)
	tb.Cleanup(p.Stop)
	return p
}

func (p *Proc) start(tb TB, ns string, args []string) {
	tb.Helper()
	if ns != "" {
		// ip netns exec execs the command, so the PID is the command's.
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatalf("log of %s: %v", p.Name, err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("start %s (%s): %v", p.Name, strings.Join(args, " "), err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
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

// Stop kills the process and waits for it to exit.
func (p *Proc) Stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Output returns the log file's content.
func (p *Proc) Output() []byte {
	b, _ := os.ReadFile(p.Log)
	return b
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
