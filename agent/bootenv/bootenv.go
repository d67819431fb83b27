// Package bootenv prepares the discovery image's environment before the
// agent runs as its uinit: it mounts the pseudo file systems u-root's init
// left out, loads the kernel modules the image build listed (with their
// dependencies from modules.dep), brings every link up and runs DHCP on all
// of them at once, configuring the first that answers.
package bootenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults for Options.
const (
	DefaultModulesFile = "/etc/underlay/modules"
	DefaultModulesRoot = "/lib/modules"
	DefaultResolvConf  = "/etc/resolv.conf"
	DefaultVendorClass = "underlay-agent"
	DefaultAttempt     = 8 * time.Second
)

// Sentinel errors.
var (
	ErrNoLinks   = errors.New("no network links")
	ErrNoLease   = errors.New("no dhcp lease")
	ErrBadModule = errors.New("bad module list")
	ErrBadModDep = errors.New("bad modules.dep")
	ErrBadLease  = errors.New("bad dhcp lease")
	ErrNoModule  = errors.New("module not found")
)

// Options configure Prepare. The zero value uses the defaults above.
type Options struct {
	Log *slog.Logger
	// ModulesFile lists the modules to load, one a line, optionally
	// followed by module parameters ("bonding max_bonds=0").
	ModulesFile string
	// ModulesRoot holds <release>/modules.dep and the module files.
	ModulesRoot string
	// Release is the kernel release; empty means uname -r.
	Release    string
	ResolvConf string
	// VendorClass is sent as DHCP option 60.
	VendorClass string
	// Attempt bounds one DHCP exchange on one link; Prepare keeps trying
	// until ctx ends.
	Attempt time.Duration
	// NoRenew skips renewing the lease in the background.
	NoRenew bool
	// Interfaces, when set, are the links to run DHCP on; by default every
	// physical link (netlink type "device") is a candidate.
	Interfaces []string
}

func (o Options) withDefaults() Options {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ModulesFile == "" {
		o.ModulesFile = DefaultModulesFile
	}
	if o.ModulesRoot == "" {
		o.ModulesRoot = DefaultModulesRoot
	}
	if o.ResolvConf == "" {
		o.ResolvConf = DefaultResolvConf
	}
	if o.VendorClass == "" {
		o.VendorClass = DefaultVendorClass
	}
	if o.Attempt <= 0 {
		o.Attempt = DefaultAttempt
	}
	return o
}

// Result says what Prepare did.
type Result struct {
	Mounted []string
	Modules ModuleReport
	// Links are the links Prepare brought up.
	Links []string
	// Net is the configuration taken from the first DHCP answer.
	Net NetConfig
}

// Prepare sets up the discovery environment. Module failures are logged and
// reported in Result, not returned; Prepare fails only when no link gets a
// DHCP lease before ctx ends. When the lease is taken and NoRenew is unset,
// a goroutine renews it until ctx ends.
func Prepare(ctx context.Context, o Options) (*Result, error) {
	o = o.withDefaults()
	log := o.Log
	start := time.Now()
	res := &Result{}

	mounted, err := MountPseudo(log)
	if err != nil {
		return res, err
	}
	res.Mounted = mounted

	rep, err := LoadModules(log, o)
	if err != nil {
		// A missing or unreadable list is worth a line, not a stop: built
		// in drivers may still give us a network.
		log.Error("kernel modules not loaded", "err", err)
	}
	res.Modules = rep
	log.Info("modules loaded", "loaded", len(rep.Loaded), "already", len(rep.Already),
		"builtin", len(rep.Builtin), "missing", rep.Missing, "failed", len(rep.Failed),
		"elapsed", time.Since(start).Round(time.Millisecond))

	links, err := linksUp(log, o.Interfaces)
	if err != nil {
		return res, err
	}
	res.Links = links

	nc, err := dhcpAll(ctx, log, o, links)
	if err != nil {
		return res, fmt.Errorf("dhcp on %v: %w", links, err)
	}
	res.Net = nc
	log.Info("network ready", "interface", nc.Interface, "address", nc.Address.String(),
		"elapsed", time.Since(start).Round(time.Millisecond))
	return res, nil
}
