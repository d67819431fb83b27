// Package vmtest runs a package's Go tests inside a QEMU virtual machine
// booted with the discovery image's Debian kernel, so that code depending on
// kernel features the build host lacks (md software RAID, bonding, 802.1Q
// VLANs) is tested for real.
//
// Run compiles the package's tests (go test -c -tags vmtest, static),
// appends the test binary to the discovery image's initramfs as u-root's
// uinit and boots the VM under TCG with the requested virtio disks and
// NICs. Inside the VM, the package's TestMain calls guest.Main
// (underlay.dev/test/vmtest/guest), which mounts what is missing, loads the
// image's kernel modules, runs the tests, prints a result marker on the
// serial console and powers the VM off. Run relays the in-VM test output
// through tb.Log and fails unless the in-VM tests passed.
//
// Run needs root; as root it installs what is missing (qemu-system-x86)
// and builds the discovery image (discovery-image/build.sh) when
// discovery-image/out has none. It skips only when not root.
package vmtest
