package redfish

import (
	"context"
	"sync"
)

// MemoryPower is a PowerDriver with nothing behind it: a power state in
// memory. The zero value is a machine that is off.
type MemoryPower struct {
	mu    sync.Mutex
	on    bool
	boots []string
}

// NewMemoryPower returns a MemoryPower that is on or off.
func NewMemoryPower(on bool) *MemoryPower { return &MemoryPower{on: on} }

// PowerOn switches on, booting bootOnce.
func (m *MemoryPower) PowerOn(_ context.Context, bootOnce string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = true
	m.boots = append(m.boots, bootOnce)
	return nil
}

// PowerOff switches off.
func (m *MemoryPower) PowerOff(context.Context, bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = false
	return nil
}

// Reset restarts, booting bootOnce.
func (m *MemoryPower) Reset(_ context.Context, bootOnce string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = true
	m.boots = append(m.boots, bootOnce)
	return nil
}

// State is "On" or "Off".
func (m *MemoryPower) State(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.on {
		return "On", nil
	}
	return "Off", nil
}

// Boots returns the boot device of every power-on and reset ("" for the
// normal boot order), oldest first.
func (m *MemoryPower) Boots() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.boots...)
}

// DefaultAttributes is a small, realistic BIOS attribute registry (names
// after a common server vendor's) for demos and tests.
func DefaultAttributes() []Attribute {
	return []Attribute{
		{Name: "BootMode", Type: TypeEnumeration, Value: "Uefi", Allowed: []string{"Bios", "Uefi"}},
		{Name: "ProcVirtualization", Type: TypeEnumeration, Value: "Enabled", Allowed: []string{"Enabled", "Disabled"}},
		{Name: "LogicalProc", Type: TypeEnumeration, Value: "Enabled", Allowed: []string{"Enabled", "Disabled"}},
		{Name: "ProcTurboMode", Type: TypeEnumeration, Value: "Enabled", Allowed: []string{"Enabled", "Disabled"}},
		{Name: "SriovGlobalEnable", Type: TypeEnumeration, Value: "Disabled", Allowed: []string{"Enabled", "Disabled"}},
		{Name: "SysProfile", Type: TypeEnumeration, Value: "PerfPerWattOptimizedDapc",
			Allowed: []string{"PerfPerWattOptimizedDapc", "PerfOptimized", "Custom"}},
		{Name: "ProcCores", Type: TypeInteger, Value: 0},
		{Name: "PxeDev1EnDis", Type: TypeEnumeration, Value: "Enabled", Allowed: []string{"Enabled", "Disabled"}},
		{Name: "SecureBoot", Type: TypeBoolean, Value: false},
		{Name: "AssetTag", Type: TypeString, Value: ""},
	}
}
