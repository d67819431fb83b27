package wipe

import (
	"crypto/rand"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
)

// Helpers for the tests that attach loop devices to sparse files (root).

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: attaches loop devices, writes to them and mounts filesystems")
	}
}

// requireTools makes sure the commands exist, installing their Debian
// packages when they are missing (root only), or skips.
func requireTools(t testing.TB, tools map[string]string) {
	t.Helper()
	var missing []string
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil && !slices.Contains(missing, pkg) {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return
	}
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq"}, missing...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("needs Debian packages %v, and apt-get install failed: %v\n%s", missing, err, out)
	}
	for tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s, not found after installing %v", tool, missing)
		}
	}
}

var tools = map[string]string{"losetup": "mount", "mount": "mount", "mkfs.ext4": "e2fsprogs", "blkid": "util-linux", "wipefs": "util-linux"}

func command(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// image creates a sparse file of size bytes with gpt, when given, written
// to it, and an ext4 filesystem (labelled pN) in each partition.
func image(t testing.TB, size int64, gpt []gptPart) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if gpt != nil {
		writeGPT(t, f, size, gpt)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for i, p := range gpt {
		// A loop device over the partition's extent stands in for the
		// partition: this host's kernel may not read partition tables.
		part := strings.TrimSpace(command(t, "losetup", "--find", "--show",
			"--offset", itoa(p.first*lba), "--sizelimit", itoa(p.size()), img))
		mkfs(t, part, "p"+itoa(uint64(i+1)))
		command(t, "losetup", "-d", part)
	}
	return img
}

// attach attaches img to a loop device and detaches it at the end of the
// test.
func attach(t testing.TB, img string, partscan bool) string {
	t.Helper()
	args := []string{"--find", "--show"}
	if partscan {
		args = append(args, "--partscan")
	}
	dev := strings.TrimSpace(command(t, "losetup", append(args, img)...))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}

// sysWithParts writes a /sys/block tree with dev's real entry plus the
// partitions of parts, as a kernel that reads GPT would show them.
func sysWithParts(t testing.TB, dev string, parts []gptPart) string {
	t.Helper()
	name := filepath.Base(dev)
	read := func(file string) string {
		b, err := os.ReadFile(filepath.Join("/sys/block", name, file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	sectors, err := strconv.ParseUint(read("size"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	d := fakeDisk{name: name, dev: read("dev"), sectors: sectors}
	for i, p := range parts {
		d.parts = append(d.parts, fakePart{name: partName(dev, i+1), dev: "259:" + itoa(uint64(900+i)), start: p.first, sectors: p.last - p.first + 1})
	}
	return fakeSys(t, d)
}

func partName(dev string, n int) string {
	return filepath.Base(dev) + "p" + itoa(uint64(n))
}

func mkfs(t testing.TB, dev, label string) {
	t.Helper()
	command(t, "mkfs.ext4", "-q", "-F", "-L", label, dev)
}

// mountAt mounts dev on a new directory and unmounts it at the end.
func mountAt(t testing.TB, dev string) string {
	t.Helper()
	dir := t.TempDir()
	command(t, "mount", "-t", "ext4", dev, dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// probe returns what blkid finds on dev by probing it ("" for nothing),
// within the extent of p when given.
func probe(t testing.TB, dev string, p *gptPart) string {
	t.Helper()
	args := []string{"-p", "-o", "export"}
	if p != nil {
		args = append(args, "-O", itoa(p.first*lba), "-S", itoa(p.size()))
	}
	out, err := exec.Command("blkid", append(args, dev)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
		return ""
	}
	if err != nil {
		t.Fatalf("blkid %v %s: %v\n%s", args, dev, err, out)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "TYPE=") || strings.HasPrefix(l, "PTTYPE=") || strings.HasPrefix(l, "LABEL=") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, " ")
}

// signatures lists what wipefs sees on dev, as "offset type" pairs.
func signatures(t testing.TB, dev string) []string {
	t.Helper()
	out := command(t, "wipefs", "--noheadings", "--output", "OFFSET,TYPE", dev)
	var sigs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			sigs = append(sigs, f[0]+" "+f[1])
		}
	}
	return sigs
}

// gptPart is a partition of a test GPT, in 512-byte sectors (last inclusive).
type gptPart struct {
	first, last uint64
	name        string
}

// size is the partition's size in bytes.
func (p gptPart) size() uint64 { return (p.last - p.first + 1) * lba }

const lba = 512

// linuxFS is the "Linux filesystem" partition type GUID in on-disk order.
var linuxFS = []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}

func gptEntries(parts []gptPart) []byte {
	entries := make([]byte, 128*128)
	for i, p := range parts {
		e := entries[i*128 : (i+1)*128]
		copy(e[0:16], linuxFS)
		rand.Read(e[16:32])
		binary.LittleEndian.PutUint64(e[32:], p.first)
		binary.LittleEndian.PutUint64(e[40:], p.last)
		for j, c := range utf16.Encode([]rune(p.name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	return entries
}

var diskGUID = func() []byte { b := make([]byte, 16); rand.Read(b); return b }()

func gptHeader(size int64, current, backup, entriesAt uint64, entries []byte) []byte {
	last := uint64(size/lba) - 1
	h := make([]byte, lba)
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], current)
	binary.LittleEndian.PutUint64(h[32:], backup)
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], last-33)
	copy(h[56:72], diskGUID)
	binary.LittleEndian.PutUint64(h[72:], entriesAt)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	return h
}

// gptLayout returns the first 34 sectors (protective MBR, header, entries)
// and the last 33 (entries, backup header) of a GPT disk of size bytes.
func gptLayout(size int64, parts []gptPart) (head, tail []byte) {
	last := uint64(size/lba) - 1
	entries := gptEntries(parts)
	mbr := make([]byte, lba)
	pe := mbr[446:462]
	pe[1], pe[2], pe[3] = 0x00, 0x02, 0x00
	pe[4] = 0xee
	pe[5], pe[6], pe[7] = 0xff, 0xff, 0xff
	binary.LittleEndian.PutUint32(pe[8:], 1)
	binary.LittleEndian.PutUint32(pe[12:], uint32(min(last, 0xffffffff)))
	mbr[510], mbr[511] = 0x55, 0xaa
	head = slices.Concat(mbr, gptHeader(size, 1, last, 2, entries), entries)
	tail = slices.Concat(entries, gptHeader(size, last, 1, last-32, entries))
	return head, tail
}

// writeGPT writes a GPT to w, an image file or a device of size bytes.
func writeGPT(t testing.TB, w io.WriterAt, size int64, parts []gptPart) {
	t.Helper()
	head, tail := gptLayout(size, parts)
	if _, err := w.WriteAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(tail, size-int64(len(tail))); err != nil {
		t.Fatal(err)
	}
}
