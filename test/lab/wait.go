package lab

import (
	"context"
	"regexp"
	"strings"
	"time"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Milestone is something the serial console shows on the way to discovered.
type Milestone struct {
	Name string
	RE   *regexp.Regexp
}

// Milestones are logged, with the time since power-on, as they show up.
var Milestones = []Milestone{
	{"firmware (OVMF)", regexp.MustCompile(`BdsDxe|UEFI firmware`)},
	{"PXE (OVMF)", regexp.MustCompile(`(?i)start pxe over ipv4`)},
	{"iPXE", regexp.MustCompile(`iPXE (initialising|\d)`)},
	{"iPXE script", regexp.MustCompile(`underlay: \S+ boots the discovery image`)},
	{"kernel", regexp.MustCompile(`Linux version \d`)},
	{"discovery image", regexp.MustCompile(`discovery image boot: preparing environment`)},
	{"agent dhcp lease", regexp.MustCompile(`msg="dhcp lease"`)},
	{"agent started", regexp.MustCompile(`msg="agent starting"`)},
	{"machine enrolled", regexp.MustCompile(`msg="machine enrolled"`)},
}

// Boot is the outcome of a boot: the machine and when milestones were seen.
type Boot struct {
	Machine   *underlayv1.Machine
	Inventory *underlayv1.Inventory
	// Discovered is the time from power-on to the machine being listed as
	// discovered through the API.
	Discovered time.Duration
	// Seen maps milestone names to their time since power-on.
	Seen map[string]time.Duration
}

// WaitDiscovered polls the API until a machine whose identity lists the
// VM's first MAC is in state discovered and returns it with its inventory
// and the serial-console milestones (which the VM logs as they appear).
func WaitDiscovered(tb TB, cl *client.Client, vm *VM) Boot {
	tb.Helper()
	var b Boot
	mac := strings.ToLower(vm.MACs[0])
	deadline := vm.Started.Add(BootDeadline)
	for {
		if m := findMachine(cl, mac); m != nil && m.GetState() == underlayv1.MachineState_MACHINE_STATE_DISCOVERED {
			b.Discovered = time.Since(vm.Started)
			// The machine's creation time (the node's clock, this host) is
			// when it enrolled as discovered, independent of polling.
			if c := m.GetCreated().AsTime(); c.After(vm.Started) && c.Sub(vm.Started) < b.Discovered {
				b.Discovered = c.Sub(vm.Started)
			}
			b.Discovered = b.Discovered.Round(100 * time.Millisecond)
			b.Machine = m
			break
		}
		if vm.Proc != nil && !vm.Running() {
			tb.Fatalf("%s: qemu exited before the machine was discovered:\n%s\nserial (tail):\n%s",
				vm.Config.Name, tail(vm.Output(), 10), tail(vm.SerialLog(), 40))
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: machine with mac %s not discovered: %v after %v; serial (tail):\n%s",
				vm.Config.Name, mac, ErrTimeout, BootDeadline, tail(vm.SerialLog(), 40))
		}
		time.Sleep(time.Second)
	}
	b.Seen = vm.Milestones()
	tb.Logf("%s: discovered as %s after %v", vm.Config.Name, b.Machine.GetId(), b.Discovered)
	eventually(tb, 30*time.Second, "inventory of "+b.Machine.GetId(), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		inv, err := cl.Machines.GetInventory(ctx, &underlayv1.GetMachineRequest{Id: b.Machine.GetId()})
		b.Inventory = inv
		return err == nil && inv.GetCpu() != nil
	})
	return b
}

func findMachine(cl *client.Client, mac string) *underlayv1.Machine {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := cl.Machines.List(ctx, &underlayv1.ListMachinesRequest{})
	if err != nil {
		return nil
	}
	for _, m := range res.GetMachines() {
		for _, x := range m.GetIdentity().GetMacs() {
			if strings.EqualFold(x, mac) {
				return m
			}
		}
	}
	return nil
}
