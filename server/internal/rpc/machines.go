package rpc

import (
	"context"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/machine"
)

// List lists machines, filtered by state, labels, presence and free text.
func (s *machineService) List(ctx context.Context, req *underlayv1.ListMachinesRequest) (*underlayv1.ListMachinesResponse, error) {
	var state underlayv1.MachineState
	if req.GetState() != "" {
		st, err := machine.ParseState(req.GetState())
		if err != nil {
			return nil, toStatus(invalidf("state %q: %v", req.GetState(), err))
		}
		state = st
	}
	var online *bool
	switch req.GetOnline() {
	case "":
	case "true", "false":
		v := req.GetOnline() == "true"
		online = &v
	default:
		return nil, toStatus(invalidf("online %q: want true or false", req.GetOnline()))
	}
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	q := strings.ToLower(req.GetQuery())
	var out []*underlayv1.Machine
	for _, m := range s.store.Machines() {
		s.enrich(m)
		if state != underlayv1.MachineState_MACHINE_STATE_UNSPECIFIED && m.GetState() != state {
			continue
		}
		if online != nil && m.GetOnline() != *online {
			continue
		}
		if !hasLabels(m, req.GetLabels()) || (q != "" && !matchesText(m, q)) {
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetCreateIndex() < out[j].GetCreateIndex() })
	return &underlayv1.ListMachinesResponse{Machines: out}, nil
}

func hasLabels(m *underlayv1.Machine, want map[string]string) bool {
	for k, v := range want {
		if got, ok := m.GetLabels()[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func matchesText(m *underlayv1.Machine, q string) bool {
	fields := []string{m.GetId(), m.GetHostname(), m.GetRole(), m.GetIdentity().GetUuid()}
	fields = append(fields, m.GetIdentity().GetMacs()...)
	fields = append(fields, m.GetIdentity().GetSerials()...)
	for k, v := range m.GetLabels() {
		fields = append(fields, k+"="+v)
	}
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

// Get returns one machine.
func (s *machineService) Get(ctx context.Context, req *underlayv1.GetMachineRequest) (*underlayv1.Machine, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	m, err := s.store.Machine(req.GetId())
	if err != nil {
		return nil, toStatus(notFoundf("machine %q", req.GetId()))
	}
	s.enrich(m)
	return m, nil
}

// GetInventory returns the latest inventory of a machine.
func (s *machineService) GetInventory(ctx context.Context, req *underlayv1.GetMachineRequest) (*underlayv1.Inventory, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	inv, _, err := s.store.Inventory(req.GetId())
	if err != nil {
		return nil, toStatus(notFoundf("inventory of machine %q", req.GetId()))
	}
	return inv, nil
}

// Label sets and removes labels.
func (s *machineService) Label(ctx context.Context, req *underlayv1.LabelMachineRequest) (*underlayv1.Machine, error) {
	for k := range req.GetSet() {
		if k == "" {
			return nil, toStatus(invalidf("label key must not be empty"))
		}
	}
	if _, err := s.applyAndWait(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_SetMachineLabels{SetMachineLabels: &underlayv1.SetMachineLabels{
		MachineId: req.GetId(), Set: req.GetSet(), Remove: req.GetRemove(),
	}}}); err != nil {
		return nil, toStatus(err)
	}
	m, err := s.store.Machine(req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	s.enrich(m)
	return m, nil
}

// Delete removes a machine and revokes its certificates.
func (s *machineService) Delete(ctx context.Context, req *underlayv1.DeleteMachineRequest) (*underlayv1.DeleteMachineResponse, error) {
	if err := s.read(ctx, nil); err != nil {
		return nil, toStatus(err)
	}
	subject := machine.Subject(req.GetId())
	before := map[string]bool{}
	for _, iss := range s.store.IssuedTo(subject) {
		before[iss.GetSerial()] = s.store.Revoked(iss.GetSerial())
	}
	if _, err := s.applyAndWait(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_DeleteMachine{DeleteMachine: &underlayv1.DeleteMachine{MachineId: req.GetId()}}}); err != nil {
		return nil, toStatus(err)
	}
	var revoked []string
	for serial, was := range before {
		if !was && s.store.Revoked(serial) {
			revoked = append(revoked, serial)
		}
	}
	sort.Strings(revoked)
	s.log.Info("machine deleted", "machine_id", req.GetId(), "revoked", revoked, "by", actor(ctx))
	return &underlayv1.DeleteMachineResponse{RevokedSerials: revoked}, nil
}

// Events lists the events of a machine ("" for the whole cluster).
func (s *machineService) Events(ctx context.Context, req *underlayv1.MachineEventsRequest) (*underlayv1.MachineEventsResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	if req.GetId() != "" {
		if _, err := s.store.Machine(req.GetId()); err != nil {
			if evs := s.store.Events(req.GetId()); len(evs) == 0 {
				return nil, toStatus(notFoundf("machine %q", req.GetId()))
			}
		}
	}
	return &underlayv1.MachineEventsResponse{Events: s.store.Events(req.GetId())}, nil
}

// Watch streams events as this node applies them.
func (s *machineService) Watch(req *underlayv1.WatchRequest, stream underlayv1.MachineService_WatchServer) error {
	ch, cancel := s.store.Subscribe()
	defer cancel()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-s.done:
			return errf(codes.Unavailable, "node %s is shutting down", s.cluster.ID())
		case ev, ok := <-ch:
			if !ok {
				return errf(codes.Unavailable, "event stream fell behind or the state was restored from a snapshot; watch again")
			}
			if req.GetMachineId() != "" && ev.GetMachineId() != req.GetMachineId() {
				continue
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}
