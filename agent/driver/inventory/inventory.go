package inventory

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/jaypipes/ghw"
	"github.com/jaypipes/pcidb"
	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

var (
	// ErrNoFacts is returned by Collect when no section could be collected.
	ErrNoFacts = errors.New("no hardware facts collected")
	// ErrMalformed is returned when a kernel file does not parse.
	ErrMalformed = errors.New("malformed input")
	// ErrRoot is returned when Options.Root does not hold /sys or /proc.
	ErrRoot = errors.New("root holds neither sys nor proc")
)

// Options configure Collect.
type Options struct {
	// Root is a chroot-like directory holding a snapshot of /sys, /proc, /dev
	// and /run/udev (ghw's GHW_CHROOT semantics); "" or "/" means the live
	// system. With a non-live Root, netlink and ioctls are not used;
	// everything comes from files under Root.
	Root string
	// Log receives a warning for every section that could not be collected.
	// Nil discards.
	Log *slog.Logger
}

// collector carries the state shared by the section collectors.
type collector struct {
	root string
	live bool
	log  *slog.Logger
	db   *pcidb.PCIDB // loaded on first use
}

func newCollector(o Options) *collector {
	c := &collector{root: filepath.Clean(o.Root), log: o.Log}
	if o.Root == "" {
		c.root = "/"
	}
	c.live = c.root == "/"
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// path returns an absolute path under the root.
func (c *collector) path(elem ...string) string {
	return filepath.Join(append([]string{c.root}, elem...)...)
}

// read returns the trimmed content of a file under the root, or "".
func (c *collector) read(elem ...string) string {
	b, err := os.ReadFile(c.path(elem...))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ghwArgs are the ghw options for this root: never fetch anything from the
// network, and call no external tool on a snapshot. ghw's own messages are
// expected noise (a VM has no /sys/class/drm), so they reach the logger only
// when it is at debug level.
func (c *collector) ghwArgs(extra ...any) []any {
	ghwLog := slog.New(slog.DiscardHandler)
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		ghwLog = c.log.With("component", "ghw")
	}
	args := []any{ghw.WithChroot(c.root), ghw.WithLogger(ghwLog)}
	if !c.live {
		args = append(args, ghw.WithDisableTools())
	}
	return append(args, extra...)
}

// section is one independent part of the inventory.
type section struct {
	name string
	fn   func(ctx context.Context, inv *underlayv1.Inventory) error
}

// Collect gathers the inventory of the live system or of the snapshot at
// o.Root. A section that fails is logged and left empty; only when every
// section fails is an error returned.
func Collect(ctx context.Context, o Options) (*underlayv1.Inventory, error) {
	c := newCollector(o)
	_, errSys := os.Stat(c.path("sys"))
	_, errProc := os.Stat(c.path("proc"))
	if errSys != nil && errProc != nil {
		return nil, fmt.Errorf("collect from %s: %w", c.root, ErrRoot)
	}
	inv := &underlayv1.Inventory{Collected: timestamppb.Now(), Arch: runtime.GOARCH}
	sections := []section{
		{"system", c.system},
		{"cpu", c.cpu},
		{"memory", c.memory},
		{"dmi", c.dmi},
		{"block", c.block},
		{"nic", c.nics},
		{"pci", c.pci},
		{"gpu", c.gpu},
		{"md", c.mdArrays},
		{"virtualization", c.virtualization},
	}
	ok := 0
	for _, s := range sections {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("collect %s: %w", s.name, err)
		}
		if err := c.run(ctx, s, inv); err != nil {
			c.log.Warn("inventory section failed", "section", s.name, "root", c.root, "error", err)
			continue
		}
		ok++
	}
	if ok == 0 {
		return nil, fmt.Errorf("collect from %s: %w", c.root, ErrNoFacts)
	}
	return inv, nil
}

// run calls one section, turning a panic inside a hardware library into an
// error so that one bad sysfs file cannot take the agent down.
func (c *collector) run(ctx context.Context, s section, inv *underlayv1.Inventory) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in %s: %v: %w", s.name, r, ErrMalformed)
		}
	}()
	return s.fn(ctx, inv)
}

// system fills hostname, kernel, OS and boot mode.
func (c *collector) system(_ context.Context, inv *underlayv1.Inventory) error {
	inv.Hostname = c.read("proc", "sys", "kernel", "hostname")
	inv.Kernel = c.read("proc", "sys", "kernel", "osrelease")
	inv.Os = c.osName()
	inv.BootMode = "legacy"
	if _, err := os.Stat(c.path("sys", "firmware", "efi")); err == nil {
		inv.BootMode = "uefi"
	}
	if inv.Hostname == "" && inv.Kernel == "" {
		return fmt.Errorf("read hostname and kernel release: %w", os.ErrNotExist)
	}
	return nil
}

// osName returns PRETTY_NAME from os-release, else "linux".
func (c *collector) osName() string {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		f, err := os.Open(c.path(p))
		if err != nil {
			continue
		}
		kv := parseKeyValues(f, "=")
		f.Close()
		if name := strings.Trim(kv["PRETTY_NAME"], `"'`); name != "" {
			return name
		}
	}
	return "linux"
}

// parseKeyValues reads "key<sep>value" lines.
func parseKeyValues(r io.Reader, sep string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), sep)
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// memInfoBytes returns a /proc/meminfo value ("MemTotal: 123 kB") in bytes.
func memInfoBytes(r io.Reader, key string) (uint64, error) {
	v, ok := parseKeyValues(r, ":")[key]
	if !ok {
		return 0, fmt.Errorf("meminfo %s: %w", key, os.ErrNotExist)
	}
	num, unit, _ := strings.Cut(v, " ")
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("meminfo %s %q: %w", key, v, ErrMalformed)
	}
	if strings.EqualFold(strings.TrimSpace(unit), "kB") {
		n *= 1024
	}
	return n, nil
}

// mdArrays parses Root/proc/mdstat. A kernel without md has no mdstat, which
// is not an error.
func (c *collector) mdArrays(_ context.Context, inv *underlayv1.Inventory) error {
	f, err := os.Open(c.path("proc", "mdstat"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open mdstat: %w", err)
	}
	defer f.Close()
	arrays, err := ParseMDStat(f)
	if err != nil {
		return err
	}
	for _, a := range arrays {
		a.Uuid = c.mdUUID(a.Name)
	}
	inv.MdArrays = arrays
	return nil
}

// mdUUID finds the array UUID in the udev database (MD_UUID), when there is one.
func (c *collector) mdUUID(name string) string {
	dev := c.read("sys", "block", name, "dev")
	if dev == "" {
		return ""
	}
	return udevProperty(c.path("run", "udev", "data", "b"+dev), "MD_UUID")
}

// udevProperty reads one "E:KEY=value" property of a udev database file.
func udevProperty(file, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "E:"+key+"="); ok {
			return v
		}
	}
	return ""
}
