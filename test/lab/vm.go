package lab

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// OVMF firmware from the Debian package ovmf.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS.fd"
)

// VMConfig describes a virtual machine.
type VMConfig struct {
	// Name names the VM in logs and files.
	Name string
	// CPUs and MemoryMiB default to 2 and 1536.
	CPUs      int
	MemoryMiB int
	// Disks are the sizes in bytes of virtio disks (sparse raw files).
	Disks []int64
	// NICs is the number of virtio NICs on the lab bridge (default 1);
	// the first one network-boots.
	NICs int
	// UEFI boots OVMF instead of SeaBIOS.
	UEFI bool
	// FirmwarePXE removes the NIC's iPXE option ROM, so that the firmware's
	// own PXE client starts the boot and fetches iPXE over TFTP.
	FirmwarePXE bool
	// Reboot lets the VM reboot (a guest reboot or a reset through QMP);
	// without it QEMU exits when the guest reboots.
	Reboot bool
}

// VM is a running QEMU machine.
type VM struct {
	Config VMConfig
	// MACs of the NICs, in order, lowercase.
	MACs []string
	// Serial is the serial console log.
	Serial string
	// Started is when QEMU was started (power-on).
	Started time.Time
	// Args is the QEMU command line (run in the bridge namespace).
	Args []string
	*Proc

	dir string

	mu   sync.Mutex
	seen map[string]time.Duration
}

// StartVM creates the disks and taps of a VM and powers it on under QEMU
// (TCG) inside the bridge namespace, PXE-booting from its first NIC. QEMU
// is killed at cleanup.
func StartVM(tb TB, net *Network, cfg VMConfig) *VM {
	tb.Helper()
	vm := PrepareVM(tb, net, cfg)
	vm.Started = time.Now()
	vm.Proc = StartProc(tb, "qemu "+vm.Config.Name, net.NS, filepath.Join(vm.dir, vm.Config.Name+".qemu.log"), vm.Args...)
	vm.Watch(tb)
	return vm
}

// PrepareVM creates the disks and taps of a VM and its QEMU command line
// (vm.Args, to run inside the bridge namespace) without starting it: a
// simulated BMC powers it on (see test/redfish). Call Watch once it runs.
func PrepareVM(tb TB, net *Network, cfg VMConfig) *VM {
	tb.Helper()
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 1536
	}
	if cfg.NICs == 0 {
		cfg.NICs = 1
	}
	net.vms++
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("vm%d", net.vms)
	}
	dir := tb.TempDir()
	vm := &VM{Config: cfg, Serial: filepath.Join(dir, cfg.Name+".serial.log"), dir: dir}
	args := []string{"qemu-system-x86_64", "-name", cfg.Name, "-machine", "q35", "-accel", "tcg", "-cpu", "max",
		"-smp", strconv.Itoa(cfg.CPUs), "-m", strconv.Itoa(cfg.MemoryMiB),
		"-display", "none", "-monitor", "none", "-serial", "file:" + vm.Serial,
		"-device", "virtio-rng-pci"}
	if !cfg.Reboot {
		args = append(args, "-no-reboot")
	}
	if cfg.UEFI {
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(OVMFVars, vars); err != nil {
			tb.Fatalf("ovmf vars: %v", err)
		}
		args = append(args, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	} else {
		args = append(args, "-boot", "n")
	}
	for i, size := range cfg.Disks {
		p := filepath.Join(dir, fmt.Sprintf("disk%d.raw", i))
		if err := sparseFile(p, size); err != nil {
			tb.Fatalf("disk %d: %v", i, err)
		}
		id := fmt.Sprintf("d%d", i)
		args = append(args, "-drive", "file="+p+",if=none,format=raw,id="+id,
			"-device", fmt.Sprintf("virtio-blk-pci,drive=%s,serial=%s-%s", id, cfg.Name, id))
	}
	for i := 0; i < cfg.NICs; i++ {
		mac := fmt.Sprintf("52:54:00:%02x:%02x:%02x", net.N, net.vms, i+1)
		vm.MACs = append(vm.MACs, mac)
		tap := net.AddTap()
		dev := fmt.Sprintf("virtio-net-pci,netdev=n%d,mac=%s", i, mac)
		if i == 0 {
			dev += ",bootindex=1"
			if cfg.FirmwarePXE {
				// No iPXE option ROM: the firmware's own PXE client boots,
				// and chain-loads iPXE (ipxe.efi or undionly.kpxe) over TFTP.
				dev += ",romfile="
			}
		} else {
			dev += ",romfile="
		}
		args = append(args, "-netdev", fmt.Sprintf("tap,id=n%d,ifname=%s,script=no,downscript=no", i, tap), "-device", dev)
	}
	vm.Args = args
	return vm
}

// Watch logs the VM's serial-console milestones until the end of the test
// and prints the console's tail if the test failed.
func (vm *VM) Watch(tb TB) {
	tb.Helper()
	cfg := vm.Config
	stop, done := make(chan struct{}), make(chan struct{})
	go vm.watch(tb, stop, done)
	tb.Cleanup(func() { close(stop); <-done })
	tb.Cleanup(func() {
		if tb.Failed() {
			b, _ := os.ReadFile(vm.Serial)
			tb.Logf("serial console of %s (tail):\n%s", cfg.Name, tail(b, 40))
			if vm.Proc != nil {
				tb.Logf("qemu output of %s:\n%s", cfg.Name, tail(vm.Output(), 10))
			}
		}
	})
}

// watch logs serial-console milestones, with the time since power-on, as
// they appear, until stop is closed.
func (vm *VM) watch(tb TB, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		serial := vm.SerialLog()
		for _, m := range Milestones {
			vm.mu.Lock()
			_, ok := vm.seen[m.Name]
			if !ok && m.RE.Match(serial) {
				if vm.seen == nil {
					vm.seen = map[string]time.Duration{}
				}
				at := time.Since(vm.Started).Round(100 * time.Millisecond)
				vm.seen[m.Name] = at
				tb.Logf("%s: %-18s after %v", vm.Config.Name, m.Name, at)
			}
			vm.mu.Unlock()
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// Milestones returns the milestones seen so far and when.
func (vm *VM) Milestones() map[string]time.Duration {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return maps.Clone(vm.seen)
}

// SerialLog returns the serial console output so far.
func (vm *VM) SerialLog() []byte {
	b, _ := os.ReadFile(vm.Serial)
	return b
}

func sparseFile(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
