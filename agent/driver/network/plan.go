package network

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// opKind is what one step does.
type opKind int

const (
	opRouteDel opKind = iota
	opAddrDel
	opLinkDel
	opNoMaster
	opRename
	opCreate
	opEnslave
	opMTU
	opMAC
	opUp
	opDown
	opAddrAdd
	opRouteAdd
	opResolv
)

// op is one change. link is the interface's name at the time the op runs.
type op struct {
	kind  opKind
	link  string
	arg   string // rename: the new name; enslave: the master; release: the old master; mac: the MAC
	mtu   int
	spec  *Link // create
	addr  Addr
	route Route
	file  *File // resolv
}

func (o op) String() string {
	switch o.kind {
	case opRouteDel:
		return "delete route " + o.route.String()
	case opAddrDel:
		return fmt.Sprintf("delete address %s from %s", o.addr, o.link)
	case opLinkDel:
		return "delete link " + o.link
	case opNoMaster:
		return fmt.Sprintf("release %s from %s", o.link, o.arg)
	case opRename:
		return fmt.Sprintf("rename %s to %s", o.link, o.arg)
	case opCreate:
		s := o.spec
		desc := s.Kind
		switch {
		case s.Bond != nil:
			desc = fmt.Sprintf("%s, miimon %d", s.Bond.Mode, s.Bond.Miimon)
			if s.Bond.HashPolicy != "" {
				desc += ", xmit_hash_policy " + s.Bond.HashPolicy
			}
		case s.VLAN != nil:
			desc = fmt.Sprintf("id %d on %s", s.VLAN.ID, s.VLAN.Parent)
		}
		if s.MTU != 0 {
			desc += fmt.Sprintf(", mtu %d", s.MTU)
		}
		if s.MAC != "" {
			desc += ", mac " + s.MAC
		}
		return fmt.Sprintf("create %s %s (%s)", s.Kind, s.Name, desc)
	case opEnslave:
		return fmt.Sprintf("enslave %s to %s", o.link, o.arg)
	case opMTU:
		return fmt.Sprintf("set mtu of %s to %d", o.link, o.mtu)
	case opMAC:
		return fmt.Sprintf("set mac of %s to %s", o.link, o.arg)
	case opUp:
		return fmt.Sprintf("set %s up", o.link)
	case opDown:
		return fmt.Sprintf("set %s down", o.link)
	case opAddrAdd:
		return fmt.Sprintf("add address %s to %s", o.addr, o.link)
	case opRouteAdd:
		return "add route " + o.route.String()
	case opResolv:
		if o.file.Missing {
			return "remove resolv.conf"
		}
		var ns []string
		for _, l := range strings.Split(string(o.file.Data), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "nameserver" {
				ns = append(ns, f[1])
			}
		}
		return "write resolv.conf (nameservers " + strings.Join(ns, ", ") + ")"
	}
	return fmt.Sprintf("op(%d)", o.kind)
}

// goal is what a plan moves the host to: the target links and routes plus
// which existing things it owns and may remove.
type goal struct {
	target *State
	// delete are current link indices to delete before anything else.
	delete []int
	// exact are target links whose addresses the goal owns: any other is
	// removed, except dynamic ones and, on keepV4 links, IPv4 ones.
	exact  map[string]bool
	keepV4 map[string]bool
	// Routes the goal owns: on routeDevs links, every route (allRoutes),
	// and default routes of the families in defaults (true is IPv4).
	routeDevs map[string]bool
	allRoutes bool
	defaults  map[bool]bool
	// dhcp are the links to run DHCP on when they have no IPv4 address.
	dhcp []string
}

// planner holds the matching of current to target links while one plan is
// computed.
type planner struct {
	cur, tgt *State
	g        *goal
	ops      []op
	// match maps a target link name to its current link (nil: created).
	match map[string]*Link
	// tname maps a current link name to its target name.
	tname   map[string]string
	deleted map[string]bool // current names
	downed  map[string]bool // target names set down (or closed) by the plan
	created map[string]bool // target names
}

