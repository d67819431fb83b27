package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"underlay.dev/pkg/netconf"
)

// Sentinel errors. Validation errors match netconf.ErrInvalid.
var (
	// ErrRolledBack is returned when Apply changed the host, something
	// failed (a step or the check) and the previous configuration was
	// restored.
	ErrRolledBack = errors.New("rolled back to the previous configuration")
	// ErrRollbackFailed is returned when restoring the previous
	// configuration failed too; the host is in between.
	ErrRollbackFailed = errors.New("rollback failed")
	// ErrConflict is returned when the host has something in the way of the
	// config (an interface name taken by a link the config does not
	// manage); nothing is changed.
	ErrConflict = errors.New("conflicts with the host's links")
	// ErrNoDHCP is returned for an ipv4_dhcp network when Config.DHCP is nil.
	ErrNoDHCP = errors.New("no DHCP client configured")
	// ErrNotConverged is returned when the host still differs from the
	// config after the driver's rounds of changes.
	ErrNotConverged = errors.New("host did not reach the configuration")
)

// DefaultCheckTimeout bounds the connectivity check after a change.
const DefaultCheckTimeout = 45 * time.Second

// rounds bounds how often Apply re-reads the host and applies what is still
// missing (the kernel changes things on its own: enslaving a NIC changes
// its MAC, setting a link down drops its routes).
const rounds = 4

// Driver configures the host's networking.
type Driver interface {
	// Apply makes the host's networking match d. A config already in place
	// is a no-op. After changing anything it calls check (retrying until
	// success or Config.CheckTimeout); if check fails, or a change fails,
	// Apply restores the previous configuration (links it created deleted,
	// slaves released, addresses, routes, MTUs, up/down state and
	// resolv.conf restored), runs check again, and returns an error
	// wrapping ErrRolledBack that says what failed. d is validated against
	// the live NICs before anything changes. A nil check always passes.
	Apply(ctx context.Context, d *netconf.Data, check func(context.Context) error, log io.Writer) (Report, error)
}

// Report says what Apply did.
type Report struct {
	// Changed is true when the host's configuration differs from before
	// the call (false after a rollback).
	Changed bool
	// Lines are the steps taken, in order, as written to the log.
	Lines []string
}

// Config configures New.
type Config struct {
	// ResolvConf is the resolver file (default /etc/resolv.conf). A
	// symlink is followed and its target replaced.
	ResolvConf string
	// CheckTimeout bounds the check (default DefaultCheckTimeout).
	CheckTimeout time.Duration
	// DHCP obtains an address on iface for ipv4_dhcp networks; optional.
	DHCP func(ctx context.Context, iface string) error
	// Logger gets structured events (default: discarded).
	Logger *slog.Logger
	// Handle is the netlink handle to use, e.g. one in a test's network
	// namespace (default: the current namespace).
	Handle *netlink.Handle
}

// system is what the driver needs from the kernel.
type system interface {
	snapshot() (*State, error)
	exec(o op) error
}

type driver struct {
	cfg Config
	sys system
	log *slog.Logger
}

// New returns the netlink driver.
func New(cfg Config) Driver {
	h := cfg.Handle
	if h == nil {
		h = &netlink.Handle{}
	}
	return newDriver(cfg, &netlinkSystem{h: h})
}

func newDriver(cfg Config, sys system) *driver {
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &driver{cfg: cfg, sys: sys, log: log}
}

// run records and logs the steps of one Apply.
type run struct {
	rep *Report
	w   io.Writer
}

func (r *run) say(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.rep.Lines = append(r.rep.Lines, line)
	fmt.Fprintln(r.w, line)
}

func (d *driver) Apply(ctx context.Context, data *netconf.Data, check func(context.Context) error, w io.Writer) (Report, error) {
	var rep Report
	if w == nil {
		w = io.Discard
	}
	r := &run{rep: &rep, w: w}
	if data == nil {
		return rep, fmt.Errorf("apply network config: no document: %w", netconf.ErrInvalid)
	}
	before, err := d.snapshot()
	if err != nil {
		return rep, fmt.Errorf("apply network config: %w", err)
	}
	g, err := forwardGoal(data, before)
	if err != nil {
		return rep, fmt.Errorf("apply network config: %w", err)
	}
	if len(g.dhcp) > 0 && d.cfg.DHCP == nil {
		return rep, fmt.Errorf("apply network config: ipv4_dhcp on %s: %w", strings.Join(g.dhcp, ", "), ErrNoDHCP)
	}
	ops, err := plan(before, g)
	if err != nil {
		return rep, fmt.Errorf("apply network config: %w", err)
	}
	if len(ops) == 0 && len(needDHCP(before, g)) == 0 {
		r.say("network configuration already in place")
		return rep, nil
	}
	rep.Changed = true
	for _, line := range data.Summary() {
		r.say("config: %s", line)
	}
	forward := func(cur *State) (*goal, error) { return forwardGoal(data, cur) }
	err = d.converge(ctx, ops, forward, r, false)
	if err == nil {
		err = d.dhcp(ctx, g, r)
	}
	if err == nil {
		if err = d.check(ctx, check, r); err == nil {
			r.say("check passed")
			d.log.Info("network configuration applied", "steps", len(rep.Lines))
			return rep, nil
		}
	}
	return rep, d.rollback(ctx, before, check, err, r)
}

