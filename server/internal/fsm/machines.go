package fsm

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/machine"
	"underlay.dev/server/internal/store"
)

// enroll consumes a token use and creates or updates the machine the
// identity matches, all or nothing. The handler matched the identity before
// proposing; the match is re-run here and must still give cmd.machine_id
// (or no machine, when cmd.machine_id does not exist yet).
func enroll(tx *store.Tx, e *underlayv1.EnrollMachine) (string, error) {
	id := e.GetMachineId()
	if id == "" || e.GetIdentity() == nil {
		return "", invalid("enroll: machine id and identity required")
	}
	res, err := machine.Match(e.GetIdentity(), tx.MachinesSharing(e.GetIdentity()))
	if err != nil {
		return "", fmt.Errorf("enroll %s: %w", id, err)
	}
	m, err := tx.Machine(id)
	exists := err == nil
	// A machine that enrolls again with the token it enrolled with (a
	// reboot that lost its state, or a retry whose answer was lost) does
	// not spend another use of it.
	again := exists && res.MachineID == id && m.GetEnrolledWith() == e.GetToken().GetId()
	tok, err := useToken(tx, e.GetToken(), !again)
	if err != nil {
		return "", err
	}
	switch {
	case res.MachineID != "" && res.MachineID != id:
		return "", fmt.Errorf("enroll %s: identity match changed: identity now matches machine %s: %w",
			id, res.MachineID, store.ErrPrecondition)
	case res.MachineID == "" && exists:
		return "", fmt.Errorf("enroll %s: identity match changed: machine exists but no longer matches this identity: %w",
			id, store.ErrPrecondition)
	}
	kind := EventMachineReEnrolled
	if !exists {
		kind = EventMachineEnrolled
		m = &underlayv1.Machine{
			Id:      id,
			State:   underlayv1.MachineState_MACHINE_STATE_DISCOVERED,
			Created: tx.Now(),
		}
	}
	m.Identity = proto.Clone(e.GetIdentity()).(*underlayv1.MachineIdentity)
	if e.GetHostname() != "" {
		m.Hostname = e.GetHostname()
	}
	if old := m.GetCertSerial(); exists && old != "" && old != e.GetCertSerial() {
		// A re-enrolled machine has a new key; its old certificate goes.
		if _, err := revokeTx(tx, &underlayv1.Revocation{Serial: old, Subject: machine.Subject(id), Reason: "machine re-enrolled"}); err != nil {
			return "", err
		}
	}
	m.CertSerial = e.GetCertSerial()
	m.EnrolledWith = tok.GetId()
	m.Conflicts = res.Conflicts
	m.Updated = tx.Now()
	if err := tx.PutMachine(m); err != nil {
		return "", err
	}
	msg := fmt.Sprintf("machine %s %s with token %s", id, strings.TrimPrefix(kind, "machine."), tok.GetId())
	if err := tx.Event(kind, id, msg); err != nil {
		return "", err
	}
	for _, other := range res.Conflicts {
		if err := addConflict(tx, other, id); err != nil {
			return "", err
		}
	}
	if e.GetInventory() != nil {
		if err := putInventory(tx, id, e.GetInventory()); err != nil {
			return "", err
		}
	}
	if e.GetCertSerial() != "" {
		issued := &underlayv1.Issued{
			Serial:    e.GetCertSerial(),
			Subject:   machine.Subject(id),
			NotBefore: tx.Now(),
			NotAfter:  e.GetCertNotAfter(),
		}
		if _, err := recordIssued(tx, &underlayv1.RecordIssued{Issued: issued}); err != nil {
			return "", err
		}
	}
	return id, nil
}

// addConflict lists conflictID in the conflicts of machine id.
func addConflict(tx *store.Tx, id, conflictID string) error {
	m, err := tx.Machine(id)
	if err != nil {
		return err
	}
	if slices.Contains(m.GetConflicts(), conflictID) {
		return nil
	}
	m.Conflicts = append(m.Conflicts, conflictID)
	sort.Strings(m.Conflicts)
	if err := tx.PutMachine(m); err != nil {
		return err
	}
	return tx.Event(EventMachineConflict, id, fmt.Sprintf("identity of machine %s overlaps machine %s", conflictID, id))
}

func putInventory(tx *store.Tx, id string, inv *underlayv1.Inventory) error {
	version, changed, err := tx.PutInventory(id, inv)
	if err != nil || !changed {
		return err
	}
	return tx.Event(EventMachineInventory, id, fmt.Sprintf("inventory version %d", version))
}

func updateInventory(tx *store.Tx, u *underlayv1.UpdateInventory) (string, error) {
	if u.GetInventory() == nil {
		return "", invalid("update inventory of %s: inventory required", u.GetMachineId())
	}
	if err := putInventory(tx, u.GetMachineId(), u.GetInventory()); err != nil {
		return "", fmt.Errorf("update inventory: %w", err)
	}
	return u.GetMachineId(), nil
}

