package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"underlay.dev/pkg/netconf"
)

const oldResolv = "# from DHCP\nnameserver 10.0.2.3\nsearch lab.example\n"

// machine is a host as the PXE image leaves it: eth0 up with a DHCP
// address and default route, eth1 down, a bridge the config does not
// manage.
func machine() *State {
	return &State{
		Links: []Link{
			{Index: 1, Name: "lo", Kind: "loopback", MAC: "00:00:00:00:00:00", MTU: 65536, Up: true,
				Addrs: []Addr{{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Flags: ifaFPermanent, Scope: 254}}},
			{Index: 2, Name: "eth0", Kind: "device", MAC: "52:54:00:76:00:01", PermMAC: "52:54:00:76:00:01", MTU: 1500, Up: true,
				Addrs: []Addr{
					{Prefix: netip.MustParsePrefix("10.0.2.15/24"), Broadcast: netip.MustParseAddr("10.0.2.255"), ValidLft: 3000, PreferredLft: 3000},
					{Prefix: netip.MustParsePrefix("fe80::2/64"), Flags: ifaFPermanent, Scope: 253},
				}},
			{Index: 3, Name: "eth1", Kind: "device", MAC: "52:54:00:76:00:02", PermMAC: "52:54:00:76:00:02", MTU: 1500},
			{Index: 4, Name: "br9", Kind: "bridge", MAC: "02:00:00:00:09:09", MTU: 1500, Up: true,
				Addrs: []Addr{{Prefix: netip.MustParsePrefix("192.168.9.1/24"), Flags: ifaFPermanent}}},
		},
		Routes: []Route{
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("10.0.2.2"), Dev: "eth0", Protocol: 16, Priority: 1024, Table: 254, Type: 1},
			{Dst: netip.MustParsePrefix("192.168.10.0/24"), Gw: netip.MustParseAddr("192.168.9.254"), Dev: "br9", Protocol: 3, Table: 254, Type: 1},
		},
	}
}

// bondVLAN is the resolved docs/network.md example.
const bondVLAN = `{
  "links": [
    {"id": "nic0", "type": "phy", "ethernet_mac_address": "52:54:00:76:00:01", "name": "eth0"},
    {"id": "nic1", "type": "phy", "ethernet_mac_address": "52:54:00:76:00:02", "name": "eth1"},
    {"id": "bond0", "type": "bond", "bond_links": ["nic0", "nic1"], "bond_mode": "active-backup", "mtu": 9000},
    {"id": "bond0.100", "type": "vlan", "vlan_link": "bond0", "vlan_id": 100}
  ],
  "networks": [
    {"id": "prod", "type": "ipv4", "link": "bond0.100", "ip_address": "10.100.0.50/24", "subnet": "prod-100",
     "routes": [{"network": "10.200.0.0", "netmask": "255.255.0.0", "gateway": "10.100.0.254"},
                {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.100.0.1"}],
     "dns_nameservers": ["10.100.0.3"]}
  ],
  "services": [{"type": "dns", "address": "10.100.0.2"}]
}`

func parse(tb testing.TB, s string) *netconf.Data {
	tb.Helper()
	d, err := netconf.Parse([]byte(s))
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	return d
}

type rig struct {
	k      *fakeKernel
	d      *driver
	resolv string
	before *State
	dhcp   []string
}

func newRig(tb testing.TB, st *State) *rig {
	tb.Helper()
	r := &rig{k: newFakeKernel(st), resolv: filepath.Join(tb.TempDir(), "resolv.conf")}
	if err := os.WriteFile(r.resolv, []byte(oldResolv), 0o644); err != nil {
		tb.Fatal(err)
	}
	r.d = newDriver(Config{ResolvConf: r.resolv, CheckTimeout: 100 * time.Millisecond,
		DHCP: func(_ context.Context, iface string) error {
			r.dhcp = append(r.dhcp, iface)
			l := r.k.st.link(iface)
			l.Addrs = append(l.Addrs, Addr{Prefix: netip.MustParsePrefix("10.0.7.9/24"), ValidLft: 600, PreferredLft: 600})
			return nil
		}}, r.k)
	r.before = r.state(tb)
	return r
}

