package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Human renderings of the API's messages, one function per table.

func tokenKindName(k underlayv1.TokenKind) string { return enumName(k, "TOKEN_KIND_") }
func roleName(r underlayv1.OperatorRole) string   { return enumName(r, "OPERATOR_ROLE_") }
func stateName(s underlayv1.MachineState) string  { return enumName(s, "MACHINE_STATE_") }

// tokenStatus is active, revoked, expired or used-up.
func (p *printer) tokenStatus(t *underlayv1.Token) string {
	switch {
	case t.GetRevoked():
		return "revoked"
	case t.GetExpires() != nil && !t.GetExpires().AsTime().After(p.now()):
		return "expired"
	case t.GetUsesAllowed() > 0 && t.GetUses() >= t.GetUsesAllowed():
		return "used-up"
	}
	return "active"
}

func tokenUses(t *underlayv1.Token) string {
	if t.GetUsesAllowed() == 0 {
		return fmt.Sprintf("%d/unlimited", t.GetUses())
	}
	return fmt.Sprintf("%d/%d", t.GetUses(), t.GetUsesAllowed())
}

func (p *printer) tokensTable(w io.Writer, tokens []*underlayv1.Token) {
	row(w, "ID", "KIND", "STATUS", "USES", "EXPIRES", "CREATED", "CREATED BY", "DESCRIPTION")
	for _, t := range tokens {
		row(w, t.GetId(), tokenKindName(t.GetKind()), p.tokenStatus(t), tokenUses(t),
			p.ago(t.GetExpires()), p.ago(t.GetCreated()), orDash(t.GetCreatedBy()), orDash(t.GetDescription()))
	}
}

// lastContact prefers the leader's own measurement in seconds, which does
// not depend on this machine's clock.
func (p *printer) lastContact(m *underlayv1.Member) string {
	if s := m.GetLastContactSeconds(); s > 0 {
		d := time.Duration(s * float64(time.Second))
		if d < time.Second {
			return fmt.Sprintf("%dms ago", d.Milliseconds())
		}
		return humanDuration(d) + " ago"
	}
	return p.ago(m.GetLastContact())
}

func (p *printer) membersTable(w io.Writer, members []*underlayv1.Member) {
	row(w, "ID", "RAFT ADDR", "API ADDR", "ROLE", "HEALTH", "LAST CONTACT")
	for _, m := range members {
		row(w, m.GetId(), orDash(m.GetRaftAddr()), orDash(m.GetApiAddr()), orDash(m.GetRole()),
			orDash(m.GetHealth()), p.lastContact(m))
	}
}

func (p *printer) clusterStatusTable(w io.Writer, s *underlayv1.ClusterStatus) {
	leader := s.GetLeaderId()
	if leader == "" {
		leader = "none (no leader elected)"
	} else if s.GetLeaderAddr() != "" {
		leader += " (" + s.GetLeaderAddr() + ")"
	}
	kv(w, "Cluster", s.GetClusterId())
	kv(w, "Leader", leader)
	kv(w, "Term", fmt.Sprint(s.GetTerm()))
	kv(w, "Commit index", fmt.Sprint(s.GetCommitIndex()))
	kv(w, "Applied index", fmt.Sprint(s.GetAppliedIndex()))
	kv(w, "Answered by", s.GetAnsweredBy())
	fmt.Fprintln(w)
	p.membersTable(w, s.GetMembers())
}

func (p *printer) operatorsTable(w io.Writer, ops []*underlayv1.Operator) {
	row(w, "NAME", "ROLE", "CREATED", "CREATED BY")
	for _, o := range ops {
		row(w, o.GetName(), roleName(o.GetRole()), p.ago(o.GetCreated()), orDash(o.GetCreatedBy()))
	}
}

func (p *printer) revocationsTable(w io.Writer, revs []*underlayv1.Revocation) {
	row(w, "SERIAL", "SUBJECT", "REVOKED", "CERT EXPIRES", "REVOKED BY", "REASON")
	for _, r := range revs {
		row(w, r.GetSerial(), orDash(r.GetSubject()), p.ago(r.GetRevokedAt()), p.ago(r.GetNotAfter()),
			orDash(r.GetRevokedBy()), orDash(r.GetReason()))
	}
}

func (p *printer) whoamiTable(w io.Writer, r *underlayv1.WhoAmIResponse) {
	kv(w, "Identity", r.GetIdentity())
	kv(w, "Kind", r.GetKind())
	kv(w, "Name", r.GetName())
	if r.GetRole() != underlayv1.OperatorRole_OPERATOR_ROLE_UNSPECIFIED {
		kv(w, "Role", roleName(r.GetRole()))
	}
	kv(w, "Serial", r.GetSerial())
	kv(w, "Expires", p.ago(r.GetNotAfter()))
}

func online(m *underlayv1.Machine) string {
	if m.GetOnline() {
		return "yes"
	}
	return "no"
}

func (p *printer) machinesTable(w io.Writer, ms []*underlayv1.Machine) {
	row(w, "ID", "HOSTNAME", "STATE", "ROLE", "ONLINE", "LAST SEEN", "LABELS")
	for _, m := range ms {
		row(w, m.GetId(), orDash(m.GetHostname()), stateName(m.GetState()), orDash(m.GetRole()),
			online(m), p.ago(m.GetLastSeen()), labelString(m.GetLabels()))
	}
}

