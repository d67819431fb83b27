// Package drivertest has fakes for code that uses underlay.dev/agent/driver/raid:
// an in-memory Controller that records its calls, a Devices map resolver
// and a scripted Exec.
package drivertest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"underlay.dev/agent/driver/raid"
	"underlay.dev/pkg/raidconf"
)

// Controller is an in-memory raid.Controller. Calls are recorded as
// "layout", "create <name> <dev>,<dev>", "delete <device>" and
// "verify <name>". Fail makes a call fail.
type Controller struct {
	mu    sync.Mutex
	name  string
	vols  []raid.Volume
	calls []string
	fail  map[string]error
	next  int
}

// New returns a controller named name holding existing volumes.
func New(name string, existing ...raid.Volume) *Controller {
	c := &Controller{name: name, fail: map[string]error{}, next: 127}
	for _, v := range existing {
		if v.Controller == "" {
			v.Controller = name
		}
		if v.State == "" {
			v.State = "active"
		}
		c.vols = append(c.vols, v)
	}
	return c
}

// Fail makes every later call recorded as call (e.g. "create md1",
// "verify md0", "delete /dev/md127", "layout") fail with err; a create
// call matches on its name alone.
func (c *Controller) Fail(call string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail[call] = err
}

// Calls returns the calls so far.
func (c *Controller) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// Volumes returns the volumes the controller holds now.
func (c *Controller) Volumes() []raid.Volume {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.vols)
}

// SetState changes the state of the volume on device dev.
func (c *Controller) SetState(dev, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.vols {
		if c.vols[i].Device == dev {
			c.vols[i].State = state
		}
	}
}

func (c *Controller) record(call, key string) error {
	c.calls = append(c.calls, call)
	return c.fail[key]
}

// Name returns the controller's name.
func (c *Controller) Name() string { return c.name }

// Layout returns the volumes.
func (c *Controller) Layout(context.Context) ([]raid.Volume, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("layout", "layout"); err != nil {
		return nil, err
	}
	return slices.Clone(c.vols), nil
}

// Create adds a volume /dev/md<N> (the highest free N from 127 down) over
// devices.
func (c *Controller) Create(_ context.Context, v raidconf.Volume, devices []string) (raid.Volume, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record(fmt.Sprintf("create %s %s", v.Name, strings.Join(devices, ",")), "create "+v.Name); err != nil {
		return raid.Volume{}, err
	}
	for _, have := range c.vols {
		for _, m := range have.Members {
			if slices.Contains(devices, m) {
				return raid.Volume{}, fmt.Errorf("fake %s: %s is in use by %s", c.name, m, have.Device)
			}
		}
	}
	for c.inUse(fmt.Sprintf("/dev/md%d", c.next)) {
		c.next--
	}
	lv := raid.Volume{
		Name: v.Name, Level: v.Level, Controller: c.name, UUID: fmt.Sprintf("uuid-%d", c.next),
		State: "active", Members: slices.Clone(devices), SizeBytes: v.SizeBytes,
		Device: fmt.Sprintf("/dev/md%d", c.next),
	}
	c.next--
	c.vols = append(c.vols, lv)
	return lv, nil
}

func (c *Controller) inUse(dev string) bool {
	for _, v := range c.vols {
		if v.Device == dev {
			return true
		}
	}
	return false
}

// Delete removes the volume on v.Device.
func (c *Controller) Delete(_ context.Context, v raid.Volume) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("delete "+v.Device, "delete "+v.Device); err != nil {
		return err
	}
	for i, have := range c.vols {
		if have.Device == v.Device {
			c.vols = slices.Delete(c.vols, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("fake %s: no volume %s", c.name, v.Device)
}

// Verify checks that a volume over devices with v's level exists and is
// in state "active".
func (c *Controller) Verify(_ context.Context, v raidconf.Volume, devices []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("verify "+v.Name, "verify "+v.Name); err != nil {
		return err
	}
	want := slices.Clone(devices)
	sort.Strings(want)
	for _, have := range c.vols {
		got := slices.Clone(have.Members)
		sort.Strings(got)
		if slices.Equal(got, want) && have.Level == v.Level {
			if have.State != "active" {
				return fmt.Errorf("fake %s: %s is %s: %w", c.name, have.Device, have.State, raid.ErrVerify)
			}
			return nil
		}
	}
	return fmt.Errorf("fake %s: no raid %s volume over %v: %w", c.name, v.Level, devices, raid.ErrVerify)
}

// Devices resolves members by name: "vdb" -> Devices["vdb"]. Disk strips
// a partition number ("/dev/vdb1" -> "/dev/vdb", "/dev/nvme0n1p2" ->
// "/dev/nvme0n1").
type Devices map[string]string

// Device returns d[m.Name].
func (d Devices) Device(m raidconf.Member) (string, error) {
	if p, ok := d[m.Name]; ok {
		return p, nil
	}
	return "", fmt.Errorf("fake devices: no disk %s: %w", m.Name, raid.ErrNoDevice)
}

// Disk strips a partition suffix.
func (d Devices) Disk(dev string) string {
	t := strings.TrimRight(dev, "0123456789")
	switch {
	case t == dev:
		return dev
	case strings.Contains(dev, "nvme") || strings.Contains(dev, "mmcblk"):
		if strings.HasSuffix(t, "p") {
			return strings.TrimSuffix(t, "p")
		}
		return dev
	default:
		return t
	}
}

// Exec is a scripted raid.Exec: it records every argv and answers with
// Respond (nil answers empty output).
type Exec struct {
	mu    sync.Mutex
	calls [][]string
	// Respond answers one command.
	Respond func(argv []string) ([]byte, error)
}

// Run is the raid.Exec.
func (e *Exec) Run(_ context.Context, argv []string) ([]byte, error) {
	e.mu.Lock()
	e.calls = append(e.calls, slices.Clone(argv))
	respond := e.Respond
	e.mu.Unlock()
	if respond == nil {
		return nil, nil
	}
	return respond(argv)
}

// Calls returns the commands run so far, each joined with spaces.
func (e *Exec) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.calls) == 0 {
		return nil
	}
	out := make([]string, len(e.calls))
	for i, c := range e.calls {
		out[i] = strings.Join(c, " ")
	}
	return out
}
