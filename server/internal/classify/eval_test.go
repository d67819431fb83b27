package classify

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestEval(t *testing.T) {
	machines := testMachines(t)
	// want lists the machines (of testMachines) the expression is true for.
	tests := []struct {
		expr string
		want []string
	}{
		{`true`, []string{"bare", "server", "vm"}},
		{`false`, nil},
		{`disks >= 2 && memory_gib >= 8 && !is_vm`, []string{"server"}},
		{`disks == 2 && memory_gib == 16 && is_vm`, []string{"vm"}},
		{`disks == 5 && ssds == 4 && nvmes == 2 && hdds == 1`, []string{"server"}},
		{`disks == 0`, []string{"bare"}},
		{`disk_gib > 10000`, []string{"server"}},
		{`disk_gib >= 56 && disk_gib <= 56`, []string{"vm"}},
		{`memory_gib < 16`, []string{"bare"}},
		{`memory_gib > 15.5`, []string{"server", "vm"}},
		{`cpus >= 64 && cores == 40 && sockets != 1`, []string{"server"}},
		{`nics == 2`, []string{"server"}},
		{`nics != 2`, []string{"bare", "vm"}},
		{`gpus > 0 && gpu_vendors contains "NVIDIA"`, []string{"server"}},
		{`!(gpus > 0)`, []string{"bare", "vm"}},
		{`!gpus > 0`, []string{"bare", "vm"}},
		// ANY semantics for lists, and MACs in any case.
		{`mac == "52:54:00:12:34:56"`, []string{"vm"}},
		{`macs == "B8:CA:3A:00:00:02"`, []string{"server"}},
		{`"b8:ca:3a:00:00:01" in macs`, []string{"server"}},
		{`macs in ["00:00:00:00:00:01", "52:54:00:12:34:56"]`, []string{"vm"}},
		{`macs != "52:54:00:12:34:56"`, []string{"bare", "server"}},
		{`mac contains "B8:CA:3A"`, []string{"server"}},
		{`mac =~ "^52:54:00:"`, []string{"vm"}},
		{`mac =~ "^52:54:00:AB"`, nil},
		{`mac == "aa:aa:aa:aa:aa:aa"`, nil}, // veth: not a physical NIC
		{`mac == label.mac`, nil},
		{`nic_drivers == "ixgbe"`, []string{"server"}},
		{`nic_drivers in ["virtio_net", "e1000"]`, []string{"vm"}},
		{`nic_drivers contains "virtio"`, []string{"vm"}},
		{`disk_models =~ "^SAMSUNG"`, []string{"server"}},
		{`cpu_flags == "avx512f"`, []string{"server"}},
		{`"hypervisor" in cpu_flags`, []string{"vm"}},
		{`cpu_vendor == "GenuineIntel" && cpu_model contains "Xeon"`, []string{"server"}},
		{`cpu_vendor == "genuineintel"`, nil}, // case-sensitive
		// DMI and platform.
		{`vendor == "Dell Inc." && product =~ "^PowerEdge R[0-9]+$"`, []string{"server"}},
		{`vendor == "QEMU"`, []string{"vm"}},
		{`serial == "ABC1234"`, []string{"server"}},
		{`uuid == "5A1C2B3D-0000-4000-8000-0000000000AA"`, []string{"vm"}},
		{`uuid contains "b4c04f"`, []string{"server"}},
		{`bios_vendor == "SeaBIOS" && bios_version contains "debian"`, []string{"vm"}},
		{`boot_mode == "uefi"`, []string{"server"}},
		{`boot_mode in ["legacy", "uefi"] && arch == "amd64"`, []string{"server", "vm"}},
		{`is_vm && hypervisor == "qemu" && cloud == ""`, []string{"vm"}},
		{`os =~ "(?i)debian"`, []string{"server"}},
		// Machine record.
		{`hostname == "bm1"`, []string{"server"}},
		{`hostname == "vm1"`, []string{"vm"}}, // from the inventory when the machine has none
		{`hostname == ""`, []string{"bare"}},
		{`id == "m-vm" || id == "m-new"`, []string{"bare", "vm"}},
		{`role == "db"`, []string{"bare"}},
		{`role == ""`, []string{"server", "vm"}},
		// Labels; a missing label is "".
		{`label.rack == "r12"`, []string{"server"}},
		{`labels["rack"] =~ "^r1$"`, []string{"vm"}},
		{`label.rack == ""`, []string{"bare"}},
		{`label.rack != ""`, []string{"server", "vm"}},
		{`label.example.com/zone == "a"`, []string{"server"}},
		{`labels["odd key"] == "yes"`, []string{"server"}},
		{`has_label("rack")`, []string{"server", "vm"}},
		{`!has_label("rack")`, []string{"bare"}},
		{`hostname contains label.rack`, []string{"bare"}}, // "" contains ""
		{`label.rack in ["r1", "r2"]`, []string{"vm"}},
		// Logic and precedence.
		{`is_vm || disks == 5 && nics == 2`, []string{"server", "vm"}},
		{`(is_vm || disks == 5) && nics == 1`, []string{"vm"}},
		{`!is_vm && !(disks == 0)`, []string{"server"}},
		{`!!is_vm`, []string{"vm"}},
		{`is_vm == (disks == 2)`, []string{"bare", "server", "vm"}},
		{`is_vm != false`, []string{"vm"}},
		{`disks in [2, 5]`, []string{"server", "vm"}},
		{`disks in []`, nil},
		{`1 == 1 && "a" != "b"`, []string{"bare", "server", "vm"}},
		{`disks > -1`, []string{"bare", "server", "vm"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			e, err := Parse(tt.expr)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []string
			for _, name := range []string{"bare", "server", "vm"} {
				if e.Eval(machines[name]) {
					got = append(got, name)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("machines matching %s (-want +got):\n%s", tt.expr, diff)
			}
			// The canonical form means the same.
			canon, err := Parse(e.String())
			if err != nil {
				t.Fatalf("Parse(canonical %q): %v", e.String(), err)
			}
			for name, f := range machines {
				if canon.Eval(f) != e.Eval(f) {
					t.Errorf("canonical %q evaluates differently on %s", e.String(), name)
				}
			}
		})
	}
}

// TestEvalFoldsNonLiterals: a MAC or UUID compared with a label matches
// whatever the label's case.
func TestEvalFoldsNonLiterals(t *testing.T) {
	m, inv := testVM(t)
	m.Labels["mac"] = "52:54:00:12:34:56"
	m.Labels["MAC"] = "52:54:00:12:34:56"
	m.Labels["uuid"] = "5A1C2B3D-0000-4000-8000-0000000000AA"
	f := FactsOf(m, inv)
	for _, src := range []string{`mac == label.mac`, `label.MAC in macs`, `uuid == label.uuid`, `label.uuid == uuid`} {
		e, err := Parse(src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if !e.Eval(f) {
			t.Errorf("%s is false, want true", src)
		}
	}
}

// TestEvalZeroFacts: every parsed expression evaluates on the zero Facts.
func TestEvalZeroFacts(t *testing.T) {
	for _, src := range []string{`macs == "x"`, `disk_models =~ "a"`, `label.x == ""`, `cpu_flags in ["a"]`, `!has_label("x")`} {
		e, err := Parse(src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		want := src == `label.x == ""` || src == `!has_label("x")`
		if got := e.Eval(Facts{}); got != want {
			t.Errorf("%s on zero Facts = %v, want %v", src, got, want)
		}
	}
}

func TestEvalRemovableAndVirtualDevicesDoNotCount(t *testing.T) {
	inv := &underlayv1.Inventory{
		Disks: []*underlayv1.BlockDevice{
			{Name: "sda", SizeBytes: testGiB, DriveType: "ssd", Removable: true},
			{Name: "md127", SizeBytes: testGiB, DriveType: "unknown"},
			{Name: "dm-0", SizeBytes: testGiB},
			{Name: "loop0", SizeBytes: testGiB, Controller: "loop"},
			{Name: "sdb", SizeBytes: 0, DriveType: "hdd"},
			{Name: "fd0", SizeBytes: testGiB, DriveType: "fdd"},
			{Name: "vda", SizeBytes: 2 * testGiB, DriveType: "hdd", Controller: "virtio"},
		},
		Nics: []*underlayv1.NIC{
			{Name: "br0", Mac: "02:00:00:00:00:01", Kind: "bridge"},
			{Name: "tap0", Mac: "02:00:00:00:00:02", Kind: "tun"},
			{Name: "lo", Mac: "00:00:00:00:00:00"},
			{Name: "eth0", Mac: "02:00:00:00:00:03", Kind: "device", Driver: "e1000"},
			{Name: "eth1", Mac: "", Kind: "device", Driver: "e1000"},
		},
	}
	f := FactsOf(nil, inv)
	got := map[string]any{}
	for _, n := range []string{"disks", "disk_gib", "hdds", "ssds", "nics", "macs"} {
		got[n], _ = f.Value(n)
	}
	want := map[string]any{"disks": 1.0, "disk_gib": 2.0, "hdds": 1.0, "ssds": 0.0, "nics": 2.0, "macs": []string{"02:00:00:00:00:03"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("facts (-want +got):\n%s", diff)
	}
}
