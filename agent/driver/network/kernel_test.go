package network

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
)

// fakeKernel simulates the parts of Linux networking the driver relies on,
// including the side effects it must cope with: a bond takes its first
// slave's MAC and gives it to all slaves, enslaving opens the slave and
// releasing closes it and restores its MAC, a link set down loses its routes
// and IPv6 addresses, a link must be down to be renamed or enslaved, and a
// route needs an up link with its gateway on a connected network.
type fakeKernel struct {
	st      *State
	next    int
	random  map[string]bool // bonds whose MAC is still the random one
	origMTU map[string]int  // slaves' MTUs from before they were enslaved
	origMAC map[string]string
	calls   []string
	failOn  func(o op) error
	created int
}

func newFakeKernel(st *State) *fakeKernel {
	k := &fakeKernel{st: st.clone(), random: map[string]bool{}, origMTU: map[string]int{}, origMAC: map[string]string{}}
	k.st.Resolv = nil
	for _, l := range st.Links {
		k.next = max(k.next, l.Index)
	}
	return k
}

// snapshot reports a slave without a permanent MAC with the one its bond
// remembers (IFLA_BOND_SLAVE_PERM_HWADDR), like netlinkSystem.
func (k *fakeKernel) snapshot() (*State, error) {
	st := k.st.clone()
	for i := range st.Links {
		if l := &st.Links[i]; l.PermMAC == "" && l.Master != "" {
			l.PermMAC = k.origMAC[l.Name]
		}
	}
	return st, nil
}

func (k *fakeKernel) exec(o op) error {
	k.calls = append(k.calls, o.String())
	if k.failOn != nil {
		if err := k.failOn(o); err != nil {
			return err
		}
	}
	if o.kind == opCreate {
		return k.create(o.spec)
	}
	if o.kind == opRouteAdd || o.kind == opRouteDel {
		return k.route(o)
	}
	l := k.st.link(o.link)
	if l == nil {
		if o.kind == opLinkDel {
			return nil
		}
		return fmt.Errorf("link %s: %w", o.link, syscall.ENODEV)
	}
	switch o.kind {
	case opAddrDel:
		i := slices.IndexFunc(l.Addrs, func(a Addr) bool { return a.Prefix == o.addr.Prefix })
		if i < 0 {
			return nil
		}
		l.Addrs = slices.Delete(l.Addrs, i, i+1)
		if !slices.ContainsFunc(l.Addrs, func(a Addr) bool { return a.Prefix.Addr().Is4() }) {
			k.dropRoutes(l.Name, true)
		}
	case opAddrAdd:
		if hasAddr(l.Addrs, o.addr) {
			return syscall.EEXIST
		}
		a := o.addr
		if a.ValidLft == 0 {
			a.Flags |= ifaFPermanent
		}
		l.Addrs = append(l.Addrs, a)
	case opLinkDel:
		k.del(l)
	case opNoMaster:
		k.release(l)
	case opRename:
		if l.Up {
			return fmt.Errorf("rename %s: %w", l.Name, syscall.EBUSY)
		}
		if k.st.link(o.arg) != nil {
			return syscall.EEXIST
		}
		k.renameRefs(l.Name, o.arg)
		l.Name = o.arg
	case opEnslave:
		m := k.st.link(o.arg)
		if m == nil || m.Kind != "bond" {
			return fmt.Errorf("master %s: %w", o.arg, syscall.EINVAL)
		}
		// The driver sets the slave down first; the kernel opens it again.
		k.down(l)
		k.origMTU[l.Name], k.origMAC[l.Name] = l.MTU, l.MAC
		l.Master = m.Name
		if k.random[m.Name] {
			m.MAC, k.random[m.Name] = l.MAC, false
		}
		l.MAC, l.MTU, l.Up = m.MAC, m.MTU, true
		l.Addrs = slices.DeleteFunc(l.Addrs, func(a Addr) bool { return a.Prefix.Addr().Is6() })
	case opMTU:
		l.MTU = o.mtu
		for i := range k.st.Links {
			if s := &k.st.Links[i]; s.Master == l.Name {
				s.MTU = o.mtu
			}
		}
	case opMAC:
		l.MAC = o.arg
		k.random[l.Name] = false
		for i := range k.st.Links {
			if s := &k.st.Links[i]; s.Master == l.Name {
				s.MAC = o.arg
			}
		}
	case opUp:
		l.Up = true
		// addrconf gives NICs an IPv6 link-local address when they come up.
		ll := Addr{Prefix: netip.MustParsePrefix(fmt.Sprintf("fe80::%d/64", l.Index)), Flags: ifaFPermanent, Scope: 253}
		if (l.Kind == "device" || l.Kind == "veth") && l.Master == "" && !hasAddr(l.Addrs, ll) {
			l.Addrs = append(l.Addrs, ll)
		}
	case opDown:
		k.down(l)
	}
	return nil
}