// plan computes the ordered changes that turn cur into g's target. No
// changes means the host is already there.
func plan(cur *State, g *goal) ([]op, error) {
	p := &planner{cur: cur, tgt: g.target, g: g, match: map[string]*Link{}, tname: map[string]string{},
		deleted: map[string]bool{}, downed: map[string]bool{}, created: map[string]bool{}}
	if err := p.matchLinks(); err != nil {
		return nil, err
	}
	p.markDowned()
	p.deleteRoutes()
	p.deleteAddrs()
	p.deleteLinks()
	p.release()
	if err := p.rename(); err != nil {
		return nil, err
	}
	if err := p.create("bond"); err != nil {
		return nil, err
	}
	p.enslave()
	if err := p.create("vlan"); err != nil {
		return nil, err
	}
	p.setMTUAndMAC()
	p.setUpDown()
	p.addAddrs()
	if err := p.addRoutes(); err != nil {
		return nil, err
	}
	p.resolv()
	return p.ops, nil
}

func (p *planner) add(o op) { p.ops = append(p.ops, o) }

func (p *planner) matchLinks() error {
	for _, idx := range p.g.delete {
		if c := p.cur.byIndex(idx); c != nil {
			p.deleted[c.Name] = true
		}
	}
	names := map[string]bool{}
	for i := range p.tgt.Links {
		t := &p.tgt.Links[i]
		if names[t.Name] {
			return fmt.Errorf("two links named %s: %w", t.Name, ErrConflict)
		}
		names[t.Name] = true
		c := p.cur.byIndex(t.Index)
		if c != nil && p.deleted[c.Name] {
			c = nil
		}
		if c == nil && t.Kind != "bond" && t.Kind != "vlan" {
			return fmt.Errorf("%s link %s (index %d) is gone and cannot be created: %w", t.Kind, t.Name, t.Index, ErrConflict)
		}
		p.match[t.Name] = c
		if c != nil {
			p.tname[c.Name] = t.Name
		} else {
			p.created[t.Name] = true
		}
	}
	// Slaves of deleted links are released (and closed) by the kernel.
	for _, c := range p.cur.Links {
		if c.Master != "" && p.deleted[c.Master] {
			p.downed[p.targetName(c.Name)] = true
		}
	}
	return nil
}

// targetName is the name a current link will have.
func (p *planner) targetName(cur string) string {
	if t, ok := p.tname[cur]; ok {
		return t
	}
	return cur
}

// devKey identifies the link of a current route in target terms; gone is
// true when the route goes away by itself because its link is deleted or
// set down by the plan (deleted: there is nothing to delete either).
func (p *planner) devKey(curDev string) (dev string, gone, deleted bool) {
	if p.deleted[curDev] {
		return "", true, true
	}
	if t, ok := p.tname[curDev]; ok {
		return "t:" + t, p.downed[t], false
	}
	return "c:" + curDev, false, false
}

func key(r Route, dev string) routeKey {
	t := r.Table
	if t == 0 {
		t = tableMain
	}
	return routeKey{dst: r.Dst.Masked(), gw: r.Gw, dev: dev, priority: r.Priority, table: t}
}

func (p *planner) targetRoutes() map[routeKey]bool {
	out := map[routeKey]bool{}
	for _, r := range p.tgt.Routes {
		out[key(r, "t:"+r.Dev)] = true
	}
	return out
}

// ownsRoute reports whether the goal may delete a current route.
func (p *planner) ownsRoute(r Route) bool {
	if p.g.allRoutes {
		return true
	}
	if r.Dst.Bits() == 0 && p.g.defaults[r.Dst.Addr().Is4()] {
		return true
	}
	t, ok := p.tname[r.Dev]
	if r.Dst.Addr().Is4() && p.g.keepV4[t] {
		return false // DHCP's
	}
	return ok && p.g.routeDevs[t]
}

func (p *planner) deleteRoutes() {
	want := p.targetRoutes()
	for _, r := range p.cur.Routes {
		dev, _, deleted := p.devKey(r.Dev)
		if deleted || want[key(r, dev)] || !p.ownsRoute(r) {
			continue
		}
		p.add(op{kind: opRouteDel, link: r.Dev, route: r})
	}
}

