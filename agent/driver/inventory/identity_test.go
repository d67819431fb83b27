package inventory_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/agent/driver/inventory"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestValidUUID(t *testing.T) {
	tests := []struct {
		uuid string
		want bool
	}{
		{"6f1c3d2a-8b4e-4c7a-9d21-5e0f7a3b9c14", true},
		{"6F1C3D2A-8B4E-4C7A-9D21-5E0F7A3B9C14", true},
		{"", false},
		{"00000000-0000-0000-0000-000000000000", false},
		{"ffffffff-ffff-ffff-ffff-ffffffffffff", false},
		{"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", false},
		{"03000200-0400-0500-0006-000700080009", false},
		{"00020003-0004-0005-0006-000700080009", false},
		{"not-a-uuid", false},
		{"6f1c3d2a8b4e4c7a9d215e0f7a3b9c14", false},
		{"6f1c3d2a-8b4e-4c7a-9d21-5e0f7a3b9c1g", false},
	}
	for _, tt := range tests {
		t.Run(tt.uuid, func(t *testing.T) {
			if got := inventory.ValidUUID(tt.uuid); got != tt.want {
				t.Errorf("ValidUUID(%q) = %v, want %v", tt.uuid, got, tt.want)
			}
		})
	}
}

// physical returns a NIC with a device link.
func physical(name, mac, perm string) *underlayv1.NIC {
	return &underlayv1.NIC{Name: name, Mac: mac, PermanentMac: perm, Kind: "device"}
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name string
		inv  *underlayv1.Inventory
		want *underlayv1.MachineIdentity
	}{
		{
			// printf 'uuid:6f1c3d2a-8b4e-4c7a-9d21-5e0f7a3b9c14' | sha256sum
			name: "valid uuid wins and is lowercased",
			inv: &underlayv1.Inventory{
				Dmi:  &underlayv1.DMI{ProductUuid: "6F1C3D2A-8B4E-4C7A-9D21-5E0F7A3B9C14", ProductSerial: "QEMU-SN-0001"},
				Nics: []*underlayv1.NIC{physical("eth0", "52:54:00:12:34:01", "")},
			},
			want: &underlayv1.MachineIdentity{
				MachineId: "m-690ed03d43e9",
				Uuid:      "6f1c3d2a-8b4e-4c7a-9d21-5e0f7a3b9c14",
				Serials:   []string{"QEMU-SN-0001"},
				Macs:      []string{"52:54:00:12:34:01"},
			},
		},
		{
			// printf 'mac:02:fc:00:00:00:01\n' | sha256sum
			name: "placeholder uuid falls back to macs",
			inv: &underlayv1.Inventory{
				Dmi:  &underlayv1.DMI{ProductUuid: "03000200-0400-0500-0006-000700080009"},
				Nics: []*underlayv1.NIC{physical("eth0", "02:FC:00:00:00:01", "")},
			},
			want: &underlayv1.MachineIdentity{
				MachineId: "m-5163b2aa124a",
				Macs:      []string{"02:fc:00:00:00:01"},
			},
		},
		{
			// printf 'mac:aa:00:00:00:00:01\nmac:aa:00:00:00:00:02\nserial:ABC123\nserial:BOARD-9\n' | sha256sum
			name: "serial placeholders skipped, permanent mac preferred",
			inv: &underlayv1.Inventory{
				Dmi: &underlayv1.DMI{
					ProductSerial:   "ABC123",
					BaseboardSerial: "BOARD-9",
					ChassisSerial:   "To Be Filled By O.E.M.",
				},
				Nics: []*underlayv1.NIC{
					physical("eth1", "de:ad:be:ef:00:02", "aa:00:00:00:00:02"),
					physical("eth0", "aa:00:00:00:00:01", ""),
				},
			},
			want: &underlayv1.MachineIdentity{
				MachineId: "m-db61b4926808",
				Serials:   []string{"ABC123", "BOARD-9"},
				Macs:      []string{"aa:00:00:00:00:01", "aa:00:00:00:00:02"},
			},
		},
		{
			name: "every placeholder serial is skipped",
			inv: &underlayv1.Inventory{Dmi: &underlayv1.DMI{
				ProductSerial:   "System Serial Number",
				BaseboardSerial: "Default string",
				ChassisSerial:   "0",
			}},
			want: &underlayv1.MachineIdentity{},
		},
		{
			name: "more placeholders",
			inv: &underlayv1.Inventory{Dmi: &underlayv1.DMI{
				ProductSerial:   "Not Specified",
				BaseboardSerial: "None",
				ChassisSerial:   "00000000000",
			}},
			want: &underlayv1.MachineIdentity{},
		},
		{
			// printf 'mac:aa:00:00:00:00:01\n' | sha256sum
			name: "virtual nics and disks are ignored",
			inv: &underlayv1.Inventory{
				Disks: []*underlayv1.BlockDevice{{Name: "sda", Serial: "DISK-1"}},
				Nics: []*underlayv1.NIC{
					{Name: "lo", Virtual: true, Kind: "loopback"},
					{Name: "br0", Mac: "aa:00:00:00:00:01", Kind: "bridge", Virtual: true},
					{Name: "bond0", Mac: "aa:00:00:00:00:01", Kind: "bond", Virtual: true},
					{Name: "eth0.10", Mac: "aa:00:00:00:00:01", Kind: "vlan", Virtual: true},
					{Name: "veth1", Mac: "be:00:00:00:00:09", Kind: "veth", Virtual: true},
					{Name: "tap0", Mac: "be:00:00:00:00:0a", Kind: "tuntap", Virtual: true},
					{Name: "docker0", Mac: "be:00:00:00:00:0b", Kind: "bridge"},
					{Name: "ifb0", Mac: "be:00:00:00:00:0c", Virtual: true},
					physical("eth0", "00:00:00:00:00:00", ""),
					physical("eth1", "aa:00:00:00:00:01", "aa:00:00:00:00:01"),
				},
			},
			want: &underlayv1.MachineIdentity{
				MachineId: "m-50dccbce87b6",
				Macs:      []string{"aa:00:00:00:00:01"},
			},
		},
		{
			name: "nothing to identify",
			inv:  &underlayv1.Inventory{},
			want: &underlayv1.MachineIdentity{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inventory.Identity(tt.inv)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Identity() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestIdentityStable checks that discovery order changes neither the
// identity nor the hash.
func TestIdentityStable(t *testing.T) {
	a := &underlayv1.Inventory{
		Dmi: &underlayv1.DMI{ProductSerial: "ABC123"},
		Nics: []*underlayv1.NIC{
			physical("eth0", "aa:00:00:00:00:01", ""),
			physical("eth1", "aa:00:00:00:00:02", ""),
			physical("eth2", "aa:00:00:00:00:02", ""),
		},
	}
	b := &underlayv1.Inventory{
		Dmi: &underlayv1.DMI{ProductSerial: "ABC123"},
		Nics: []*underlayv1.NIC{
			physical("eth2", "aa:00:00:00:00:02", ""),
			physical("eth0", "AA:00:00:00:00:01", ""),
			physical("eth1", "aa:00:00:00:00:02", ""),
		},
	}
	if diff := cmp.Diff(inventory.Identity(a), inventory.Identity(b), protocmp.Transform()); diff != "" {
		t.Errorf("Identity() depends on NIC order (-a +b):\n%s", diff)
	}
}

func TestHash(t *testing.T) {
	base := func() *underlayv1.Inventory {
		return &underlayv1.Inventory{
			Hostname:  "node1",
			Cpu:       &underlayv1.CPU{Threads: 4},
			Collected: timestamppb.New(timestamppb.Now().AsTime().Add(-1)),
		}
	}
	tests := []struct {
		name   string
		change func(*underlayv1.Inventory)
		same   bool
	}{
		{"unchanged", func(*underlayv1.Inventory) {}, true},
		{"collected ignored", func(i *underlayv1.Inventory) { i.Collected = timestamppb.Now() }, true},
		{"hostname", func(i *underlayv1.Inventory) { i.Hostname = "node2" }, false},
		{"cpu threads", func(i *underlayv1.Inventory) { i.Cpu.Threads = 8 }, false},
		{"disk added", func(i *underlayv1.Inventory) {
			i.Disks = append(i.Disks, &underlayv1.BlockDevice{Name: "sda"})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := base()
			before := inventory.Hash(inv)
			tt.change(inv)
			after := inventory.Hash(inv)
			if got := before == after; got != tt.same {
				t.Errorf("Hash() equal = %v, want %v (%s vs %s)", got, tt.same, before, after)
			}
			if inv.Collected == nil && tt.name == "collected ignored" {
				t.Errorf("Hash() modified its argument")
			}
		})
	}
}
