package classify

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// allValues returns every fact of f by name.
func allValues(tb testing.TB, f Facts) map[string]any {
	tb.Helper()
	out := map[string]any{}
	for _, name := range FactNames() {
		v, ok := f.Value(name)
		if !ok {
			tb.Fatalf("Value(%q) is unknown", name)
		}
		out[name] = v
	}
	return out
}

func TestFactsOf(t *testing.T) {
	bmM, bmInv := testServer(t)
	vmM, vmInv := testVM(t)
	serverMACs := []string{"b8:ca:3a:00:00:01", "b8:ca:3a:00:00:02"}
	vmMACs := []string{"52:54:00:12:34:56"}
	tests := []struct {
		name string
		m    *underlayv1.Machine
		inv  *underlayv1.Inventory
		want map[string]any
	}{
		{
			name: "server",
			m:    bmM, inv: bmInv,
			want: map[string]any{
				"arch": "amd64", "bios_vendor": "Dell Inc.", "bios_version": "2.19.1", "boot_mode": "uefi", "cloud": "",
				"cores": 40.0, "cpu_flags": []string{"avx2", "avx512f", "sse4_2"}, "cpu_model": "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz",
				"cpu_vendor": "GenuineIntel", "cpus": 80.0, "disk_gib": 10800.0,
				"disk_models": []string{"INTEL SSDSC2KB480G8", "SAMSUNG MZQL21T9HCJR-00A07", "ST8000NM000A"},
				"disks":       5.0, "gpu_vendors": []string{"NVIDIA Corporation"}, "gpus": 1.0, "hdds": 1.0,
				"hostname": "bm1", "hypervisor": "", "id": "m-bm", "is_vm": false,
				"mac": serverMACs, "macs": serverMACs, "memory_gib": 256.0, "nic_drivers": []string{"ixgbe"},
				"nics": 2.0, "nvmes": 2.0, "os": "Debian GNU/Linux 12 (bookworm)", "product": "PowerEdge R740",
				"role": "", "serial": "ABC1234", "sockets": 2.0, "ssds": 4.0,
				"uuid": "4c4c4544-0042-4310-8031-b4c04f313233", "vendor": "Dell Inc.",
			},
		},
		{
			name: "vm",
			m:    vmM, inv: vmInv,
			want: map[string]any{
				"arch": "amd64", "bios_vendor": "SeaBIOS", "bios_version": "1.16.2-debian-1.16.2-1", "boot_mode": "legacy", "cloud": "",
				"cores": 4.0, "cpu_flags": []string{"hypervisor", "sse4_2"}, "cpu_model": "QEMU Virtual CPU version 2.5+",
				"cpu_vendor": "GenuineIntel", "cpus": 4.0, "disk_gib": 56.0, "disk_models": []string(nil),
				"disks": 2.0, "gpu_vendors": []string(nil), "gpus": 0.0, "hdds": 2.0,
				"hostname": "vm1", "hypervisor": "qemu", "id": "m-vm", "is_vm": true,
				"mac": vmMACs, "macs": vmMACs, "memory_gib": 16.0, "nic_drivers": []string{"virtio_net"},
				"nics": 1.0, "nvmes": 0.0, "os": "Underlay discovery", "product": "Standard PC (i440FX + PIIX, 1996)",
				"role": "", "serial": "", "sockets": 1.0, "ssds": 0.0,
				"uuid": "5a1c2b3d-0000-4000-8000-0000000000aa", "vendor": "QEMU",
			},
		},
		{
			name: "no inventory",
			m:    &underlayv1.Machine{Id: "m-1", Hostname: "h", Role: "db"},
			want: map[string]any{
				"arch": "", "bios_vendor": "", "bios_version": "", "boot_mode": "", "cloud": "",
				"cores": 0.0, "cpu_flags": []string(nil), "cpu_model": "", "cpu_vendor": "", "cpus": 0.0,
				"disk_gib": 0.0, "disk_models": []string(nil), "disks": 0.0, "gpu_vendors": []string(nil), "gpus": 0.0,
				"hdds": 0.0, "hostname": "h", "hypervisor": "", "id": "m-1", "is_vm": false,
				"mac": []string(nil), "macs": []string(nil), "memory_gib": 0.0, "nic_drivers": []string(nil),
				"nics": 0.0, "nvmes": 0.0, "os": "", "product": "", "role": "db", "serial": "", "sockets": 0.0,
				"ssds": 0.0, "uuid": "", "vendor": "",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := allValues(t, FactsOf(tt.m, tt.inv))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FactsOf (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("zero Facts and nil machine", func(t *testing.T) {
		zero := allValues(t, Facts{})
		if diff := cmp.Diff(zero, allValues(t, FactsOf(nil, nil))); diff != "" {
			t.Errorf("FactsOf(nil, nil) differs from Facts{} (-zero +got):\n%s", diff)
		}
	})
}

func TestFactsOfCopies(t *testing.T) {
	m, inv := testServer(t)
	f := FactsOf(m, inv)
	m.Labels["rack"] = "changed"
	inv.Cpu.Flags[0] = "changed"
	if got := f.Label("rack"); got != "r12" {
		t.Errorf("label rack after the machine changed = %q, want r12", got)
	}
	flags, _ := f.Value("cpu_flags")
	flags.([]string)[0] = "mutated"
	again, _ := f.Value("cpu_flags")
	if diff := cmp.Diff([]string{"avx2", "avx512f", "sse4_2"}, again); diff != "" {
		t.Errorf("cpu_flags changed through the inventory or Value (-want +got):\n%s", diff)
	}
}

func TestValueUnknown(t *testing.T) {
	if v, ok := (Facts{}).Value("dsks"); ok {
		t.Errorf(`Value("dsks") = %v, true; want unknown`, v)
	}
}

func TestFactNames(t *testing.T) {
	names := FactNames()
	if !slices.IsSorted(names) {
		t.Errorf("FactNames is not sorted: %v", names)
	}
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("FactNames has duplicates: %v", names)
	}
	for _, n := range names {
		if slices.Contains(keywords, n) {
			t.Errorf("fact %q is also a keyword", n)
		}
	}
}

// TestDocsListEveryFact keeps docs/classify.md in step with the code.
func TestDocsListEveryFact(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/classify.md")
	if err != nil {
		t.Fatalf("read the user doc: %v", err)
	}
	for _, n := range FactNames() {
		if !strings.Contains(string(doc), "| `"+n+"` |") {
			t.Errorf("docs/classify.md has no table row for fact %q", n)
		}
	}
}