// rollback restores before after cause and checks again.
func (d *driver) rollback(ctx context.Context, before *State, check func(context.Context) error, cause error, r *run) error {
	r.say("rolling back: %v", cause)
	ctx = context.WithoutCancel(ctx)
	back := func(cur *State) (*goal, error) { return restoreGoal(before, cur), nil }
	if err := d.converge(ctx, nil, back, r, true); err != nil {
		r.say("rollback failed: %v", err)
		d.log.Error("network rollback failed", "cause", cause, "error", err)
		return fmt.Errorf("apply network config: %w; %w: %w", cause, ErrRollbackFailed, err)
	}
	r.rep.Changed = false
	if err := d.check(ctx, check, r); err != nil {
		r.say("previous configuration restored; its check fails too: %v", err)
		d.log.Warn("network config rolled back, check still failing", "cause", cause, "error", err)
		return fmt.Errorf("apply network config: %w (the restored configuration fails the check too: %v): %w", cause, err, ErrRolledBack)
	}
	r.say("previous configuration restored")
	d.log.Warn("network config rolled back", "cause", cause)
	return fmt.Errorf("apply network config: %w: %w", cause, ErrRolledBack)
}

// converge applies ops, then re-reads the host and applies what goalFn still
// asks for, for up to rounds rounds. With keepGoing (rollback) a failed step
// does not stop the others.
func (d *driver) converge(ctx context.Context, ops []op, goalFn func(*State) (*goal, error), r *run, keepGoing bool) error {
	var failed []error
	for round := 0; ; round++ {
		if ops == nil || round > 0 {
			cur, err := d.snapshot()
			if err != nil {
				return err
			}
			g, err := goalFn(cur)
			if err != nil {
				return err
			}
			if ops, err = plan(cur, g); err != nil {
				return err
			}
		}
		if len(ops) == 0 {
			return nil
		}
		if round == rounds {
			var left []string
			for _, o := range ops {
				left = append(left, o.String())
			}
			return fmt.Errorf("still to do: %s: %w", strings.Join(left, "; "), errors.Join(append(failed, ErrNotConverged)...))
		}
		// After deleting or releasing links, plan the rest again from what
		// the kernel did: it restores released slaves' MACs and MTUs.
		if i := lastRelease(ops); i >= 0 && i < len(ops)-1 {
			ops = ops[:i+1]
		}
		for _, o := range ops {
			if err := ctx.Err(); err != nil && !keepGoing {
				return fmt.Errorf("interrupted before %s: %w", o, err)
			}
			r.say("%s", o)
			err := d.exec(o)
			if err == nil {
				continue
			}
			err = fmt.Errorf("%s: %w", o, err)
			r.say("failed: %v", err)
			if !keepGoing {
				return err
			}
			failed = append(failed, err)
		}
	}
}

// lastRelease is the index of the last link deletion or release in ops, or -1.
func lastRelease(ops []op) int {
	last := -1
	for i, o := range ops {
		if o.kind == opLinkDel || o.kind == opNoMaster {
			last = i
		}
	}
	return last
}

func (d *driver) exec(o op) error {
	if o.kind == opResolv {
		return writeFile(d.cfg.ResolvConf, o.file)
	}
	return d.sys.exec(o)
}

func (d *driver) snapshot() (*State, error) {
	st, err := d.sys.snapshot()
	if err != nil {
		return nil, fmt.Errorf("read network state: %w", err)
	}
	f, err := readFile(d.cfg.ResolvConf)
	if err != nil {
		return nil, err
	}
	st.Resolv = f
	return st, nil
}

// needDHCP lists the goal's DHCP links without an IPv4 address in st.
func needDHCP(st *State, g *goal) []string {
	var out []string
	for _, name := range g.dhcp {
		l := st.link(name)
		has := false
		if l != nil {
			for _, a := range l.Addrs {
				has = has || a.Prefix.Addr().Is4()
			}
		}
		if !has {
			out = append(out, name)
		}
	}
	return out
}

func (d *driver) dhcp(ctx context.Context, g *goal, r *run) error {
	if len(g.dhcp) == 0 {
		return nil
	}
	st, err := d.snapshot()
	if err != nil {
		return err
	}
	for _, name := range needDHCP(st, g) {
		r.say("dhcp on %s", name)
		if err := d.cfg.DHCP(ctx, name); err != nil {
			return fmt.Errorf("dhcp on %s: %w", name, err)
		}
	}
	return nil
}

// check runs check until it passes or the timeout ends.
func (d *driver) check(ctx context.Context, check func(context.Context) error, r *run) error {
	if check == nil {
		return nil
	}
	timeout := d.cfg.CheckTimeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := min(time.Second, timeout/10)
	for attempt := 1; ; attempt++ {
		err := check(ctx)
		if err == nil {
			return nil
		}
		d.log.Debug("network check failed", "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			r.say("check failed %d times in %s", attempt, timeout)
			return fmt.Errorf("check failed for %s: %w", timeout, err)
		case <-time.After(interval):
		}
	}
}

// readFile reads a file that may not exist, following a symlink.
func readFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &File{Missing: true}, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &File{Data: b}, nil
}

// writeFile replaces path atomically (a temporary file in the same
// directory, then rename), or removes it for a Missing file.
func writeFile(path string, f *File) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	if f.Missing {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(f.Data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
