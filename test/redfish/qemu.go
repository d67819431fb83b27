package redfish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// QEMUConfig configures a QEMUPower.
type QEMUConfig struct {
	// Argv builds the QEMU command line for a boot; bootOnce is "", "Pxe"
	// or "Hdd" and should map to QEMU's boot order (for example
	// "-boot once=n" or the bootindex of the NIC and the disk). It may wrap
	// QEMU (ip netns exec NS qemu-system-x86_64 ...). QEMUPower appends
	// "-qmp unix:QMPSocket,server=on,wait=off" to it.
	Argv func(bootOnce string) []string
	// QMPSocket is the path of the QMP unix socket (at most 107 bytes).
	QMPSocket string
	// GracefulTimeout is how long a graceful power-off waits for the guest
	// before QEMU is stopped anyway (default 30 s).
	GracefulTimeout time.Duration
	// Output receives QEMU's stdout and stderr (default: kept in memory,
	// the tail quoted in errors).
	Output io.Writer
	// Logger gets the driver's log (default: discard).
	Logger *slog.Logger
}

// QEMUPower is a PowerDriver that runs a QEMU virtual machine: power-on
// starts the process, power-off and reset go through QMP.
type QEMUPower struct {
	cfg QEMUConfig
	log *slog.Logger

	mu   sync.Mutex
	proc *qemuProc
}

// qemuProc is one running QEMU process.
type qemuProc struct {
	cmd  *exec.Cmd
	argv []string
	qmp  *qmp
	out  *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // the exit status, once done
}

func (p *qemuProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// NewQEMUPower checks cfg and returns a driver for a machine that is off.
func NewQEMUPower(cfg QEMUConfig) (*QEMUPower, error) {
	if cfg.Argv == nil {
		return nil, fmt.Errorf("qemu power: no argv builder: %w", ErrConfig)
	}
	if cfg.QMPSocket == "" || len(cfg.QMPSocket) > 107 {
		return nil, fmt.Errorf("qemu power: qmp socket path %q: want 1 to 107 bytes: %w", cfg.QMPSocket, ErrConfig)
	}
	if cfg.GracefulTimeout <= 0 {
		cfg.GracefulTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &QEMUPower{cfg: cfg, log: cfg.Logger}, nil
}

func (q *QEMUPower) argv(bootOnce string) []string {
	args := slices.Clone(q.cfg.Argv(bootOnce))
	return append(args, "-qmp", "unix:"+q.cfg.QMPSocket+",server=on,wait=off")
}

// running returns the live process, or nil (with q.mu held).
func (q *QEMUPower) running() *qemuProc {
	if q.proc == nil || q.proc.exited() {
		return nil
	}
	return q.proc
}

// PowerOn starts QEMU and connects to its QMP socket.
func (q *QEMUPower) PowerOn(ctx context.Context, bootOnce string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.start(ctx, bootOnce)
}

func (q *QEMUPower) start(ctx context.Context, bootOnce string) error {
	if q.running() != nil {
		return fmt.Errorf("qemu power on: already running: %w", ErrPower)
	}
	argv := q.argv(bootOnce)
	if len(argv) < 3 {
		return fmt.Errorf("qemu power on: empty command line: %w", ErrConfig)
	}
	_ = os.Remove(q.cfg.QMPSocket)
	p := &qemuProc{argv: argv, out: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	var out io.Writer = p.out
	if q.cfg.Output != nil {
		out = io.MultiWriter(p.out, q.cfg.Output)
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = procAttr()
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("qemu power on: start %s: %w", argv[0], err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	q.proc = p
	q.log.Info("qemu started", "pid", p.cmd.Process.Pid, "boot_once", bootOnce)

	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := dialQMP(ctx, q.cfg.QMPSocket)
		if err == nil {
			p.qmp = conn
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("qemu power on: qemu exited (%v): %s: %w", p.err, p.out.String(), ErrPower)
		case <-ctx.Done():
			q.kill(p)
			return fmt.Errorf("qemu power on: connect qmp: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			q.kill(p)
			return fmt.Errorf("qemu power on: no qmp on %s: %v: %w", q.cfg.QMPSocket, err, ErrPower)
		}
	}
}

// PowerOff stops QEMU: force quits it, graceful asks the guest through
// ACPI (system_powerdown) and quits it after GracefulTimeout.
func (q *QEMUPower) PowerOff(ctx context.Context, force bool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stop(ctx, force)
}

func (q *QEMUPower) stop(ctx context.Context, force bool) error {
	p := q.running()
	if p == nil {
		return nil
	}
	if !force {
		if _, err := p.qmp.execute(ctx, "system_powerdown", nil); err == nil {
			select {
			case <-p.done:
				q.log.Info("qemu powered down by the guest")
				return nil
			case <-time.After(q.cfg.GracefulTimeout):
				q.log.Info("qemu guest ignored the ACPI power button, quitting", "timeout", q.cfg.GracefulTimeout)
			case <-ctx.Done():
			}
		}
	}
	_, _ = p.qmp.execute(ctx, "quit", nil) // the connection drops as QEMU exits
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		q.kill(p)
	}
	_ = p.qmp.close()
	q.log.Info("qemu stopped")
	return nil
}

// kill ends the process (and what it started) without QMP.
func (q *QEMUPower) kill(p *qemuProc) {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	<-p.done
	if p.qmp != nil {
		_ = p.qmp.close()
	}
}

// Reset restarts the guest with system_reset when it boots the normal
// order; a one-time boot device needs a different command line, so QEMU
// is stopped and started again.
func (q *QEMUPower) Reset(ctx context.Context, bootOnce string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.running()
	if p != nil && bootOnce == "" && slices.Equal(p.argv, q.argv("")) {
		if _, err := p.qmp.execute(ctx, "system_reset", nil); err != nil {
			return fmt.Errorf("qemu reset: %w", err)
		}
		q.log.Info("qemu reset")
		return nil
	}
	if err := q.stop(ctx, true); err != nil {
		return err
	}
	return q.start(ctx, bootOnce)
}

// State is "On" while QEMU runs a guest that has not shut down.
func (q *QEMUPower) State(ctx context.Context) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.running()
	if p == nil {
		return "Off", nil
	}
	ret, err := p.qmp.execute(ctx, "query-status", nil)
	if err != nil {
		if p.exited() {
			return "Off", nil
		}
		return "On", fmt.Errorf("qemu state: %w", err)
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(ret, &st); err != nil {
		return "On", fmt.Errorf("qemu state: %w", err)
	}
	if st.Status == "shutdown" {
		return "Off", nil
	}
	return "On", nil
}

// PID is the QEMU process's ID while it runs, else 0. (With a wrapper
// such as ip netns exec, which execs QEMU, it is QEMU's.)
func (q *QEMUPower) PID() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.running(); p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// Close stops QEMU if it runs.
func (q *QEMUPower) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := q.PowerOff(ctx, true)
	_ = os.Remove(q.cfg.QMPSocket)
	return err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(bytes.TrimSpace(t.buf))
	if s == "" {
		return "no output"
	}
	return s
}

var _ PowerDriver = (*QEMUPower)(nil)
var _ PowerDriver = (*MemoryPower)(nil)