// markDowned finds the links that will be renamed, released or enslaved:
// the plan (or the kernel) sets them down on the way.
func (p *planner) markDowned() {
	for _, t := range p.tgt.Links {
		c := p.match[t.Name]
		if c == nil {
			continue
		}
		curMaster := p.curMasterTarget(c)
		if c.Name != t.Name || (c.Master != "" && curMaster != t.Master && !p.deleted[c.Master]) ||
			(t.Master != "" && (curMaster != t.Master || p.created[t.Master])) {
			p.downed[t.Name] = true
		}
	}
}

// curMasterTarget is the target name of a current link's master.
func (p *planner) curMasterTarget(c *Link) string {
	if c.Master == "" || p.deleted[c.Master] {
		return ""
	}
	return p.targetName(c.Master)
}

func hasAddr(addrs []Addr, a Addr) bool {
	return slices.ContainsFunc(addrs, func(b Addr) bool { return b.Prefix == a.Prefix })
}

func (p *planner) deleteAddrs() {
	for _, t := range p.tgt.Links {
		c := p.match[t.Name]
		if c == nil || !p.g.exact[t.Name] {
			continue
		}
		for _, a := range c.Addrs {
			v4 := a.Prefix.Addr().Is4()
			if a.dynamic() || (v4 && p.g.keepV4[t.Name]) || (!v4 && p.downed[t.Name]) || hasAddr(t.Addrs, a) {
				continue
			}
			p.add(op{kind: opAddrDel, link: c.Name, addr: a})
		}
	}
}

func (p *planner) deleteLinks() {
	var vlans, others []op
	for _, idx := range p.g.delete {
		c := p.cur.byIndex(idx)
		if c == nil {
			continue
		}
		o := op{kind: opLinkDel, link: c.Name}
		if c.Kind == "vlan" {
			if c.VLAN != nil && p.deleted[c.VLAN.Parent] {
				continue // goes with its parent
			}
			vlans = append(vlans, o)
		} else {
			others = append(others, o)
		}
	}
	p.ops = append(append(p.ops, vlans...), others...)
}

func (p *planner) release() {
	for _, t := range p.tgt.Links {
		c := p.match[t.Name]
		if c == nil || c.Master == "" || p.deleted[c.Master] || p.curMasterTarget(c) == t.Master {
			continue
		}
		p.add(op{kind: opNoMaster, link: c.Name, arg: c.Master})
	}
}

func (p *planner) rename() error {
	type mv struct{ from, to string }
	var moves []mv
	renamed := map[string]bool{} // current names moving away
	for _, t := range p.tgt.Links {
		if c := p.match[t.Name]; c != nil && c.Name != t.Name {
			moves = append(moves, mv{c.Name, t.Name})
			renamed[c.Name] = true
		}
	}
	taken := func(name string) *Link {
		c := p.cur.link(name)
		if c == nil || p.deleted[c.Name] {
			return nil
		}
		return c
	}
	var later []mv
	for i, m := range moves {
		from := m.from
		if holder := taken(m.to); holder != nil {
			if !renamed[holder.Name] {
				return fmt.Errorf("cannot rename %s to %s: %s is a %s link the config does not rename: %w", m.from, m.to, m.to, holder.Kind, ErrConflict)
			}
			tmp := fmt.Sprintf("ultmp%d", i)
			p.add(op{kind: opDown, link: from})
			p.add(op{kind: opRename, link: from, arg: tmp})
			later = append(later, mv{tmp, m.to})
			continue
		}
		p.add(op{kind: opDown, link: from})
		p.add(op{kind: opRename, link: from, arg: m.to})
	}
	for _, m := range later {
		p.add(op{kind: opRename, link: m.from, arg: m.to})
	}
	for _, t := range p.tgt.Links {
		if p.created[t.Name] {
			if holder := taken(t.Name); holder != nil && !renamed[holder.Name] {
				return fmt.Errorf("cannot create %s %s: the name is taken by a %s link: %w", t.Kind, t.Name, holder.Kind, ErrConflict)
			}
		}
	}
	return nil
}

