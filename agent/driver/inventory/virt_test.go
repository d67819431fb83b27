package inventory

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestDetectVirtualization(t *testing.T) {
	tests := []struct {
		name        string
		dmi         *underlayv1.DMI
		assetTag    string
		cpuFlag     bool
		hvType      string
		clocksource string
		want        *underlayv1.Virtualization
	}{
		{name: "bare metal", dmi: &underlayv1.DMI{SystemVendor: "Dell Inc.", ProductName: "PowerEdge R650"}, clocksource: "tsc", want: &underlayv1.Virtualization{}},
		{name: "qemu", dmi: &underlayv1.DMI{SystemVendor: "QEMU", ProductName: "Standard PC (Q35 + ICH9, 2009)"}, cpuFlag: true, want: &underlayv1.Virtualization{IsVm: true, Hypervisor: "qemu"}},
		{name: "aws", dmi: &underlayv1.DMI{SystemVendor: "Amazon EC2", ProductName: "m5.large"}, cpuFlag: true, want: &underlayv1.Virtualization{IsVm: true, Hypervisor: "kvm", Cloud: "aws"}},
		{name: "gcp", dmi: &underlayv1.DMI{SystemVendor: "Google", ProductName: "Google Compute Engine"}, want: &underlayv1.Virtualization{IsVm: true, Hypervisor: "kvm", Cloud: "gcp"}},
		{name: "openstack", dmi: &underlayv1.DMI{SystemVendor: "OpenStack Foundation", ProductName: "OpenStack Nova"}, want: &underlayv1.Virtualization{IsVm: true, Hypervisor: "kvm", Cloud: "openstack"}},
		{name: "hyper-v", dmi: &underlayv1.DMI{SystemVendor: "Microsoft Corporation", ProductName: "Virtual Machine"}, want: &underlayv1.Virtualization{IsVm: true, Hypervisor: "hyperv"}},
		{name: "azure", dmi: &underlayv1.DMI{SystemVendor: "Microsoft Corporation", ProductName: "Virtual Machine"}, assetTag: "7783-7084-3265-9085-8269-3286-77", want: &underlayv1.Virtualization{IsVm: true, Hypervisor: "hyperv", Cloud: "azure"}},
		{name: "vmware", dmi: &underlayv1.DMI{SystemVendor: "VMware, Inc.", ProductName: "VMware7,1"}, want: &underlayv1.Virtualization{IsVm: true, Hypervisor: "vmware"}},
		{name: "xen from sysfs", hvType: "xen", want: &underlayv1.Virtualization{IsVm: true, Hypervisor: "xen"}},
		{name: "microvm without dmi", cpuFlag: true, clocksource: "kvm-clock", want: &underlayv1.Virtualization{IsVm: true, Hypervisor: "kvm"}},
		{name: "kvm-clock alone is not a vm", clocksource: "kvm-clock", want: &underlayv1.Virtualization{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := detectVirtualization(tt.dmi, tt.assetTag, tt.cpuFlag, tt.hvType, tt.clocksource)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("detectVirtualization() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
