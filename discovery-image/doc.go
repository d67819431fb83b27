// Package discoveryimage holds the build of the Underlay discovery image
// (build.sh: Debian kernel plus a u-root initramfs with underlay-agent as
// uinit) and its boot test under QEMU. It has no Go API; tools.go pins the
// u-root builder in go.mod.
package discoveryimage
