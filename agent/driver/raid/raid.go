package raid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"underlay.dev/pkg/raidconf"
)

// Sentinel errors.
var (
	// ErrCommand marks a command that failed (see CommandError).
	ErrCommand = errors.New("command failed")
	// ErrNoController marks a volume whose controller is not configured.
	ErrNoController = errors.New("no such raid controller")
	// ErrNoDevice marks a member the live system has no disk for.
	ErrNoDevice = errors.New("no such disk")
	// ErrConflict marks a layout Apply refuses to make: an array in the
	// way that is not on the wanted disks, a disk wanted twice.
	ErrConflict = errors.New("raid layout conflict")
	// ErrVerify marks a volume that is not what was asked for, or not
	// healthy.
	ErrVerify = errors.New("raid volume verification failed")
	// ErrBadConfig marks a malformed controller configuration or controller
	// output.
	ErrBadConfig = errors.New("bad raid controller configuration")
)

// Volume is an array as a controller reports it.
type Volume struct {
	// Name is the array's name (md name or virtual disk name).
	Name string
	// Level is Ironic's spelling ("1", "1+0") when the level is one
	// raidconf knows, else what the controller said ("linear").
	Level      string
	Controller string
	// UUID is the md UUID, or the controller's ID for the volume.
	UUID string
	// State is the controller's state, comma-separated ("active,resync").
	State string
	// Members are device paths (software) or drive IDs (hardware), in
	// slot order.
	Members   []string
	SizeBytes uint64
	// Device is the block device the volume appears as ("/dev/md127").
	Device string
}

// Controller is one RAID controller.
type Controller interface {
	// Name is the controller's name in raidconf ("software", "perc").
	Name() string
	// Layout lists the controller's arrays.
	Layout(ctx context.Context) ([]Volume, error)
	// Create builds v over devices and returns it as Layout shows it.
	Create(ctx context.Context, v raidconf.Volume, devices []string) (Volume, error)
	// Delete takes v apart, leaving its members blank.
	Delete(ctx context.Context, v Volume) error
	// Verify checks that v is in place over devices and healthy; an error
	// wraps ErrVerify.
	Verify(ctx context.Context, v raidconf.Volume, devices []string) error
}

// DeviceResolver finds disks on the live system.
type DeviceResolver interface {
	// Device returns the device path ("/dev/vdb") of the whole disk m
	// describes; the error wraps ErrNoDevice.
	Device(m raidconf.Member) (string, error)
	// Disk returns the whole disk holding dev, a disk or partition path
	// ("/dev/vdb1" -> "/dev/vdb"), or dev itself.
	Disk(dev string) string
}

// Report says what Apply did. Names are volume names as wanted (created,
// unchanged) or as the controller reported them (deleted).
type Report struct {
	Created   []string
	Deleted   []string
	Unchanged []string
	// Lines are the log lines Apply wrote, in order.
	Lines []string
}

// planned is one wanted volume with its controller and devices.
type planned struct {
	want    raidconf.Volume
	ctrl    Controller
	devices []string
	inPlace *Volume
}