func setLabels(tx *store.Tx, s *underlayv1.SetMachineLabels) (string, error) {
	m, err := tx.Machine(s.GetMachineId())
	if err != nil {
		return "", fmt.Errorf("set labels: %w", err)
	}
	keys := make([]string, 0, len(s.GetSet()))
	for k := range s.GetSet() {
		if k == "" {
			return "", invalid("set labels of %s: empty label key", m.GetId())
		}
		if slices.Contains(s.GetRemove(), k) {
			return "", invalid("set labels of %s: label %q both set and removed", m.GetId(), k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	var changes []string
	for _, k := range keys {
		if v, ok := m.Labels[k]; !ok || v != s.GetSet()[k] {
			m.Labels[k] = s.GetSet()[k]
			changes = append(changes, k+"="+s.GetSet()[k])
		}
	}
	removed := slices.Clone(s.GetRemove())
	sort.Strings(removed)
	for _, k := range removed {
		if _, ok := m.Labels[k]; ok {
			delete(m.Labels, k)
			changes = append(changes, "-"+k)
		}
	}
	if len(changes) == 0 {
		return m.GetId(), nil
	}
	m.Updated = tx.Now()
	if err := tx.PutMachine(m); err != nil {
		return "", err
	}
	return m.GetId(), tx.Event(EventMachineLabels, m.GetId(), "labels "+strings.Join(changes, ", "))
}

// deleteMachine removes a machine and, in the same write, revokes every
// certificate issued to it.
func deleteMachine(tx *store.Tx, d *underlayv1.DeleteMachine) (string, error) {
	id := d.GetMachineId()
	m, err := tx.Machine(id)
	if err != nil {
		return "", fmt.Errorf("delete machine: %w", err)
	}
	if err := tx.DeleteMachine(id); err != nil {
		return "", err
	}
	if err := tx.DeletePlan(id); err != nil {
		return "", err
	}
	subject := machine.Subject(id)
	issued := tx.IssuedTo(subject)
	if m.GetCertSerial() != "" && !slices.ContainsFunc(issued, func(i *underlayv1.Issued) bool { return i.GetSerial() == m.GetCertSerial() }) {
		issued = append(issued, &underlayv1.Issued{Serial: m.GetCertSerial(), Subject: subject})
	}
	revoked := 0
	for _, i := range issued {
		added, err := revokeTx(tx, &underlayv1.Revocation{
			Serial:   i.GetSerial(),
			Subject:  subject,
			NotAfter: i.GetNotAfter(),
			Reason:   "machine deleted",
		})
		if err != nil {
			return "", err
		}
		if added {
			revoked++
		}
	}
	for _, other := range m.GetConflicts() {
		o, err := tx.Machine(other)
		if err != nil {
			continue
		}
		o.Conflicts = slices.DeleteFunc(o.Conflicts, func(c string) bool { return c == id })
		if err := tx.PutMachine(o); err != nil {
			return "", err
		}
	}
	return id, tx.Event(EventMachineDeleted, id, fmt.Sprintf("machine %s deleted, %d certificates revoked", id, revoked))
}

func setState(tx *store.Tx, s *underlayv1.SetMachineState) (string, error) {
	m, err := tx.Machine(s.GetMachineId())
	if err != nil {
		return "", fmt.Errorf("set state: %w", err)
	}
	from := m.GetState()
	if err := machine.Transition(from, s.GetState()); err != nil {
		return "", fmt.Errorf("set state of %s: %w", m.GetId(), err)
	}
	m.State = s.GetState()
	m.Updated = tx.Now()
	if err := tx.PutMachine(m); err != nil {
		return "", err
	}
	msg := machine.StateName(from) + " -> " + machine.StateName(m.GetState())
	if s.GetReason() != "" {
		msg += ": " + s.GetReason()
	}
	return m.GetId(), tx.Event(EventMachineState, m.GetId(), msg)
}

func setPresence(tx *store.Tx, p *underlayv1.SetPresence) (string, error) {
	m, err := tx.Machine(p.GetMachineId())
	if err != nil {
		return "", fmt.Errorf("set presence: %w", err)
	}
	if !p.GetOnline() && m.GetConnectedNode() != p.GetNodeId() {
		// The machine has moved to another node since; that node owns its
		// presence now, so a late "offline" from the old one is ignored.
		return m.GetId(), nil
	}
	if p.GetOnline() == m.GetOnline() && m.GetConnectedNode() == p.GetNodeId() {
		return m.GetId(), nil
	}
	m.Online = p.GetOnline()
	m.LastSeen = tx.Now()
	m.ConnectedNode = p.GetNodeId()
	if err := tx.PutMachine(m); err != nil {
		return "", err
	}
	kind, msg := EventMachineOffline, "offline"
	if p.GetOnline() {
		kind, msg = EventMachineOnline, "online"
	}
	if p.GetNodeId() != "" {
		msg += " on node " + p.GetNodeId()
	}
	return m.GetId(), tx.Event(kind, m.GetId(), msg)
}
