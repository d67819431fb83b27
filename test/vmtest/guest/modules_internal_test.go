package guest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestModuleOrder(t *testing.T) {
	list := "# modules\nvirtio_net\nbonding max_bonds=0\nraid1\nmd-mod\nnosuch\ncrc32c_generic # built in\n"
	dep := `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/net/bonding/bonding.ko.xz: kernel/net/tls/tls.ko
kernel/net/tls/tls.ko:
kernel/drivers/md/raid1.ko: kernel/drivers/md/md-mod.ko
kernel/drivers/md/md-mod.ko:
`
	want, err := parseList(strings.NewReader(list))
	if err != nil {
		t.Fatalf("parseList: %v", err)
	}
	paths, deps, err := parseDep(strings.NewReader(dep))
	if err != nil {
		t.Fatalf("parseDep: %v", err)
	}
	if paths["md_mod"] != "kernel/drivers/md/md-mod.ko" || paths["bonding"] != "kernel/drivers/net/bonding/bonding.ko.xz" {
		t.Errorf("paths = %v", paths)
	}
	got, missing := order(want, paths, deps, map[string]bool{"crc32c_generic": true})
	wantOrder := []module{
		{name: "failover"}, {name: "net_failover"}, {name: "virtio_net"},
		{name: "tls"}, {name: "bonding", params: "max_bonds=0"},
		{name: "md_mod"}, {name: "raid1"}, {name: "crc32c_generic"},
	}
	if d := cmp.Diff(wantOrder, got, cmp.AllowUnexported(module{})); d != "" {
		t.Errorf("order (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"nosuch"}, missing); d != "" {
		t.Errorf("missing (-want +got):\n%s", d)
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := parseList(strings.NewReader("foo/bar.ko\n")); err == nil {
		t.Error("parseList accepted a path")
	}
	if _, _, err := parseDep(strings.NewReader("no colon here\n")); err == nil {
		t.Error("parseDep accepted a line without a colon")
	}
}

func TestMounted(t *testing.T) {
	mounts := []byte("proc /proc proc rw 0 0\nsysfs /sys sysfs rw 0 0\n")
	if !mounted(mounts, "/sys") || mounted(mounts, "/run") {
		t.Errorf("mounted: /sys %v, /run %v", mounted(mounts, "/sys"), mounted(mounts, "/run"))
	}
}
