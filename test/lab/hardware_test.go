package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"underlay.dev/pkg/client"
	"underlay.dev/pkg/redfish"
	underlayv1 "underlay.dev/proto/underlay/v1"
	redfishsim "underlay.dev/test/redfish"
)

// cli runs the underlay CLI against the lab cluster.
func (c *Cluster) cli(tb TB, args ...string) (string, error) {
	tb.Helper()
	var servers []string
	for _, n := range c.Nodes {
		servers = append(servers, n.API())
	}
	full := append([]string{"--server", strings.Join(servers, ","), "--creds", c.AdminDir, "--timeout", "60s"}, args...)
	out, err := exec.Command(c.cfg.Binary, full...).CombinedOutput()
	return string(out), err
}

func (c *Cluster) mustCLI(tb TB, args ...string) string {
	tb.Helper()
	out, err := c.cli(tb, args...)
	if err != nil {
		tb.Fatalf("underlay %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// waitPlan polls a machine's plan until cond holds.
func waitPlan(tb TB, cl *client.Client, id, what string, d time.Duration, cond func(*underlayv1.Plan) bool) *underlayv1.Plan {
	tb.Helper()
	var last *underlayv1.Plan
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := cl.Provision.GetPlan(ctx, &underlayv1.GetPlanRequest{MachineId: id})
		cancel()
		if err == nil {
			last = p
			if cond(p) {
				return p
			}
		}
		time.Sleep(time.Second)
	}
	tb.Fatalf("timed out waiting for %s; plan: %v", what, last)
	return nil
}

func planDone(p *underlayv1.Plan) bool {
	return p.GetState() != underlayv1.PlanState_PLAN_STATE_RUNNING
}

// jobOutput returns the stored output of a machine's jobs.
func jobOutput(tb TB, cl *client.Client, id string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := cl.Provision.Logs(ctx, &underlayv1.LogsRequest{MachineId: id})
	if err != nil {
		tb.Fatalf("logs: %v", err)
	}
	var b strings.Builder
	for {
		c, err := s.Recv()
		if err != nil {
			return b.String()
		}
		b.Write(c.GetData())
	}
}

// connectedFrom asks each node for the machine: the node holding the
// session reports the address it comes from.
func connectedFrom(tb TB, c *Cluster, id string) string {
	tb.Helper()
	for _, n := range c.Nodes {
		cl, err := client.New(client.Options{Servers: []string{n.API()}, CredsDir: c.AdminDir})
		if err != nil {
			tb.Fatalf("client: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := cl.Machines.Get(ctx, &underlayv1.GetMachineRequest{Id: id, Read: &underlayv1.ReadOptions{Stale: true}})
		cancel()
		cl.Close()
		if err == nil && m.GetConnectedAddr() != "" {
			return m.GetConnectedAddr()
		}
	}
	return ""
}

func nicByKind(inv *underlayv1.Inventory, kind string) *underlayv1.NIC {
	for _, n := range inv.GetNics() {
		if n.GetKind() == kind {
			return n
		}
	}
	return nil
}

// TestHardwareFromRole is the hardware flow on a real VM: a simulated BMC
// (Redfish, driving QEMU through QMP) powers the VM on, it PXE-boots the
// discovery image and is discovered. A network config that would cut the
// agent off is rolled back and the agent comes back. Then a role stages a
// BIOS setting (applied at the BMC reset the agent asks for: the VM
// reboots, enrolls again and the step finds the setting in effect), builds
// a RAID 1 across the two extra disks with mdadm, and moves the agent onto
// an active-backup bond of both NICs carrying VLAN 100 with a static
// address from IPAM; the inventory shows the array, the bond and the VLAN,
// and the agent's session comes from the new address. A redeploy wipes the
// array and builds it again.
func TestHardwareFromRole(t *testing.T) {
	requireLab(t)
	lab := NewNetwork(t)
	c := StartCluster(t, lab, ClusterConfig{DHCPMode: Authoritative})
	cl := c.Client()
	vlan := lab.AddVLAN(t, 100, "10.100.0.1/24")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for _, sn := range []*underlayv1.Subnet{
		{Name: "vlan100", Cidr: "10.100.0.0/24", RangeStart: "10.100.0.100", RangeEnd: "10.100.0.150", Gateway: "10.100.0.1"},
		// Nothing answers on VLAN 200: moving there cuts the agent off.
		{Name: "vlan200", Cidr: "10.200.0.0/24", RangeStart: "10.200.0.100", RangeEnd: "10.200.0.150", Gateway: "10.200.0.1"},
	} {
		if _, err := cl.IPAM.CreateSubnet(ctx, &underlayv1.CreateSubnetRequest{Subnet: sn}); err != nil {
			t.Fatalf("subnet %s: %v", sn.GetName(), err)
		}
	}

	// The VM and its BMC. The BMC listens in n1's namespace, where the VM
	// (before and after its network change) and every node reach it.
	vm := PrepareVM(t, lab, VMConfig{Name: "hw", CPUs: 2, MemoryMiB: 1536, Disks: []int64{1 * gib, 2 * gib, 2 * gib}, NICs: 2, Reboot: true})
	qemuLog, err := os.Create(filepath.Join(t.TempDir(), "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer qemuLog.Close()
	power, err := redfishsim.NewQEMUPower(redfishsim.QEMUConfig{
		Argv: func(bootOnce string) []string {
			return append([]string{"ip", "netns", "exec", lab.NS}, vm.Args...)
		},
		QMPSocket: filepath.Join(t.TempDir(), "qmp.sock"),
		Output:    qemuLog,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { power.Close() })
	bmcAddr := netip.AddrPortFrom(c.Nodes[0].IP, 8443)
	ln, err := redfishsim.ListenNetns(c.Nodes[0].NS, bmcAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	const sys = "System.Embedded.1"
	bmc, err := redfishsim.Start(ctx, redfishsim.Config{
		Username: "root", Password: "calvin-lab", Listener: ln, Hosts: []string{bmcAddr.Addr().String()},
		Systems: []redfishsim.SystemConfig{{ID: sys, Attributes: redfishsim.DefaultAttributes(), Power: power}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bmc.Close() })
	ep := redfish.Endpoint{Address: "https://" + bmcAddr.String(), Username: "root", Password: "calvin-lab", CAPEM: bmc.CAPEM()}
	rc, err := redfish.Dial(ctx, ep)
	if err != nil {
		t.Fatalf("dial the BMC: %v", err)
	}
	if err := rc.Power(ctx, "on"); err != nil {
		t.Fatalf("power on through Redfish: %v", err)
	}
	rc.Close()
	vm.Started = time.Now()
	vm.Watch(t)
	boot := WaitDiscovered(t, cl, vm)
	id := boot.Machine.GetId()
	t.Logf("powered on through Redfish, discovered as %s after %v", id, boot.Discovered)

	if _, err := cl.Provision.SetParams(ctx, &underlayv1.SetParamsRequest{MachineId: id, Set: map[string]*underlayv1.ParamValue{
		"bmc_address": {Value: ep.Address}, "bmc_username": {Value: "root"}, "bmc_ca": {Value: string(bmc.CAPEM())},
	}}); err != nil {
		t.Fatal(err)
	}
	c.mustCLI(t, "param", "set", "--machine", id, "--secret", "bmc_password=calvin-lab")
	if out := c.mustCLI(t, "machine", "power", "status", id); !strings.Contains(out, "On") {
		t.Errorf("power status through the machine's BMC params: %s", out)
	}

	mac0 := vm.MACs[0]
	// The roles name no machine: the NICs come from the machine's facts
	// when the role is assigned (late binding).
	network := func(vid int, subnet string) string {
		return fmt.Sprintf(`
    links:
      - {id: nic0, type: phy, ethernet_mac_address: "{{ index .machine.macs 0 }}"}
      - {id: nic1, type: phy, ethernet_mac_address: "{{ index .machine.macs 1 }}"}
      - {id: bond0, type: bond, bond_mode: active-backup, bond_links: [nic0, nic1]}
      - {id: vlan%d, type: vlan, vlan_link: bond0, vlan_id: %d, name: bond0.%d}
    networks:
      - {id: v%d, type: ipv4, link: vlan%d, subnet: %s}`, vid, vid, vid, vid, vid, subnet)
	}
	defs := filepath.Join(t.TempDir(), "hw.yaml")
	if err := os.WriteFile(defs, []byte(`kind: Task
name: record-role
action: write-file
args: {path: /etc/underlay-role, content: "{{ .machine.role }}\n"}
---
kind: Role
name: cut-off
hardware:
  network:`+network(200, "vlan200")+`
---
kind: Role
name: storage-node
hardware:
  bios: {ProcTurboMode: Disabled}
  raid: {logical_disks: [{raid_level: "1", size_gb: MAX, physical_disks: [vdb, vdc], volume_name: data}]}
  network:`+network(100, "vlan100")+`
tasks: [record-role]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.mustCLI(t, "apply", "-f", defs)

	// A network change that cuts the agent off: rolled back, agent back.
	c.mustCLI(t, "machine", "assign", id, "--role", "cut-off")
	p := waitPlan(t, cl, id, "the cut-off network step to fail", 5*time.Minute, planDone)
	if s := p.GetSteps()[0]; p.GetState() != underlayv1.PlanState_PLAN_STATE_FAILED || !strings.Contains(s.GetReason(), "rolled back") {
		t.Fatalf("cut-off plan: %s, step %s %s %q; want the network step failed and rolled back", p.GetState(), s.GetName(), s.GetState(), s.GetReason())
	}
	eventually(t, 2*time.Minute, "the agent back online after the rollback", func() bool {
		m := findMachine(cl, mac0)
		return m != nil && m.GetOnline()
	})

	// The real role, with the plan shown before it runs.
	out := c.mustCLI(t, "machine", "assign", id, "--role", "storage-node")
	for _, want := range []string{"ProcTurboMode = Disabled", "raid1 of vdb, vdc", "active-backup", vm.MACs[0], vm.MACs[1], "vlan 100", "10.100.0.2/24"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan of storage-node does not show %q:\n%s", want, out)
		}
	}
	p = waitPlan(t, cl, id, "the storage-node plan", 12*time.Minute, planDone)
	if p.GetState() != underlayv1.PlanState_PLAN_STATE_SUCCEEDED {
		t.Fatalf("storage-node plan %s: %s\n%s", p.GetState(), p.GetReason(), jobOutput(t, cl, id))
	}
	if v := bmc.Attributes(sys)["ProcTurboMode"]; v != "Disabled" {
		t.Errorf("ProcTurboMode in effect: %v", v)
	}
	if boots := bmc.Boots(sys); len(boots) < 2 || boots[len(boots)-1].Applied["ProcTurboMode"] != "Disabled" {
		t.Errorf("BMC boots %+v: want the reset that applied the setting", boots)
	}
	checkHardware := func(what string) {
		t.Helper()
		inv, err := cl.Machines.GetInventory(ctx, &underlayv1.GetMachineRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		var arr *underlayv1.MDArray
		for _, a := range inv.GetMdArrays() {
			if a.GetLevel() == "raid1" {
				arr = a
			}
		}
		if arr == nil {
			t.Errorf("%s: inventory has no raid1 array: %v", what, inv.GetMdArrays())
		} else {
			members := slices.Clone(arr.GetMembers())
			slices.Sort(members)
			if !slices.Equal(members, []string{"vdb", "vdc"}) {
				t.Errorf("%s: array %s members %v, want vdb and vdc", what, arr.GetName(), members)
			}
		}
		bond, vl := nicByKind(inv, "bond"), nicByKind(inv, "vlan")
		if bond == nil || vl == nil {
			var names []string
			for _, n := range inv.GetNics() {
				names = append(names, fmt.Sprintf("%s(%s %v)", n.GetName(), n.GetKind(), n.GetAddresses()))
			}
			t.Logf("%s: inventory NICs (collected %v): %s", what, inv.GetCollected().AsTime(), strings.Join(names, ", "))
			t.Logf("serial:\n%s", grepLines(vm.SerialLog(), "inventory", "network", "session"))
		}
		if bond == nil || len(bond.GetSlaves()) != 2 {
			t.Errorf("%s: bond in the inventory: %v", what, bond)
		}
		if vl == nil || vl.GetVlanId() != 100 || !slices.Contains(vl.GetAddresses(), "10.100.0.2/24") {
			t.Errorf("%s: vlan in the inventory: %v", what, vl)
		}
	}
	checkHardware("after the plan")
	eventually(t, time.Minute, "the agent's session over the VLAN", func() bool {
		return strings.HasPrefix(connectedFrom(t, c, id), "10.100.0.2:")
	})
	if st := vlan.Stats(); st.FromTrunk == 0 || st.ToTrunk == 0 {
		t.Errorf("no traffic through VLAN %d: %+v", vlan.ID, st)
	}

	// Redeploy: wipe, then the same hardware again.
	c.mustCLI(t, "machine", "redeploy", id)
	p = waitPlan(t, cl, id, "the redeploy", 10*time.Minute, func(p *underlayv1.Plan) bool { return p.GetRedeploy() && planDone(p) })
	if p.GetState() != underlayv1.PlanState_PLAN_STATE_SUCCEEDED {
		t.Fatalf("redeploy %s: %s\n%s", p.GetState(), p.GetReason(), jobOutput(t, cl, id))
	}
	logs := jobOutput(t, cl, id)
	for _, want := range []string{"/dev/vdb: wiped", "/dev/vdc: wiped", "created"} {
		if !strings.Contains(logs, want) {
			t.Errorf("redeploy output lacks %q", want)
		}
	}
	checkHardware("after the redeploy")
}

// grepLines returns the lines of b that contain any of words.
func grepLines(b []byte, words ...string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
