package classify

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func testRules() []*underlayv1.Rule {
	return []*underlayv1.Rule{
		{Name: "nvme", Priority: 20, Match: `nvmes > 0`, Profiles: []string{"fast-disks", "nvme"}, Role: "storage", Labels: map[string]string{"disk": "nvme"}},
		{Name: "big-workers", Priority: 10, Match: `disks >= 2 && memory_gib >= 8 && !is_vm`, Labels: map[string]string{"tier": "big"}, Profiles: []string{"fast-disks"}, Role: "worker"},
		{Name: "vms", Priority: 10, Match: `is_vm`, Labels: map[string]string{"tier": "vm"}, Profiles: []string{"base", "virt"}, Role: "vm"},
		{Name: "all", Match: `true`, Labels: map[string]string{"tier": "any", "site": "ams"}, Profiles: []string{"base", ""}},
		{Name: "broken", Priority: 5, Match: `dsks > 1`, Role: "never"},
		{Name: "rack-r12", Priority: -1, Match: `label.rack == "r12"`, Labels: map[string]string{"rack-group": "east"}},
		// Rules see the machine as it was: "big" set above is not visible.
		{Name: "sees-no-rule-labels", Priority: 30, Match: `label.tier == "big"`, Role: "chained"},
		nil,
	}
}

const brokenErr = `rule "broken": match: column 1: unknown fact "dsks" (did you mean "disks"?); known facts: ` +
	"arch, bios_vendor, bios_version, boot_mode, cloud, cores, cpu_flags, cpu_model, cpu_vendor, cpus, disk_gib, disk_models, disks, " +
	"gpu_vendors, gpus, hdds, hostname, hypervisor, id, is_vm, mac, macs, memory_gib, nic_drivers, nics, nvmes, os, product, role, " +
	"serial, sockets, ssds, uuid, vendor"

