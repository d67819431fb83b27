package raid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"underlay.dev/pkg/raidconf"
)

// Defaults for SoftwareConfig.
const (
	DefaultMdadm  = "/sbin/mdadm"
	DefaultMDStat = "/proc/mdstat"
	DefaultSys    = "/sys"
)

// SoftwareConfig configures NewSoftware. The zero value uses the defaults.
type SoftwareConfig struct {
	// Mdadm is the mdadm binary (default /sbin/mdadm).
	Mdadm string
	// MDStat is read for the arrays (default /proc/mdstat).
	MDStat string
	// Sys is sysfs (default /sys), read to tell partitions from disks.
	Sys string
	// Exec runs mdadm (default RunCommand).
	Exec Exec
	// AssumeClean creates arrays with --assume-clean: no initial resync.
	// Members that are not all zeroes then differ in blocks nothing has
	// written yet, which a later md "check" reports as mismatches; meant
	// for tests and throwaway machines. The default is off: the kernel
	// resyncs in the background and the array is usable at once.
	AssumeClean bool
}

// Software is Linux software RAID through mdadm.
type Software struct {
	c SoftwareConfig
}

// NewSoftware returns the software RAID controller.
func NewSoftware(c SoftwareConfig) *Software {
	if c.Mdadm == "" {
		c.Mdadm = DefaultMdadm
	}
	if c.MDStat == "" {
		c.MDStat = DefaultMDStat
	}
	if c.Sys == "" {
		c.Sys = DefaultSys
	}
	if c.Exec == nil {
		c.Exec = RunCommand
	}
	return &Software{c: c}
}

// Name returns "software".
func (s *Software) Name() string { return raidconf.Software }

func (s *Software) mdadm(ctx context.Context, args ...string) ([]byte, error) {
	return s.c.Exec(ctx, append([]string{s.c.Mdadm}, args...))
}