func (k *fakeKernel) create(spec *Link) error {
	if k.st.link(spec.Name) != nil {
		return fmt.Errorf("create %s: %w", spec.Name, syscall.EEXIST)
	}
	k.next++
	k.created++
	l := Link{Index: k.next, Name: spec.Name, Kind: spec.Kind, MAC: spec.MAC, MTU: spec.MTU}
	switch {
	case spec.Bond != nil:
		b := *spec.Bond
		if b.HashPolicy == "" {
			b.HashPolicy = "layer2"
		}
		l.Bond = &b
		if l.MAC == "" {
			l.MAC = fmt.Sprintf("02:00:00:00:00:%02x", k.next)
			k.random[l.Name] = true
		}
		if l.MTU == 0 {
			l.MTU = 1500
		}
	case spec.VLAN != nil:
		p := k.st.link(spec.VLAN.Parent)
		if p == nil {
			return fmt.Errorf("parent %s: %w", spec.VLAN.Parent, syscall.ENODEV)
		}
		v := *spec.VLAN
		l.VLAN = &v
		if l.MAC == "" {
			l.MAC = p.MAC
		}
		if l.MTU == 0 {
			l.MTU = p.MTU
		}
	default:
		return syscall.EOPNOTSUPP
	}
	k.st.Links = append(k.st.Links, l)
	return nil
}

func (k *fakeKernel) del(l *Link) {
	name := l.Name
	for i := range k.st.Links {
		s := &k.st.Links[i]
		if s.Master == name {
			k.release(s)
		}
	}
	k.dropRoutes(name, false)
	k.st.Links = slices.DeleteFunc(k.st.Links, func(x Link) bool {
		if x.VLAN != nil && x.VLAN.Parent == name {
			k.dropRoutes(x.Name, false)
			return true
		}
		return x.Name == name
	})
}

func (k *fakeKernel) release(l *Link) {
	l.Master = ""
	if mtu, ok := k.origMTU[l.Name]; ok {
		l.MTU = mtu
	}
	if mac, ok := k.origMAC[l.Name]; ok {
		l.MAC = mac
	}
	k.down(l)
}

func (k *fakeKernel) down(l *Link) {
	l.Up = false
	k.dropRoutes(l.Name, false)
	l.Addrs = slices.DeleteFunc(l.Addrs, func(a Addr) bool { return a.Prefix.Addr().Is6() })
}

func (k *fakeKernel) dropRoutes(dev string, v4only bool) {
	k.st.Routes = slices.DeleteFunc(k.st.Routes, func(r Route) bool {
		return r.Dev == dev && (!v4only || r.Dst.Addr().Is4())
	})
}

func (k *fakeKernel) renameRefs(from, to string) {
	for i := range k.st.Links {
		s := &k.st.Links[i]
		if s.Master == from {
			s.Master = to
		}
		if s.VLAN != nil && s.VLAN.Parent == from {
			s.VLAN.Parent = to
		}
	}
	for i := range k.st.Routes {
		if k.st.Routes[i].Dev == from {
			k.st.Routes[i].Dev = to
		}
	}
}

func (k *fakeKernel) route(o op) error {
	r := o.route
	i := slices.IndexFunc(k.st.Routes, func(x Route) bool { return key(x, x.Dev) == key(r, r.Dev) })
	if o.kind == opRouteDel {
		if i >= 0 {
			k.st.Routes = slices.Delete(k.st.Routes, i, i+1)
		}
		return nil
	}
	l := k.st.link(r.Dev)
	switch {
	case l == nil:
		return syscall.ENODEV
	case !l.Up:
		return fmt.Errorf("route %s: %w", r, syscall.ENETDOWN)
	case i >= 0:
		return fmt.Errorf("route %s: %w", r, syscall.EEXIST)
	case r.Gw.IsValid() && !slices.ContainsFunc(l.Addrs, func(a Addr) bool { return a.Prefix.Masked().Contains(r.Gw) }):
		return fmt.Errorf("route %s: gateway not on link: %w", r, syscall.ENETUNREACH)
	}
	k.st.Routes = append(k.st.Routes, r)
	return nil
}

// callsMatching returns the recorded calls that start with prefix.
func (k *fakeKernel) callsMatching(prefix string) []string {
	var out []string
	for _, c := range k.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