func (r *rig) state(tb testing.TB) *State {
	tb.Helper()
	st, err := r.d.snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// sameState compares hosts; the order of addresses does not matter, and
// neither do the indices of bonds and VLANs (a recreated link gets a new one).
func sameState(tb testing.TB, want, got *State) {
	tb.Helper()
	norm := func(s *State) *State {
		s = s.clone()
		for i := range s.Links {
			if k := s.Links[i].Kind; k == "bond" || k == "vlan" {
				s.Links[i].Index = 0
			}
		}
		return s
	}
	opts := cmp.Options{cmpopts.SortSlices(func(a, b Addr) bool { return a.Prefix.String() < b.Prefix.String() }),
		cmpopts.SortSlices(func(a, b Link) bool { return a.Name < b.Name }), cmpopts.EquateEmpty(),
		cmpopts.SortSlices(func(a, b Route) bool { return a.String() < b.String() }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}
	if diff := cmp.Diff(norm(want), norm(got), opts); diff != "" {
		tb.Errorf("host state (-want +got):\n%s", diff)
	}
}

func TestApplyBondVLAN(t *testing.T) {
	r := newRig(t, machine())
	var checks int
	check := func(context.Context) error { checks++; return nil }
	var log bytes.Buffer
	rep, err := r.d.Apply(context.Background(), parse(t, bondVLAN), check, &log)
	if err != nil {
		t.Fatalf("Apply: %v\n%s", err, log.String())
	}
	wantSteps := []string{
		"delete route default via 10.0.2.2 dev eth0 metric 1024",
		"delete address 10.0.2.15/24 from eth0",
		"create bond bond0 (active-backup, miimon 100, mtu 9000)",
		"enslave eth0 to bond0",
		"enslave eth1 to bond0",
		"create vlan bond0.100 (id 100 on bond0)",
		"set eth0 up",
		"set eth1 up",
		"set bond0 up",
		"set bond0.100 up",
		"add address 10.100.0.50/24 to bond0.100",
		"add route 10.200.0.0/16 via 10.100.0.254 dev bond0.100",
		"add route default via 10.100.0.1 dev bond0.100",
		"write resolv.conf (nameservers 10.100.0.2, 10.100.0.3)",
		"check passed",
	}
	var steps []string
	for _, l := range rep.Lines {
		if !strings.HasPrefix(l, "config: ") {
			steps = append(steps, l)
		}
	}
	if diff := cmp.Diff(wantSteps, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if !rep.Changed || checks != 1 {
		t.Errorf("Changed = %v, checks = %d; want true, 1", rep.Changed, checks)
	}
	if !strings.Contains(log.String(), "config: bond0.100: vlan 100 on bond0, 10.100.0.50/24") {
		t.Errorf("log does not show the config summary:\n%s", log.String())
	}
	got := r.state(t)
	want := machine()
	eth0, eth1 := want.link("eth0"), want.link("eth1")
	eth0.Master, eth0.MTU, eth0.Addrs = "bond0", 9000, nil
	eth1.Master, eth1.MTU, eth1.Up, eth1.MAC = "bond0", 9000, true, "52:54:00:76:00:01"
	want.Links = append(want.Links,
		Link{Name: "bond0", Kind: "bond", MAC: "52:54:00:76:00:01", MTU: 9000, Up: true,
			Bond: &Bond{Mode: "active-backup", Miimon: 100, HashPolicy: "layer2"}},
		Link{Name: "bond0.100", Kind: "vlan", MAC: "52:54:00:76:00:01", MTU: 9000, Up: true, VLAN: &VLAN{Parent: "bond0", ID: 100},
			Addrs: []Addr{{Prefix: netip.MustParsePrefix("10.100.0.50/24"), Broadcast: netip.MustParseAddr("10.100.0.255"), Flags: ifaFPermanent}}})
	want.Routes = []Route{want.Routes[1],
		{Dst: netip.MustParsePrefix("10.200.0.0/16"), Gw: netip.MustParseAddr("10.100.0.254"), Dev: "bond0.100", Protocol: protoStatic, Table: 254, Type: 1},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("10.100.0.1"), Dev: "bond0.100", Protocol: protoStatic, Table: 254, Type: 1}}
	want.Resolv = &File{Data: []byte("# Written by underlay-agent from the machine's network config.\n" +
		"nameserver 10.100.0.2\nnameserver 10.100.0.3\nsearch lab.example\n")}
	sameState(t, want, got)

	t.Run("again is a no-op", func(t *testing.T) {
		calls := len(r.k.calls)
		rep, err := r.d.Apply(context.Background(), parse(t, bondVLAN), check, nil)
		if err != nil {
			t.Fatalf("Apply again: %v", err)
		}
		if diff := cmp.Diff(Report{Lines: []string{"network configuration already in place"}}, rep); diff != "" {
			t.Errorf("report (-want +got):\n%s", diff)
		}
		if len(r.k.calls) != calls || checks != 1 {
			t.Errorf("a no-op made %d kernel calls and %d checks", len(r.k.calls)-calls, checks-1)
		}
	})

	t.Run("back to plain eth0 with dhcp", func(t *testing.T) {
		d := parse(t, `{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:76:00:01"},
			{"id":"b","type":"phy","ethernet_mac_address":"52:54:00:76:00:02","mtu":1500}],
			"networks":[{"id":"n","type":"ipv4_dhcp","link":"a"}]}`)
		if _, err := r.d.Apply(context.Background(), d, check, nil); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		st := r.state(t)
		if diff := cmp.Diff([]string{"eth0"}, r.dhcp); diff != "" {
			t.Errorf("dhcp calls (-want +got):\n%s", diff)
		}
		// The bond and VLAN stay (the config does not name them) but lose their slaves.
		for _, name := range []string{"eth0", "eth1"} {
			if l := st.link(name); l.Master != "" || !l.Up || l.MAC != l.PermMAC {
				t.Errorf("%s after release: master %q up %v mac %s", name, l.Master, l.Up, l.MAC)
			}
		}
		if l := st.link("eth1"); l.MTU != 1500 {
			t.Errorf("eth1 mtu = %d, want 1500", l.MTU)
		}
	})
}

func TestApplyRollsBack(t *testing.T) {
	bondGone := func(r *rig) func(context.Context) error {
		return func(context.Context) error {
			if r.k.st.link("bond0") != nil {
				return errors.New("dial 10.213.1.11:7443: i/o timeout")
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name      string
		st        func() *State
		check     func(r *rig) func(context.Context) error
		failOn    func(o op) error
		wantErr   []string
		wantIs    error
		wantSteps []string // a subsequence of the report
	}{
		{name: "check fails", st: machine, check: bondGone,
			wantErr: []string{"check failed for 100ms: dial 10.213.1.11:7443: i/o timeout", "rolled back to the previous configuration"},
			wantIs:  ErrRolledBack,
			wantSteps: []string{"rolling back: check failed for 100ms: dial 10.213.1.11:7443: i/o timeout",
				"delete link bond0", "set eth0 up", "add address 10.0.2.15/24 to eth0",
				"add route default via 10.0.2.2 dev eth0 metric 1024", "write resolv.conf (nameservers 10.0.2.3)",
				"previous configuration restored"}},
		{name: "a step fails", st: machine, check: bondGone,
			failOn: func(o op) error {
				if o.kind == opCreate && o.spec.Kind == "vlan" {
					return fmt.Errorf("create vlan: %w", syscall.EOPNOTSUPP)
				}
				return nil
			},
			wantErr: []string{"create vlan bond0.100 (id 100 on bond0): create vlan: operation not supported", "rolled back"},
			wantIs:  ErrRolledBack},
		{name: "the restored config fails the check too", st: machine,
			check: func(*rig) func(context.Context) error {
				return func(context.Context) error { return errors.New("no server") }
			},
			wantErr: []string{"check failed for 100ms: no server (the restored configuration fails the check too: check failed for 100ms: no server)"},
			wantIs:  ErrRolledBack},
		{name: "an existing bond of another mode is recreated, and restored",
			st: func() *State {
				st := machine()
				st.Links = append(st.Links, Link{Index: 9, Name: "bond0", Kind: "bond", MAC: "52:54:00:76:00:02", MTU: 1500, Up: true,
					Bond: &Bond{Mode: "balance-rr", Miimon: 50, HashPolicy: "layer2"}})
				eth1 := st.link("eth1")
				eth1.Master, eth1.Up = "bond0", true
				return st
			},
			check:     bondGone,
			wantIs:    ErrRolledBack,
			wantErr:   []string{"i/o timeout"},
			wantSteps: []string{"delete link bond0", "create bond bond0 (active-backup, miimon 100, mtu 9000)", "delete link bond0", "create bond bond0 (balance-rr, miimon 50, xmit_hash_policy layer2, mtu 1500, mac 52:54:00:76:00:02)", "enslave eth1 to bond0"}},
		{name: "rollback fails", st: machine, check: bondGone,
			failOn: func(o op) error {
				if o.kind == opAddrAdd && o.link == "eth0" {
					return syscall.EACCES
				}
				return nil
			},
			wantErr: []string{"rollback failed", "add address 10.0.2.15/24 to eth0: permission denied", "did not reach"},
			wantIs:  ErrRollbackFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.st())
			r.k.failOn = tc.failOn
			rep, err := r.d.Apply(context.Background(), parse(t, bondVLAN), tc.check(r), nil)
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("Apply error = %v, want %v", err, tc.wantIs)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if !isSubsequence(tc.wantSteps, rep.Lines) {
				t.Errorf("report lacks steps %q in that order:\n%s", tc.wantSteps, strings.Join(rep.Lines, "\n"))
			}
			if tc.wantIs == ErrRollbackFailed {
				if !rep.Changed {
					t.Error("Changed = false after a failed rollback")
				}
				return
			}
			if rep.Changed {
				t.Error("Changed = true after a rollback")
			}
			sameState(t, r.before, r.state(t))
		})
	}
}

func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestApplyRefusesBeforeChanging(t *testing.T) {
	for _, tc := range []struct {
		name    string
		doc     string
		dhcp    bool
		wantIs  error
		wantErr string
	}{
		{name: "unknown MAC", doc: `{"links":[{"id":"eth9","type":"phy","ethernet_mac_address":"52:54:00:aa:bb:cc"}]}`,
			wantIs:  netconf.ErrInvalid,
			wantErr: "link eth9 (52:54:00:aa:bb:cc): no NIC with this MAC; the machine has 52:54:00:76:00:01 (eth0), 52:54:00:76:00:02 (eth1)"},
		{name: "name taken by an unmanaged bridge", wantIs: ErrConflict,
			doc:     `{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:76:00:01"},{"id":"br9","type":"vlan","vlan_link":"a","vlan_id":3}]}`,
			wantErr: "link br9: interface name br9 is taken by a bridge link the config does not manage"},
		{name: "unresolved subnet", wantIs: netconf.ErrInvalid,
			doc:     `{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:76:00:01"}],"networks":[{"id":"n","type":"ipv4","link":"a","subnet":"s"}]}`,
			wantErr: "network n: no ip_address (the server allocates one from subnet s; apply the resolved config)"},
		{name: "dhcp without a client", dhcp: true, wantIs: ErrNoDHCP,
			doc:     `{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:76:00:02"}],"networks":[{"id":"n","type":"ipv4_dhcp","link":"a"}]}`,
			wantErr: "ipv4_dhcp on eth1: no DHCP client configured"},
		{name: "rename onto a NIC's name", wantIs: ErrConflict,
			doc:     `{"links":[{"id":"a","type":"phy","ethernet_mac_address":"52:54:00:76:00:01","name":"br9"}]}`,
			wantErr: "cannot rename eth0 to br9: br9 is a bridge link the config does not rename"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, machine())
			if tc.dhcp {
				r.d.cfg.DHCP = nil
			}
			_, err := r.d.Apply(context.Background(), parse(t, tc.doc), nil, nil)
			if !errors.Is(err, tc.wantIs) || !strings.Contains(fmt.Sprint(err), tc.wantErr) {
				t.Fatalf("Apply error = %v, want %v saying %q", err, tc.wantIs, tc.wantErr)
			}
			if len(r.k.calls) != 0 {
				t.Errorf("kernel calls before refusing: %q", r.k.calls)
			}
			sameState(t, r.before, r.state(t))
		})
	}
}

