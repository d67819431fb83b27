package bootenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func openTestdata(t testing.TB, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func names(reqs []ModuleRequest) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Name)
	}
	return out
}

func TestModuleName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kernel/drivers/md/md-mod.ko", "md_mod"},
		{"kernel/drivers/net/virtio_net.ko.xz", "virtio_net"},
		{"crc32c-intel.ko.zst", "crc32c_intel"},
		{"8021q", "8021q"},
		{"virtio-net", "virtio_net"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := moduleName(tc.in); got != tc.want {
				t.Errorf("moduleName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseModulesDep(t *testing.T) {
	deps, err := parseModulesDep(openTestdata(t, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want depEntry
	}{
		{"virtio_net", depEntry{Path: "kernel/drivers/net/virtio_net.ko", Deps: []string{"net_failover", "failover", "virtio", "virtio_ring"}}},
		{"md_mod", depEntry{Path: "kernel/drivers/md/md-mod.ko"}},
		{"8021q", depEntry{Path: "kernel/net/8021q/8021q.ko", Deps: []string{"garp", "stp", "mrp", "llc"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, deps[tc.name]); diff != "" {
				t.Errorf("entry (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("malformed", func(t *testing.T) {
		for _, in := range []string{"no colon here\n", ": kernel/lib/x.ko\n"} {
			if _, err := parseModulesDep(strings.NewReader(in)); err == nil {
				t.Errorf("parseModulesDep(%q) succeeded, want an error", in)
			}
		}
	})
}

func TestParseModuleList(t *testing.T) {
	got, err := parseModuleList(openTestdata(t, "modules"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ModuleRequest{
		{Name: "virtio_net"}, {Name: "e1000"}, {Name: "raid456"},
		{Name: "bonding", Params: "max_bonds=0"}, {Name: "sd_mod"}, {Name: "nosuch_driver"}, {Name: "8021q"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("module list (-want +got):\n%s", diff)
	}
	for _, in := range []string{"kernel/x/../y=z\n", "a=b\n"} {
		t.Run("rejects "+in, func(t *testing.T) {
			if _, err := parseModuleList(strings.NewReader(in)); err == nil {
				t.Errorf("parseModuleList(%q) succeeded, want an error", in)
			}
		})
	}
}

func TestLoadOrder(t *testing.T) {
	deps, err := parseModulesDep(openTestdata(t, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := parseNameSet(openTestdata(t, "modules.builtin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		reqs        []ModuleRequest
		want        []string
		wantMissing []string
	}{
		{
			name: "virtio_net after its dependencies",
			reqs: []ModuleRequest{{Name: "virtio_net"}},
			want: []string{"failover", "net_failover", "virtio_ring", "virtio", "virtio_net"},
		},
		{
			name: "raid456 pulls the async_tx stack",
			reqs: []ModuleRequest{{Name: "raid456"}},
			want: []string{"async_tx", "async_memcpy", "xor", "async_xor", "raid6_pq", "async_pq",
				"async_raid6_recov", "md_mod", "libcrc32c", "raid456"},
		},
		{
			name: "shared dependencies load once",
			reqs: []ModuleRequest{{Name: "raid1"}, {Name: "raid456"}, {Name: "md_mod"}},
			want: []string{"md_mod", "raid1", "async_tx", "async_memcpy", "xor", "async_xor", "raid6_pq",
				"async_pq", "async_raid6_recov", "libcrc32c", "raid456"},
		},
		{
			name:        "unknown modules are missing, built-in ones stay",
			reqs:        []ModuleRequest{{Name: "nosuch"}, {Name: "sd_mod"}, {Name: "e1000"}},
			want:        []string{"sd_mod", "e1000"},
			wantMissing: []string{"nosuch"},
		},
		{
			name: "8021q",
			reqs: []ModuleRequest{{Name: "8021q"}},
			want: []string{"llc", "stp", "garp", "mrp", "8021q"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order, missing := loadOrder(tc.reqs, deps, builtin)
			if diff := cmp.Diff(tc.want, names(order)); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantMissing, missing); diff != "" {
				t.Errorf("missing (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("params follow the requested module only", func(t *testing.T) {
		order, _ := loadOrder([]ModuleRequest{{Name: "bonding", Params: "max_bonds=0"}}, deps, builtin)
		want := []ModuleRequest{{Name: "tls"}, {Name: "bonding", Params: "max_bonds=0"}}
		if diff := cmp.Diff(want, order); diff != "" {
			t.Errorf("order (-want +got):\n%s", diff)
		}
	})

	t.Run("dependency cycle terminates", func(t *testing.T) {
		cyc := map[string]depEntry{"a": {Path: "a.ko", Deps: []string{"b"}}, "b": {Path: "b.ko", Deps: []string{"a"}}}
		order, _ := loadOrder([]ModuleRequest{{Name: "a"}}, cyc, nil)
		if diff := cmp.Diff([]string{"b", "a"}, names(order)); diff != "" {
			t.Errorf("order (-want +got):\n%s", diff)
		}
	})
}

func TestParseMounts(t *testing.T) {
	got, err := parseMounts(openTestdata(t, "mounts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target string
		want   bool
	}{
		{"/proc", true}, {"/sys", true}, {"/dev", true}, {"/run", false},
		{"/mnt/with space", true}, {"/mnt/with", false},
	} {
		t.Run(tc.target, func(t *testing.T) {
			if got[tc.target] != tc.want {
				t.Errorf("mounted[%q] = %v, want %v", tc.target, got[tc.target], tc.want)
			}
		})
	}
}
