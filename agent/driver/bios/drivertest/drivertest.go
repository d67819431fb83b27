// Package drivertest is a recording fake of bios.Driver: a BIOS in memory
// whose staged settings take effect at Reboot, like a BMC's.
package drivertest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"

	"underlay.dev/agent/driver/bios"
	"underlay.dev/pkg/redfish"
)

// Driver is a fake bios.Driver. Set Current to the attributes in effect
// (names not in it are unknown, unless Current is nil, which accepts any
// name); set ApplyErr or RebootErr to make calls fail. Safe for
// concurrent use.
type Driver struct {
	mu        sync.Mutex
	Current   map[string]string
	Pending   map[string]string
	ApplyErr  error
	RebootErr error

	applies []map[string]string
	reboots int
}

var _ bios.Driver = (*Driver)(nil)

// Apply records want and behaves like the Redfish driver.
func (d *Driver) Apply(_ context.Context, want map[string]string, log io.Writer) (bios.Report, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applies = append(d.applies, maps.Clone(want))
	if log == nil {
		log = io.Discard
	}
	if d.ApplyErr != nil {
		return bios.Report{}, d.ApplyErr
	}
	if d.Current != nil {
		var unknown []string
		for name := range want {
			if _, ok := d.Current[name]; !ok {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return bios.Report{}, fmt.Errorf("bios: attributes %s: %w", strings.Join(unknown, ", "), redfish.ErrUnknownAttribute)
		}
	}
	changed := map[string]bios.Change{}
	for name, to := range want {
		if from := d.Current[name]; from != to {
			changed[name] = bios.Change{From: from, To: to}
			if d.Pending == nil {
				d.Pending = map[string]string{}
			}
			d.Pending[name] = to
			fmt.Fprintf(log, "bios: %s: %s -> %s\n", name, from, to)
		}
	}
	if len(changed) == 0 {
		return bios.Report{Applied: true}, nil
	}
	return bios.Report{Changed: changed, RebootNeeded: true}, nil
}

// Reboot records the call and puts the pending settings in effect.
func (d *Driver) Reboot(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reboots++
	if d.RebootErr != nil {
		return d.RebootErr
	}
	if d.Current == nil {
		d.Current = map[string]string{}
	}
	maps.Copy(d.Current, d.Pending)
	d.Pending = nil
	return nil
}

// Applies returns the want of every Apply call, oldest first.
func (d *Driver) Applies() []map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]map[string]string, len(d.applies))
	for i, a := range d.applies {
		out[i] = maps.Clone(a)
	}
	return out
}

// Reboots counts Reboot calls.
func (d *Driver) Reboots() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reboots
}

// Attributes returns the attributes in effect.
func (d *Driver) Attributes() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.Current)
}