func TestApplyCancelledRollsBack(t *testing.T) {
	r := newRig(t, machine())
	ctx, cancel := context.WithCancel(context.Background())
	r.d.cfg.CheckTimeout = time.Hour
	calls := 0
	check := func(ctx context.Context) error {
		calls++
		if calls > 1 {
			return nil // after the rollback
		}
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	_, err := r.d.Apply(ctx, parse(t, bondVLAN), check, nil)
	if !errors.Is(err, ErrRolledBack) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply error = %v, want a rollback after context.Canceled", err)
	}
	sameState(t, r.before, r.state(t))
}

// TestApplyVethBond bonds NICs that have no permanent MAC (veths): once
// enslaved, the second one carries the first one's MAC, and only the bond
// knows its own.
func TestApplyVethBond(t *testing.T) {
	st := machine()
	for i := range st.Links {
		if l := &st.Links[i]; l.Kind == "device" {
			l.Kind, l.PermMAC = "veth", ""
		}
	}
	r := newRig(t, st)
	rep, err := r.d.Apply(context.Background(), parse(t, bondVLAN), nil, nil)
	if err != nil || !rep.Changed {
		t.Fatalf("Apply = %v, %v", rep.Changed, err)
	}
	if l := r.k.st.link("eth1"); l.Master != "bond0" || l.MAC != "52:54:00:76:00:01" {
		t.Fatalf("eth1: master %q mac %s, want bond0 and eth0's MAC", l.Master, l.MAC)
	}
	rep, err = r.d.Apply(context.Background(), parse(t, bondVLAN), nil, nil)
	if err != nil || rep.Changed {
		t.Errorf("Apply again = %v, %v; want no change", rep.Changed, err)
	}
	// Back: a config that fails its check restores the plain veths.
	r2 := newRig(t, st)
	_, err = r2.d.Apply(context.Background(), parse(t, bondVLAN), func(context.Context) error { return errors.New("no server") }, nil)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("Apply error = %v, want ErrRolledBack", err)
	}
	sameState(t, r2.before, r2.state(t))
}