// Layout lists the arrays of /proc/mdstat, completed by
// `mdadm --detail --export` (level, UUID, name, member paths). An inactive
// array mdadm cannot detail is listed as mdstat shows it.
func (s *Software) Layout(ctx context.Context) ([]Volume, error) {
	b, err := os.ReadFile(s.c.MDStat)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // no md driver loaded: no arrays
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.c.MDStat, err)
	}
	arrays, err := parseMDStat(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.c.MDStat, err)
	}
	var out []Volume
	for _, a := range arrays {
		v := Volume{
			Name:       a.Name,
			Level:      level(a.Level),
			Controller: raidconf.Software,
			State:      strings.Join(a.State, ","),
			SizeBytes:  a.SizeBytes,
			Device:     "/dev/" + a.Name,
		}
		for _, m := range a.Members {
			v.Members = append(v.Members, "/dev/"+m)
		}
		det, err := s.mdadm(ctx, "--detail", "--export", v.Device)
		if err == nil {
			var d mdDetail
			d, err = parseDetailExport(det)
			if err == nil {
				v.Level, v.UUID = level(d.Level), d.UUID
				if d.Name != "" {
					v.Name = d.Name
				}
				if len(d.Members) > 0 {
					v.Members = d.Members
				}
			}
		}
		if err != nil && a.State[0] != "inactive" {
			return nil, fmt.Errorf("detail of %s: %w", v.Device, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// level is the Ironic spelling of an md level when raidconf knows it.
func level(md string) string {
	if l, err := raidconf.NormalizeLevel(md); err == nil {
		return l
	}
	return md
}

// createArgs is the mdadm command line that creates v over devices.
func (s *Software) createArgs(v raidconf.Volume, devices []string) ([]string, error) {
	md := raidconf.MDLevel(v.Level)
	if md == "" {
		return nil, fmt.Errorf("volume %s: raid level %q: %w", v.Name, v.Level, ErrBadConfig)
	}
	if v.Name == "" || strings.ContainsAny(v.Name, "/ \t\n") {
		return nil, fmt.Errorf("volume name %q: %w", v.Name, ErrBadConfig)
	}
	args := []string{"--create", "/dev/md/" + v.Name, "--run", "--metadata=1.2",
		// Recorded as "any:<name>", the array keeps its name on whatever
		// host assembles it (the installed OS's hostname is not ours).
		"--homehost=any",
		"--level=" + md, "--raid-devices=" + strconv.Itoa(len(devices)), "--name=" + v.Name}
	if v.SizeBytes > 0 && v.Level == "0" {
		// mdadm accepts --size for RAID 0 and ignores it.
		return nil, fmt.Errorf("volume %s: a size for software RAID 0 is not supported (it spans its members whole): %w", v.Name, ErrBadConfig)
	}
	if v.SizeBytes > 0 {
		args = append(args, fmt.Sprintf("--size=%dM", perDeviceMiB(v.Level, len(devices), v.SizeBytes)))
	}
	if s.c.AssumeClean {
		args = append(args, "--assume-clean")
	}
	return append(args, devices...), nil
}

// perDeviceMiB is the space each of n members gives an array of size
// bytes, rounded up to MiB (mdadm's --size is per device).
func perDeviceMiB(lvl string, n int, size uint64) uint64 {
	data := uint64(n)
	switch lvl {
	case "1":
		data = 1
	case "5":
		data = uint64(n - 1)
	case "6":
		data = uint64(n - 2)
	case "1+0":
		data = uint64(n / 2)
	}
	if data == 0 {
		data = 1
	}
	per := (size + data - 1) / data
	return (per + 1<<20 - 1) >> 20
}

// Create zeroes the members' md superblocks and creates v with
// `mdadm --create /dev/md/<name> --run --metadata=1.2 --homehost=any
// --level=raidN --raid-devices=N --name=<name> [--size=<per device>M]`.
func (s *Software) Create(ctx context.Context, v raidconf.Volume, devices []string) (Volume, error) {
	args, err := s.createArgs(v, devices)
	if err != nil {
		return Volume{}, err
	}
	for _, d := range devices {
		if err := s.zeroSuperblock(ctx, d); err != nil {
			return Volume{}, err
		}
	}
	if _, err := s.mdadm(ctx, args...); err != nil {
		return Volume{}, fmt.Errorf("create %s: %w", v.Name, err)
	}
	live, err := s.find(ctx, devices)
	if err != nil {
		return Volume{}, fmt.Errorf("create %s: %w", v.Name, err)
	}
	return live, nil
}

// find returns the array whose members are exactly devices.
func (s *Software) find(ctx context.Context, devices []string) (Volume, error) {
	vols, err := s.Layout(ctx)
	if err != nil {
		return Volume{}, err
	}
	for _, lv := range vols {
		if sameSet(lv.Members, devices) {
			return lv, nil
		}
	}
	return Volume{}, fmt.Errorf("no array over %s: %w", strings.Join(devices, ", "), ErrVerify)
}

// zeroSuperblock removes an md superblock from dev; a device without one
// is fine.
func (s *Software) zeroSuperblock(ctx context.Context, dev string) error {
	_, err := s.mdadm(ctx, "--zero-superblock", "--force", dev)
	var ce *CommandError
	if errors.As(err, &ce) && strings.Contains(ce.Stderr, "Unrecognised md component device") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("zero superblock of %s: %w", dev, err)
	}
	return nil
}

// Delete stops the array and zeroes its members' superblocks.
func (s *Software) Delete(ctx context.Context, v Volume) error {
	dev := v.Device
	if dev == "" {
		dev = "/dev/md/" + v.Name
	}
	if _, err := s.mdadm(ctx, "--stop", dev); err != nil {
		return fmt.Errorf("stop %s: %w", dev, err)
	}
	for _, m := range v.Members {
		if err := s.zeroSuperblock(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// healthyState reports whether an mdstat state is fit to use: active
// (also read-only until first written, or resyncing), never degraded or
// inactive.
func healthyState(state string) bool {
	parts := strings.Split(state, ",")
	if parts[0] != "active" {
		return false
	}
	for _, p := range parts[1:] {
		switch p {
		case "degraded", "reshape":
			return false
		}
	}
	return true
}

// Verify checks that an array over exactly devices exists with v's level,
// holds at least v.SizeBytes, and is active and not degraded (a resync in
// progress is fine).
func (s *Software) Verify(ctx context.Context, v raidconf.Volume, devices []string) error {
	live, err := s.find(ctx, devices)
	if err != nil {
		return fmt.Errorf("verify %s: %w", v.Name, err)
	}
	return checkVolume(v, live, healthyState)
}

// checkVolume compares a live volume with the wanted one.
func checkVolume(v raidconf.Volume, live Volume, healthy func(string) bool) error {
	switch {
	case live.Level != v.Level:
		return fmt.Errorf("verify %s: %s is raid level %q, want %q: %w", v.Name, live.Device, live.Level, v.Level, ErrVerify)
	case !healthy(live.State):
		return fmt.Errorf("verify %s: %s is %s: %w", v.Name, describe(live), live.State, ErrVerify)
	case v.SizeBytes > 0 && live.SizeBytes > 0 && live.SizeBytes < v.SizeBytes:
		return fmt.Errorf("verify %s: %s holds %d bytes (%s), want %d: %w", v.Name, describe(live),
			live.SizeBytes, raidconf.FormatBytes(live.SizeBytes), v.SizeBytes, ErrVerify)
	}
	return nil
}

// StopArrays stops every array that has a member on one of devices (whole
// disks or partitions of them) and zeroes the md superblocks of those
// arrays' members and of devices themselves, so that nothing reassembles
// them. It is the RAID part of wiping disks; partitions are found through
// sysfs (/sys/class/block).
func (s *Software) StopArrays(ctx context.Context, devices []string) error {
	vols, err := s.Layout(ctx)
	if err != nil {
		return err
	}
	wanted := map[string]bool{}
	for _, d := range devices {
		wanted[wholeDisk(s.c.Sys, d)] = true
	}
	var errs []error
	for _, v := range vols {
		hit := false
		for _, m := range v.Members {
			hit = hit || wanted[wholeDisk(s.c.Sys, m)]
		}
		if !hit {
			continue
		}
		if err := s.Delete(ctx, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", describe(v), err))
		}
	}
	for _, d := range devices {
		if err := s.zeroSuperblock(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// wholeDisk returns the disk a partition belongs to ("/dev/vdb1" ->
// "/dev/vdb") by sysfs, or dev when it is not a partition.
func wholeDisk(sys, dev string) string {
	name := filepath.Base(dev)
	link, err := os.Readlink(filepath.Join(sys, "class", "block", name))
	if err != nil {
		return dev
	}
	if _, err := os.Stat(filepath.Join(sys, "class", "block", name, "partition")); err != nil {
		return dev
	}
	return "/dev/" + filepath.Base(filepath.Dir(link))
}
