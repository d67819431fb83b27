package hwfacts

import (
	"testing"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestNotDisk(t *testing.T) {
	for name, want := range map[string]bool{
		"sda": false, "vdb": false, "nvme0n1": false, "xvda": false, "hda": false,
		"md0": true, "md127": true, "dm-0": true, "loop3": true, "ram0": true,
		"zram0": true, "nbd1": true, "sr0": true, "fd0": true,
	} {
		if got := NotDisk(name); got != want {
			t.Errorf("NotDisk(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestPhysicalNIC(t *testing.T) {
	for _, tc := range []struct {
		nic  *underlayv1.NIC
		want bool
	}{
		{&underlayv1.NIC{Name: "eth0", Kind: "device"}, true},
		{&underlayv1.NIC{Name: "enp1s0"}, true},
		{nil, false},
		{&underlayv1.NIC{Name: "lo"}, false},
		{&underlayv1.NIC{Name: "eth1", Virtual: true}, false},
		{&underlayv1.NIC{Name: "bond0", Kind: "bond"}, false},
		{&underlayv1.NIC{Name: "eth0.100", Kind: "vlan"}, false},
		{&underlayv1.NIC{Name: "tap3", Kind: "tuntap"}, false},
	} {
		if got := PhysicalNIC(tc.nic); got != tc.want {
			t.Errorf("PhysicalNIC(%v) = %v, want %v", tc.nic, got, tc.want)
		}
	}
}