func TestDecide(t *testing.T) {
	bmM, bmInv := testServer(t)
	vmM, vmInv := testVM(t)
	tests := []struct {
		name    string
		rules   []*underlayv1.Rule
		m       *underlayv1.Machine
		inv     *underlayv1.Inventory
		want    Decision
		wantErr string
	}{
		{
			name:  "server",
			rules: testRules(),
			m:     bmM, inv: bmInv,
			want: Decision{
				Rules:    []string{"rack-r12", "all", "big-workers", "nvme"},
				Labels:   map[string]string{"rack-group": "east", "tier": "big", "site": "ams", "disk": "nvme"},
				Profiles: []string{"base", "fast-disks", "nvme"},
				Role:     "worker",
			},
			wantErr: brokenErr,
		},
		{
			name:  "vm",
			rules: testRules(),
			m:     vmM, inv: vmInv,
			want: Decision{
				Rules:    []string{"all", "vms"},
				Labels:   map[string]string{"tier": "vm", "site": "ams"},
				Profiles: []string{"base", "virt"},
				Role:     "vm",
			},
			wantErr: brokenErr,
		},
		{
			name:  "no inventory",
			rules: testRules()[:3],
			m:     &underlayv1.Machine{Id: "m-1"},
			want:  Decision{Labels: map[string]string{}},
		},
		{
			name: "no rules",
			m:    bmM, inv: bmInv,
			want: Decision{Labels: map[string]string{}},
		},
		{
			name: "same priority orders by name, role from the first that has one",
			rules: []*underlayv1.Rule{
				{Name: "b", Priority: 1, Match: "true", Labels: map[string]string{"x": "b"}, Role: "from-b"},
				{Name: "a", Priority: 1, Match: "true", Labels: map[string]string{"x": "a"}},
				{Name: "c", Priority: 1, Match: "true", Labels: map[string]string{"x": "c"}, Role: "from-c"},
			},
			m:    bmM,
			want: Decision{Rules: []string{"a", "b", "c"}, Labels: map[string]string{"x": "c"}, Role: "from-b"},
		},
		{
			name: "several broken rules are all reported, in order",
			rules: []*underlayv1.Rule{
				{Name: "z", Match: "disks >"},
				{Name: "y", Match: ""},
				{Name: "ok", Priority: 2, Match: "disks == 5", Profiles: []string{"p"}},
				{Name: "x", Priority: 1, Match: `hostname == 1`},
			},
			m: bmM, inv: bmInv,
			want: Decision{Rules: []string{"ok"}, Labels: map[string]string{}, Profiles: []string{"p"}},
			wantErr: `rule "y": match: column 1: expected expression, found end of input` + "\n" +
				`rule "z": match: column 8: expected expression, found end of input` + "\n" +
				`rule "x": match: column 10: cannot compare hostname (string) with 1 (number)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decide(tt.rules, tt.m, tt.inv)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decision (-want +got):\n%s", diff)
			}
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
				if !errors.Is(err, ErrSyntax) {
					t.Errorf("error does not wrap ErrSyntax: %v", err)
				}
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecideDeterministic: the order rules come in never changes the
// result, and Decide leaves its inputs alone.
func TestDecideDeterministic(t *testing.T) {
	m, inv := testServer(t)
	rules := testRules()
	want, wantErr := Decide(rules, m, inv)
	before := make([]*underlayv1.Rule, len(rules))
	for i, r := range rules {
		before[i] = proto.Clone(r).(*underlayv1.Rule)
	}
	for rot := range len(rules) {
		for _, reverse := range []bool{false, true} {
			perm := append(slices.Clone(rules[rot:]), rules[:rot]...)
			if reverse {
				slices.Reverse(perm)
			}
			got, err := Decide(perm, m, inv)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rotation %d reverse %v: Decision differs (-first +this):\n%s", rot, reverse, diff)
			}
			if err.Error() != wantErr.Error() {
				t.Errorf("rotation %d reverse %v: error %q, want %q", rot, reverse, err, wantErr)
			}
		}
	}
	for i, r := range rules {
		if !proto.Equal(before[i], r) {
			t.Errorf("rule %d was modified: %v", i, r)
		}
	}
	if rules[0].GetName() != "nvme" {
		t.Errorf("Decide reordered its input: first rule is now %q", rules[0].GetName())
	}
}

// TestDecideDoesNotAlias: changing the Decision does not change the rules.
func TestDecideDoesNotAlias(t *testing.T) {
	m, inv := testServer(t)
	rules := testRules()
	d, _ := Decide(rules, m, inv)
	d.Labels["tier"] = "changed"
	d.Profiles[0] = "changed"
	if rules[3].GetLabels()["tier"] != "any" || rules[3].GetProfiles()[0] != "base" {
		t.Errorf("rule changed through the Decision: %v", rules[3])
	}
}

// docRules reads the rules of the "## Examples" section of docs/classify.md.
func docRules(tb testing.TB) []*underlayv1.Rule {
	tb.Helper()
	doc, err := os.ReadFile("../../../docs/classify.md")
	if err != nil {
		tb.Fatalf("read the user doc: %v", err)
	}
	_, examples, ok := strings.Cut(string(doc), "\n## Examples\n")
	if !ok {
		tb.Fatal(`docs/classify.md has no "## Examples" section`)
	}
	_, block, _ := strings.Cut(examples, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	var rules []*underlayv1.Rule
	for _, part := range strings.Split(block, "\n---\n") {
		var r struct {
			Kind     string            `yaml:"kind"`
			Name     string            `yaml:"name"`
			Match    string            `yaml:"match"`
			Priority int32             `yaml:"priority"`
			Labels   map[string]string `yaml:"labels"`
			Profiles []string          `yaml:"profiles"`
			Role     string            `yaml:"role"`
		}
		if err := yaml.Unmarshal([]byte(part), &r); err != nil {
			tb.Fatalf("example rule %q: %v", part, err)
		}
		if r.Kind != "Rule" {
			tb.Fatalf("example %q has kind %q", part, r.Kind)
		}
		rules = append(rules, &underlayv1.Rule{Name: r.Name, Match: r.Match, Priority: r.Priority, Labels: r.Labels, Profiles: r.Profiles, Role: r.Role})
	}
	return rules
}

// TestDocExamples checks the outcome docs/classify.md describes for its
// example rules.
func TestDocExamples(t *testing.T) {
	rules := docRules(t)
	if len(rules) != 6 {
		t.Fatalf("found %d example rules, want 6", len(rules))
	}
	for _, r := range rules {
		if _, err := Parse(r.GetMatch()); err != nil {
			t.Errorf("example rule %s: %v", r.GetName(), err)
		}
	}
	storage, storageInv := testServer(t)
	storageInv.Disks = nil
	for i := range 6 {
		storageInv.Disks = append(storageInv.Disks, &underlayv1.BlockDevice{
			Name: fmt.Sprintf("nvme%dn1", i), SizeBytes: 1_920_383_410_176, DriveType: "ssd", Controller: "nvme",
		})
	}
	for _, n := range storageInv.Nics {
		if n.Driver != "" {
			n.Driver = "mlx5_core"
		}
	}
	storageInv.Gpus = nil
	vm, vmInv := testVM(t)
	tests := []struct {
		name string
		m    *underlayv1.Machine
		inv  *underlayv1.Inventory
		want Decision
	}{
		{
			name: "storage box in r12",
			m:    storage, inv: storageInv,
			want: Decision{
				Rules:    []string{"everything", "rack-r12", "storage"},
				Labels:   map[string]string{"site": "ams1", "tier": "storage", "row": "east"},
				Profiles: []string{"base", "fast-disks", "rdma"},
				Role:     "ceph-osd",
			},
		},
		{
			name: "qemu vm",
			m:    vm, inv: vmInv,
			want: Decision{
				Rules:    []string{"everything", "lab-vms"},
				Labels:   map[string]string{"site": "ams1", "tier": "test"},
				Profiles: []string{"base"},
				Role:     "test",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decide(rules, tt.m, tt.inv)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decision (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("first example", func(t *testing.T) {
		doc, _ := os.ReadFile("../../../docs/classify.md")
		if !strings.Contains(string(doc), "match: 'disks >= 2 && memory_gib >= 8 && !is_vm'") {
			t.Fatal("the first example changed; update this test")
		}
		e, err := Parse(`disks >= 2 && memory_gib >= 8 && !is_vm`)
		if err != nil {
			t.Fatal(err)
		}
		m, inv := testServer(t)
		if !e.Eval(FactsOf(m, inv)) {
			t.Error("the first example does not match a bare-metal server with 5 disks and 256 GiB")
		}
	})
}
