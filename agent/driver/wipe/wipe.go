package wipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"underlay.dev/agent/internal/errlist"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Errors of the package.
var (
	ErrNotBlockDevice = errors.New("not a block device")
	ErrNotWholeDisk   = errors.New("not a whole disk")
	ErrMountInfo      = errors.New("malformed mountinfo")
	ErrInUse          = errors.New("device is in use")
)

// Sizes of the zeroed regions.
const (
	diskHead = 1 << 20
	diskTail = 1 << 20
	partHead = 1 << 20
	partTail = 64 << 10
	// md090Align is the alignment of an md 0.90 superblock: the last
	// aligned 64 KiB block of the device.
	md090Align = 64 << 10
)

// Config says which disks to wipe and where the system describes them.
type Config struct {
	SysBlock  string // default "/sys/block"
	DevDir    string // default "/dev"
	MountInfo string // default "/proc/self/mountinfo"
	Swaps     string // default "/proc/swaps"
	// Devices, when set, are exactly the device paths to wipe. Otherwise
	// every whole disk in SysBlock is wiped except loop, ram, zram, sr, fd,
	// md, dm-, nbd devices; removable, read-only and empty (size 0) disks
	// are skipped and reported.
	Devices []string
	// Stop, when set, is called with the devices about to be wiped, to stop
	// md arrays that use them (the RAID driver provides it).
	Stop   func(ctx context.Context, devices []string) error
	Logger *slog.Logger
}

// DiskReport says what happened to one disk.
type DiskReport struct {
	Device string
	Wiped  bool
	// Skipped is why the disk was left alone, e.g. "holds mounted
	// filesystem / (vda2)".
	Skipped string
	// Zeroed are the regions that were zeroed, in order, human-readable.
	Zeroed []string
	// Error is why wiping failed (Zeroed says how far it got).
	Error string
}