func (p *printer) machineDetail(w io.Writer, m *underlayv1.Machine) {
	kv(w, "ID", m.GetId())
	kv(w, "Hostname", m.GetHostname())
	kv(w, "State", stateName(m.GetState()))
	kv(w, "Role", m.GetRole())
	kv(w, "Labels", labelString(m.GetLabels()))
	kv(w, "Profiles", strings.Join(m.GetProfiles(), ","))
	if m.GetClassifiedVersion() > 0 {
		by := strings.Join(m.GetClassifiedBy(), ",")
		if by == "" {
			by = "(no rule matched)"
		}
		kv(w, "Classified by", fmt.Sprintf("%s (inventory v%d)", by, m.GetClassifiedVersion()))
	}
	kv(w, "Online", online(m))
	kv(w, "Last seen", p.ago(m.GetLastSeen()))
	kv(w, "Connected to", m.GetConnectedNode())
	kv(w, "Connected from", m.GetConnectedAddr())
	id := m.GetIdentity()
	kv(w, "UUID", id.GetUuid())
	kv(w, "MACs", strings.Join(id.GetMacs(), ","))
	kv(w, "Serials", strings.Join(id.GetSerials(), ","))
	kv(w, "Inventory version", fmt.Sprint(m.GetInventoryVersion()))
	kv(w, "Cert serial", m.GetCertSerial())
	kv(w, "Enrolled with", m.GetEnrolledWith())
	kv(w, "Created", p.ago(m.GetCreated()))
	kv(w, "Updated", p.ago(m.GetUpdated()))
	if len(m.GetConflicts()) > 0 {
		kv(w, "Conflicts", strings.Join(m.GetConflicts(), ","))
	}
}

// inventorySummary is the human digest of an inventory; -o json has it all.
func (p *printer) inventorySummary(w io.Writer, inv *underlayv1.Inventory) {
	kv(w, "Hostname", inv.GetHostname())
	kv(w, "OS", strings.TrimSpace(inv.GetOs()+" "+inv.GetArch()))
	kv(w, "Kernel", inv.GetKernel())
	kv(w, "Boot mode", inv.GetBootMode())
	virt := "no"
	if v := inv.GetVirtualization(); v.GetIsVm() {
		virt = "yes"
		if v.GetHypervisor() != "" {
			virt += " (" + v.GetHypervisor() + ")"
		}
		if v.GetCloud() != "" {
			virt += ", cloud " + v.GetCloud()
		}
	}
	kv(w, "Virtual", virt)
	d := inv.GetDmi()
	kv(w, "System", strings.TrimSpace(d.GetSystemVendor()+" "+d.GetProductName()))
	kv(w, "Serial", d.GetProductSerial())
	kv(w, "BIOS", strings.TrimSpace(d.GetBiosVendor()+" "+d.GetBiosVersion()))
	c := inv.GetCpu()
	kv(w, "CPU", fmt.Sprintf("%s (%d sockets, %d cores, %d threads)", orDash(c.GetModel()), c.GetSockets(), c.GetCores(), c.GetThreads()))
	kv(w, "Memory", bytesString(inv.GetMemory().GetTotalBytes()))
	kv(w, "GPUs", fmt.Sprint(len(inv.GetGpus())))
	kv(w, "PCI devices", fmt.Sprint(len(inv.GetPci())))
	kv(w, "Collected", p.ago(inv.GetCollected()))
	fmt.Fprintln(w)
	row(w, "DISK", "SIZE", "TYPE", "MODEL", "SERIAL")
	for _, b := range inv.GetDisks() {
		row(w, b.GetName(), bytesString(b.GetSizeBytes()), orDash(b.GetDriveType()), orDash(b.GetModel()), orDash(b.GetSerial()))
	}
	fmt.Fprintln(w)
	row(w, "NIC", "MAC", "LINK", "SPEED", "DRIVER", "ADDRESSES")
	for _, n := range inv.GetNics() {
		link := "down"
		if n.GetLinkUp() {
			link = "up"
		}
		speed := "-"
		if n.GetSpeedMbps() > 0 {
			speed = fmt.Sprintf("%dMb/s", n.GetSpeedMbps())
		}
		row(w, n.GetName(), orDash(n.GetMac()), link, speed, orDash(n.GetDriver()), orDash(strings.Join(n.GetAddresses(), ",")))
	}
	if len(inv.GetMdArrays()) > 0 {
		fmt.Fprintln(w)
		row(w, "MD ARRAY", "LEVEL", "STATE", "SIZE", "MEMBERS")
		for _, a := range inv.GetMdArrays() {
			row(w, a.GetName(), a.GetLevel(), a.GetState(), bytesString(a.GetSizeBytes()), strings.Join(a.GetMembers(), ","))
		}
	}
}

// eventLine is one event on one line, as `machine events` and `watch` print it.
func eventLine(e *underlayv1.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-6d %s", stamp(e.GetTime()), e.GetIndex(), e.GetKind())
	if e.GetMachineId() != "" {
		fmt.Fprintf(&b, "  machine=%s", e.GetMachineId())
	}
	if e.GetActor() != "" {
		fmt.Fprintf(&b, "  by=%s", e.GetActor())
	}
	if e.GetMessage() != "" {
		fmt.Fprintf(&b, "  %s", e.GetMessage())
	}
	return b.String()
}

func eventsTable(w io.Writer, events []*underlayv1.Event) {
	row(w, "TIME", "INDEX", "KIND", "ACTOR", "MESSAGE")
	for _, e := range events {
		row(w, stamp(e.GetTime()), fmt.Sprint(e.GetIndex()), e.GetKind(), orDash(e.GetActor()), orDash(e.GetMessage()))
	}
}