// Apply makes the machine's arrays match want; see the package
// documentation. Everything that can be checked before touching a disk is:
// controllers exist, every member resolves to a distinct disk, no foreign
// array has a wanted name, and the volumes already in place are healthy.
// Then conflicting arrays on the wanted disks are deleted, missing volumes
// are created and every created volume is verified. When creating or
// verifying fails, the volumes this run created are deleted again and the
// error says so; deleted arrays are not brought back.
func Apply(ctx context.Context, ctrls map[string]Controller, want *raidconf.Resolved, devs DeviceResolver, log io.Writer) (Report, error) {
	var rep Report
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		rep.Lines = append(rep.Lines, line)
		if log != nil {
			fmt.Fprintln(log, line)
		}
	}
	if want == nil || len(want.Volumes) == 0 {
		say("raid: nothing to do")
		return rep, nil
	}

	// Controllers and devices.
	plan := make([]*planned, 0, len(want.Volumes))
	owner := map[string]string{} // controller + disk -> volume name
	for _, v := range want.Volumes {
		ctrl, ok := ctrls[v.Controller]
		if !ok {
			return rep, fmt.Errorf("volume %s: controller %q is not configured here (have %s): %w",
				v.Name, v.Controller, controllerNames(ctrls), ErrNoController)
		}
		if err := v.Check(); err != nil {
			return rep, err
		}
		p := &planned{want: v, ctrl: ctrl}
		for _, m := range v.Members {
			dev := m.Name
			if v.Controller == raidconf.Software {
				d, err := devs.Device(m)
				if err != nil {
					return rep, fmt.Errorf("volume %s: member %s: %w", v.Name, m.Name, err)
				}
				dev = d
			}
			key := v.Controller + "\x00" + diskOf(devs, v.Controller, dev)
			if other, ok := owner[key]; ok {
				return rep, fmt.Errorf("volume %s: %s is also a member of %s: %w", v.Name, dev, other, ErrConflict)
			}
			owner[key] = v.Name
			p.devices = append(p.devices, dev)
		}
		if len(p.devices) == 0 {
			return rep, fmt.Errorf("volume %s: no members: %w", v.Name, ErrConflict)
		}
		plan = append(plan, p)
	}

	// What is there.
	layouts := map[string][]Volume{}
	for _, p := range plan {
		name := p.want.Controller
		if _, ok := layouts[name]; ok {
			continue
		}
		vols, err := p.ctrl.Layout(ctx)
		if err != nil {
			return rep, fmt.Errorf("layout of controller %s: %w", name, err)
		}
		for i := range vols {
			if vols[i].Controller == "" {
				vols[i].Controller = name
			}
		}
		layouts[name] = vols
	}

	// In place, or in the way.
	type conflict struct {
		vol  Volume
		ctrl Controller
		of   string // the wanted volume it is in the way of
	}
	var conflicts []conflict
	inConflict := map[string]bool{}
	for _, p := range plan {
		live := layouts[p.want.Controller]
		for i := range live {
			if sameSet(live[i].Members, p.devices) && live[i].Level == p.want.Level {
				p.inPlace = &live[i]
				break
			}
		}
		for _, lv := range live {
			id := liveID(lv)
			if p.inPlace != nil && id == liveID(*p.inPlace) || inConflict[id] {
				continue
			}
			if overlaps(devs, p.want.Controller, lv.Members, p.devices) {
				inConflict[id] = true
				conflicts = append(conflicts, conflict{vol: lv, ctrl: p.ctrl, of: p.want.Name})
			}
		}
	}
	// A foreign array with a wanted name would make creating it fail.
	for _, p := range plan {
		for _, lv := range layouts[p.want.Controller] {
			id := liveID(lv)
			if lv.Name != p.want.Name || inConflict[id] || p.inPlace != nil && id == liveID(*p.inPlace) {
				continue
			}
			return rep, fmt.Errorf("volume %s: an array named %s already exists over %s, outside this layout (wipe it first): %w",
				p.want.Name, lv.Name, strings.Join(lv.Members, ", "), ErrConflict)
		}
	}
	// Volumes in place must be healthy before anything is touched.
	for _, p := range plan {
		if p.inPlace == nil {
			continue
		}
		if err := p.ctrl.Verify(ctx, p.want, p.devices); err != nil {
			return rep, fmt.Errorf("volume %s is in place as %s but: %w", p.want.Name, describe(*p.inPlace), err)
		}
		say("%s: in place as %s", p.want.Name, describe(*p.inPlace))
		rep.Unchanged = append(rep.Unchanged, p.want.Name)
	}

	// Out of the way.
	for _, c := range conflicts {
		if err := c.ctrl.Delete(ctx, c.vol); err != nil {
			return rep, fmt.Errorf("delete %s (in the way of %s; deleted before it: %s): %w",
				describe(c.vol), c.of, listOrNone(rep.Deleted), err)
		}
		say("deleted %s: in the way of %s", describe(c.vol), c.of)
		rep.Deleted = append(rep.Deleted, c.vol.Name)
	}

	// Build what is missing.
	type made struct {
		ctrl Controller
		vol  Volume
		name string
	}
	var created []made
	rollback := func(cause error, step string) error {
		var undone, failed []string
		for i := len(created) - 1; i >= 0; i-- {
			c := created[i]
			if err := c.ctrl.Delete(ctx, c.vol); err != nil {
				failed = append(failed, fmt.Sprintf("%s (%v)", c.name, err))
				say("rollback: could not delete %s: %v", c.name, err)
				continue
			}
			undone = append(undone, c.name)
			say("rollback: deleted %s", c.name)
		}
		rep.Created = nil
		msg := step + " (rolled back " + listOrNone(undone)
		if len(failed) > 0 {
			msg += "; rollback FAILED for " + strings.Join(failed, ", ")
		}
		return fmt.Errorf("%s): %w", msg, cause)
	}
	for _, p := range plan {
		if p.inPlace != nil {
			continue
		}
		vol, err := p.ctrl.Create(ctx, p.want, p.devices)
		if err != nil {
			return rep, rollback(err, "create "+p.want.Name)
		}
		created = append(created, made{ctrl: p.ctrl, vol: vol, name: p.want.Name})
		rep.Created = append(rep.Created, p.want.Name)
		say("%s: created %s", p.want.Name, describe(vol))
		if err := p.ctrl.Verify(ctx, p.want, p.devices); err != nil {
			return rep, rollback(err, "verify "+p.want.Name)
		}
		say("%s: verified", p.want.Name)
	}
	return rep, nil
}

// describe is "raid1 md127 (root) over /dev/vdb, /dev/vdc".
func describe(v Volume) string {
	level := raidconf.MDLevel(v.Level)
	if level == "" {
		level = v.Level
	}
	id := v.Device
	if id == "" {
		id = v.UUID
	}
	name := v.Name
	if id != "" && id != v.Name {
		name = fmt.Sprintf("%s (%s)", id, v.Name)
	}
	return fmt.Sprintf("%s %s over %s", level, name, strings.Join(v.Members, ", "))
}

func liveID(v Volume) string {
	return v.Controller + "\x00" + v.Device + "\x00" + v.UUID + "\x00" + v.Name
}

// diskOf is the whole disk of a software RAID device, or dev.
func diskOf(devs DeviceResolver, controller, dev string) string {
	if controller == raidconf.Software && devs != nil {
		return devs.Disk(dev)
	}
	return dev
}

// overlaps reports whether any live member sits on a wanted disk.
func overlaps(devs DeviceResolver, controller string, live, wanted []string) bool {
	for _, m := range live {
		d := diskOf(devs, controller, m)
		for _, w := range wanted {
			if d == diskOf(devs, controller, w) {
				return true
			}
		}
	}
	return false
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	sort.Strings(x)
	sort.Strings(y)
	return slices.Equal(x, y)
}

func controllerNames(ctrls map[string]Controller) string {
	names := make([]string, 0, len(ctrls))
	for n := range ctrls {
		names = append(names, n)
	}
	sort.Strings(names)
	return listOrNone(names)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
