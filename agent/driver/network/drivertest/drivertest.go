// Package drivertest provides a recording fake of network.Driver for tests
// of code that applies host network configs (the agent's network task).
package drivertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"underlay.dev/agent/driver/network"
	"underlay.dev/pkg/netconf"
)

// Driver records every Apply. The zero value succeeds and reports a change
// unless the same document was applied successfully last time.
type Driver struct {
	mu sync.Mutex
	// Err, when set, is returned by every Apply (after recording it).
	Err error
	// RunCheck makes Apply call check once; a failing check is returned
	// wrapped with network.ErrRolledBack, like the real driver.
	RunCheck bool

	calls   []*netconf.Data
	applied []byte // JSON of the last document applied successfully
}

var _ network.Driver = (*Driver)(nil)

// Apply records d and pretends to apply it.
func (f *Driver) Apply(ctx context.Context, d *netconf.Data, check func(context.Context) error, log io.Writer) (network.Report, error) {
	if log == nil {
		log = io.Discard
	}
	b, err := json.Marshal(d)
	if err != nil {
		return network.Report{}, fmt.Errorf("drivertest: %w", err)
	}
	var cp netconf.Data
	_ = json.Unmarshal(b, &cp)
	f.mu.Lock()
	f.calls = append(f.calls, &cp)
	fail, same := f.Err, string(b) == string(f.applied)
	f.mu.Unlock()
	if fail != nil {
		return network.Report{}, fail
	}
	if same {
		line := "network configuration already in place"
		fmt.Fprintln(log, line)
		return network.Report{Lines: []string{line}}, nil
	}
	var rep network.Report
	for _, l := range d.Summary() {
		rep.Lines = append(rep.Lines, "config: "+l)
		fmt.Fprintln(log, "config: "+l)
	}
	if f.RunCheck && check != nil {
		if err := check(ctx); err != nil {
			rep.Lines = append(rep.Lines, "rolling back: check failed: "+err.Error())
			return rep, fmt.Errorf("check failed: %w: %w", err, network.ErrRolledBack)
		}
	}
	rep.Changed = true
	f.mu.Lock()
	f.applied = b
	f.mu.Unlock()
	return rep, nil
}

// Calls returns copies of the documents passed to Apply, in order.
func (f *Driver) Calls() []*netconf.Data {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*netconf.Data(nil), f.calls...)
}