func (c *Config) defaults() {
	if c.SysBlock == "" {
		c.SysBlock = "/sys/block"
	}
	if c.DevDir == "" {
		c.DevDir = "/dev"
	}
	if c.MountInfo == "" {
		c.MountInfo = "/proc/self/mountinfo"
	}
	if c.Swaps == "" {
		c.Swaps = "/proc/swaps"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// target is a disk and why it is skipped, if it is.
type target struct {
	disk *disk
	skip string
}

// survey finds the disks and decides which are skipped.
func (c *Config) survey() ([]target, error) {
	fs := sysfs{root: c.SysBlock}
	var disks []*disk
	explicit := len(c.Devices) > 0
	if explicit {
		seen := map[string]bool{}
		for _, path := range c.Devices {
			d, err := fs.resolve(path)
			if err != nil {
				return nil, err
			}
			if seen[d.name] {
				continue
			}
			seen[d.name] = true
			disks = append(disks, d)
		}
	} else {
		names, err := fs.whole()
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			d, err := fs.disk(name, filepath.Join(c.DevDir, name))
			if err != nil {
				return nil, err
			}
			disks = append(disks, d)
		}
	}
	data, err := os.ReadFile(c.MountInfo)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	mounts, err := parseMountInfo(data)
	if err != nil {
		return nil, err
	}
	data, err = readOptional(c.Swaps)
	if err != nil {
		return nil, fmt.Errorf("read swaps: %w", err)
	}
	swaps := parseSwaps(data)
	targets := make([]target, len(disks))
	for i, d := range disks {
		targets[i].disk = d
		switch why := inUse(d, mounts, swaps, c.DevDir); {
		case why != "":
			targets[i].skip = why
		case explicit:
		case d.removable:
			targets[i].skip = "removable device"
		case d.readOnly:
			targets[i].skip = "read-only device"
		case d.size == 0:
			targets[i].skip = "no medium (size 0)"
		}
	}
	return targets, nil
}

// Wipe zeroes the signature regions of the configured disks, writing what
// it does to log, and returns a report per disk. It goes on with the next
// disk when one fails; the error then names every failed device.
func Wipe(ctx context.Context, cfg Config, log io.Writer) ([]DiskReport, error) {
	cfg.defaults()
	if log == nil {
		log = io.Discard
	}
	targets, err := cfg.survey()
	if err != nil {
		return nil, err
	}
	reports := make([]DiskReport, len(targets))
	var todo []int
	var paths []string
	for i, t := range targets {
		reports[i].Device = t.disk.path
		if t.skip != "" {
			reports[i].Skipped = t.skip
			fmt.Fprintf(log, "%s: skipped: %s\n", t.disk.path, t.skip)
			cfg.Logger.Info("disk skipped", "device", t.disk.path, "reason", t.skip)
			continue
		}
		todo = append(todo, i)
		paths = append(paths, t.disk.path)
	}
	if len(todo) == 0 {
		fmt.Fprintln(log, "no disk to wipe")
		return reports, nil
	}
	if cfg.Stop != nil {
		if err := cfg.Stop(ctx, paths); err != nil {
			return reports, fmt.Errorf("stop md arrays on %s: %w", strings.Join(paths, ", "), err)
		}
	}
	var errs []error
	for _, i := range todo {
		d := targets[i].disk
		if err := ctx.Err(); err != nil {
			reports[i].Error = "not wiped: " + err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", d.path, err))
			continue
		}
		zeroed, err := wipeDisk(ctx, d, log)
		reports[i].Zeroed = zeroed
		if err != nil {
			reports[i].Error = err.Error()
			fmt.Fprintf(log, "%s: failed: %v\n", d.path, err)
			cfg.Logger.Warn("wipe failed", "device", d.path, "error", err)
			errs = append(errs, err)
			continue
		}
		reports[i].Wiped = true
		cfg.Logger.Info("disk wiped", "device", d.path, "regions", len(zeroed))
	}
	return reports, errlist.Join(errs)
}

// region is a byte range to zero.
type region struct {
	what   string
	offset uint64
	length uint64
}

func (r region) String() string {
	return fmt.Sprintf("%s (offset %d)", r.what, r.offset)
}

// regions plans what to zero on d, a disk of size bytes: its head and
// tail, and each partition's head and tail, clipped to the partition and
// the disk. A partition's tail is its last 64 KiB, extended to the start of
// the last 64 KiB-aligned block when that starts earlier: an md 0.90
// superblock sits there.
func regions(d *disk, size uint64) []region {
	var rs []region
	add := func(name, which string, off, end uint64) {
		end = min(end, size)
		if off >= end {
			return
		}
		rs = append(rs, region{what: fmt.Sprintf("%s %s of %s", which, human(end-off), name), offset: off, length: end - off})
	}
	add(d.name, "first", 0, min(diskHead, size))
	add(d.name, "last", size-min(diskTail, size), size)
	for _, p := range d.parts {
		end := p.start + p.size
		add(p.name, "first", p.start, p.start+min(partHead, p.size))
		tail := end - min(partTail, p.size)
		if aligned := p.size &^ (md090Align - 1); aligned >= md090Align {
			tail = min(tail, p.start+aligned-md090Align)
		}
		add(p.name, "last", tail, end)
	}
	return rs
}

func human(n uint64) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// wipeDisk zeroes the regions of d, syncs and has the kernel re-read the
// (now empty) partition table.
func wipeDisk(ctx context.Context, d *disk, log io.Writer) ([]string, error) {
	// O_EXCL fails while a filesystem, md or device-mapper holds the disk
	// or one of its partitions: a last guard besides the mount check.
	f, err := os.OpenFile(d.path, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("%s: open: %w (held by a filesystem, md array or device mapper)", d.path, ErrInUse)
		}
		return nil, fmt.Errorf("%s: open: %w", d.path, err)
	}
	defer f.Close()
	size, err := deviceSize(f)
	if err != nil {
		return nil, fmt.Errorf("%s: BLKGETSIZE64: %w", d.path, err)
	}
	var zeroed []string
	zeros := make([]byte, 1<<20)
	for _, r := range regions(d, size) {
		for done := uint64(0); done < r.length; {
			if err := ctx.Err(); err != nil {
				return zeroed, fmt.Errorf("%s: %w", d.path, err)
			}
			n := min(uint64(len(zeros)), r.length-done)
			if _, err := f.WriteAt(zeros[:n], int64(r.offset+done)); err != nil {
				return zeroed, fmt.Errorf("%s: zero %s: %w", d.path, r, err)
			}
			done += n
		}
		zeroed = append(zeroed, r.String())
		fmt.Fprintf(log, "%s: zeroed %s\n", d.path, r)
	}
	if err := f.Sync(); err != nil {
		return zeroed, fmt.Errorf("%s: fsync: %w", d.path, err)
	}
	switch err := rereadPartitions(f); {
	case err == nil:
		fmt.Fprintf(log, "%s: partition table re-read\n", d.path)
	case errors.Is(err, unix.EINVAL):
		// No partition support (a loop device without partscan).
	default:
		return zeroed, fmt.Errorf("%s: re-read partition table (BLKRRPART): %w", d.path, err)
	}
	return zeroed, nil
}

func deviceSize(f *os.File) (uint64, error) {
	var size uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
		return 0, e
	}
	return size, nil
}

func rereadPartitions(f *os.File) error {
	return unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0)
}