func (p *planner) create(kind string) error {
	for i := range p.tgt.Links {
		t := &p.tgt.Links[i]
		if !p.created[t.Name] || t.Kind != kind {
			continue
		}
		if kind == "vlan" && (t.VLAN == nil || p.tgt.link(t.VLAN.Parent) == nil && p.cur.link(t.VLAN.Parent) == nil) {
			return fmt.Errorf("vlan %s: no parent link: %w", t.Name, ErrConflict)
		}
		if kind == "bond" && t.Bond == nil {
			return fmt.Errorf("bond %s: no parameters: %w", t.Name, ErrConflict)
		}
		spec := *t
		spec.Addrs, spec.Up, spec.Master, spec.Index = nil, false, "", 0
		p.add(op{kind: opCreate, link: t.Name, spec: &spec})
	}
	return nil
}

func (p *planner) enslave() {
	for _, t := range p.tgt.Links {
		c := p.match[t.Name]
		if t.Master == "" || (c != nil && p.curMasterTarget(c) == t.Master && !p.created[t.Master]) {
			continue
		}
		p.add(op{kind: opEnslave, link: t.Name, arg: t.Master})
	}
}

// order lists target links lower layers first: NICs, bonds, VLANs.
func (p *planner) order() []*Link {
	var out []*Link
	for _, kinds := range [][]string{nil, {"bond"}, {"vlan"}} {
		for i := range p.tgt.Links {
			t := &p.tgt.Links[i]
			isUpper := t.Kind == "bond" || t.Kind == "vlan"
			if (kinds == nil && !isUpper) || (kinds != nil && t.Kind == kinds[0]) {
				out = append(out, t)
			}
		}
	}
	return out
}

func (p *planner) setMTUAndMAC() {
	for _, t := range p.order() {
		c := p.match[t.Name]
		if c == nil {
			continue
		}
		if t.MTU != 0 && t.MTU != c.MTU {
			p.add(op{kind: opMTU, link: t.Name, mtu: t.MTU})
		}
		if t.MAC != "" && t.MAC != c.MAC {
			p.add(op{kind: opMAC, link: t.Name, arg: t.MAC})
		}
	}
}

func (p *planner) setUpDown() {
	for _, t := range p.order() {
		c := p.match[t.Name]
		have := c != nil && c.Up && !p.downed[t.Name]
		switch {
		case t.Up && !have:
			p.add(op{kind: opUp, link: t.Name})
		case !t.Up && have:
			p.add(op{kind: opDown, link: t.Name})
		}
	}
}

func (p *planner) addAddrs() {
	for _, t := range p.order() {
		var have []Addr
		if c := p.match[t.Name]; c != nil {
			for _, a := range c.Addrs {
				if a.Prefix.Addr().Is4() || !p.downed[t.Name] {
					have = append(have, a)
				}
			}
		}
		for _, a := range t.Addrs {
			if !a.dynamic() && !hasAddr(have, a) {
				p.add(op{kind: opAddrAdd, link: t.Name, addr: a})
			}
		}
	}
}

func (p *planner) addRoutes() error {
	have := map[routeKey]bool{}
	for _, r := range p.cur.Routes {
		if dev, gone, _ := p.devKey(r.Dev); !gone {
			have[key(r, dev)] = true
		}
	}
	for _, r := range p.tgt.Routes {
		if p.tgt.link(r.Dev) == nil {
			return fmt.Errorf("route %s: no link %s: %w", r, r.Dev, ErrConflict)
		}
		if !have[key(r, "t:"+r.Dev)] {
			p.add(op{kind: opRouteAdd, link: r.Dev, route: r})
		}
	}
	return nil
}

func (p *planner) resolv() {
	want := p.tgt.Resolv
	if want == nil {
		return
	}
	have := p.cur.Resolv
	if have == nil {
		have = &File{Missing: true}
	}
	if want.Missing == have.Missing && (want.Missing || bytes.Equal(want.Data, have.Data)) {
		return
	}
	p.add(op{kind: opResolv, file: want})
}
