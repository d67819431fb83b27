package rpc

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
	"underlay.dev/server/internal/plan"
	"underlay.dev/server/internal/store"
)

// sealParams seals every secret value of params that arrived in the clear.
func (s *Server) sealParams(params map[string]*underlayv1.ParamValue) error {
	for name, pv := range params {
		if !pv.GetSecret() || pv.GetValue() == "" {
			if pv.GetSecret() && len(pv.GetSealed()) > 0 {
				return invalidf("param %s: a client cannot send sealed values; send the secret value", name)
			}
			continue
		}
		if s.sealer == nil {
			return fmt.Errorf("param %s: this node has no sealing key", name)
		}
		b, err := s.sealer.Seal([]byte(pv.GetValue()), plan.ParamPurpose(name))
		if err != nil {
			return err
		}
		pv.Value, pv.Sealed = "", b
	}
	return nil
}

// redact removes sealed secret values before a definition leaves the
// cluster: clients get {secret: true} and never the ciphertext.
func redact(d *underlayv1.Definition) *underlayv1.Definition {
	for _, pv := range catalog.Params(d) {
		redactParam(pv)
	}
	return d
}

func redactMachine(m *underlayv1.Machine) *underlayv1.Machine {
	for _, pv := range m.GetParams() {
		redactParam(pv)
	}
	return m
}

func redactPlan(p *underlayv1.Plan) *underlayv1.Plan {
	redactOutputs(p.GetOutputs())
	return p
}

func redactJob(j *underlayv1.Job) *underlayv1.Job {
	redactOutputs(j.GetOutputs())
	return j
}

func redactParam(pv *underlayv1.ParamValue) {
	if pv.GetSecret() {
		pv.Value, pv.Sealed = "", nil
	}
}

func redactOutputs(outs []*underlayv1.Output) {
	for _, o := range outs {
		if o.GetSecret() {
			o.Value, o.Sealed = "", nil
		}
	}
}

// Apply creates or updates definitions, all or nothing.
func (s *provisionService) Apply(ctx context.Context, req *underlayv1.ApplyDefinitionsRequest) (*underlayv1.ApplyDefinitionsResponse, error) {
	if len(req.GetDefinitions()) == 0 {
		return nil, toStatus(invalidf("no definitions to apply"))
	}
	defs := make([]*underlayv1.Definition, 0, len(req.GetDefinitions()))
	for _, d := range req.GetDefinitions() {
		d = proto.Clone(d).(*underlayv1.Definition)
		if catalog.Kind(d) == "" {
			return nil, toStatus(invalidf("definition %d is empty", len(defs)))
		}
		if err := s.sealParams(catalog.Params(d)); err != nil {
			return nil, toStatus(fmt.Errorf("%s %s: %w", catalog.Kind(d), catalog.Name(d), err))
		}
		defs = append(defs, d)
	}
	cmd := &underlayv1.Command{Cmd: &underlayv1.Command_ApplyDefinitions{ApplyDefinitions: &underlayv1.ApplyDefinitions{Definitions: defs}}}
	if req.GetDryRun() {
		return s.dryRunApply(ctx, cmd, defs)
	}
	res, err := s.applyAndWait(ctx, cmd)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &underlayv1.ApplyDefinitionsResponse{Index: res.GetIndex()}
	for _, d := range defs {
		kind, name := catalog.Kind(d), catalog.Name(d)
		r := &underlayv1.DefinitionChange{Kind: kind, Name: name, Source: catalog.Meta(d).GetSource(), Change: "unchanged"}
		if cur, err := s.store.Definition(kind, name); err == nil {
			m := catalog.Meta(cur)
			r.Version = m.GetVersion()
			switch {
			case m.GetCreateIndex() == res.GetIndex():
				r.Change = "created"
			case m.GetModifyIndex() == res.GetIndex():
				r.Change = "updated"
			}
		}
		out.Results = append(out.Results, r)
	}
	s.log.Info("definitions applied", "count", len(defs), "index", res.GetIndex(), "by", actor(ctx))
	return out, nil
}

func (s *provisionService) dryRunApply(ctx context.Context, cmd *underlayv1.Command, defs []*underlayv1.Definition) (*underlayv1.ApplyDefinitionsResponse, error) {
	if s.dryRun == nil {
		return nil, toStatus(fmt.Errorf("dry runs are not available on this node"))
	}
	if err := s.read(ctx, nil); err != nil {
		return nil, toStatus(err)
	}
	cmd.Time, cmd.Actor = nowProto(s.now()), actor(ctx)
	if _, err := s.dryRun(cmd); err != nil {
		return nil, toStatus(err)
	}
	out := &underlayv1.ApplyDefinitionsResponse{}
	for _, d := range defs {
		kind, name := catalog.Kind(d), catalog.Name(d)
		r := &underlayv1.DefinitionChange{Kind: kind, Name: name, Source: catalog.Meta(d).GetSource(), Change: "would create"}
		if cur, err := s.store.Definition(kind, name); err == nil {
			r.Version = catalog.Meta(cur).GetVersion()
			r.Change = "would update (or keep)"
		}
		out.Results = append(out.Results, r)
	}
	return out, nil
}

var defKinds = []string{store.KindTask, store.KindRole, store.KindProfile, store.KindRule, store.KindGlobal}

func checkKind(kind string, allowEmpty bool) error {
	if kind == "" && allowEmpty {
		return nil
	}
	for _, k := range defKinds {
		if k == kind {
			return nil
		}
	}
	return invalidf("kind %q: want one of %s", kind, strings.Join(defKinds, ", "))
}

// ListDefinitions lists definitions of one kind or all.
func (s *provisionService) ListDefinitions(ctx context.Context, req *underlayv1.ListDefinitionsRequest) (*underlayv1.ListDefinitionsResponse, error) {
	if err := checkKind(req.GetKind(), true); err != nil {
		return nil, toStatus(err)
	}
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	out := &underlayv1.ListDefinitionsResponse{}
	for _, d := range s.store.Definitions(req.GetKind()) {
		out.Definitions = append(out.Definitions, redact(d))
	}
	return out, nil
}

// GetDefinition returns one definition (version 0: the current one).
func (s *provisionService) GetDefinition(ctx context.Context, req *underlayv1.GetDefinitionRequest) (*underlayv1.Definition, error) {
	if err := checkKind(req.GetKind(), false); err != nil {
		return nil, toStatus(err)
	}
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	name := req.GetName()
	if req.GetKind() == store.KindGlobal {
		name = store.KindGlobal
	}
	var (
		d   *underlayv1.Definition
		err error
	)
	if req.GetVersion() == 0 {
		d, err = s.store.Definition(req.GetKind(), name)
	} else {
		d, err = s.store.DefinitionVersion(req.GetKind(), name, req.GetVersion())
	}
	if err != nil {
		return nil, toStatus(notFoundf("%s %q", req.GetKind(), req.GetName()))
	}
	return redact(d), nil
}

// DeleteDefinition removes a definition nothing refers to.
func (s *provisionService) DeleteDefinition(ctx context.Context, req *underlayv1.DeleteDefinitionRequest) (*underlayv1.DeleteDefinitionResponse, error) {
	if err := checkKind(req.GetKind(), false); err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_DeleteDefinition{DeleteDefinition: &underlayv1.DeleteDefinition{
		Kind: req.GetKind(), Name: req.GetName(),
	}}}); err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.DeleteDefinitionResponse{}, nil
}

// SetParams changes global or machine params and a machine's profiles.
func (s *provisionService) SetParams(ctx context.Context, req *underlayv1.SetParamsRequest) (*underlayv1.SetParamsResponse, error) {
	set := map[string]*underlayv1.ParamValue{}
	for k, v := range req.GetSet() {
		set[k] = proto.Clone(v).(*underlayv1.ParamValue)
	}
	if err := s.sealParams(set); err != nil {
		return nil, toStatus(err)
	}
	res, err := s.apply(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_SetParams{SetParams: &underlayv1.SetParams{
		MachineId: req.GetMachineId(), Set: set, Remove: req.GetRemove(),
		AddProfiles: req.GetAddProfiles(), RemoveProfiles: req.GetRemoveProfiles(),
	}}})
	if err != nil {
		return nil, toStatus(err)
	}
	return &underlayv1.SetParamsResponse{Index: res.GetIndex()}, nil
}

// ShowParams resolves a machine's params and says where each came from.
func (s *provisionService) ShowParams(ctx context.Context, req *underlayv1.ShowParamsRequest) (*underlayv1.ShowParamsResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	view := s.store.View()
	m, ok := view.Machine(req.GetMachineId())
	if !ok {
		return nil, toStatus(notFoundf("machine %q", req.GetMachineId()))
	}
	p, _ := view.Plan(m.GetId())
	return &underlayv1.ShowParamsResponse{Params: plan.Show(view, m, p), Role: m.GetRole()}, nil
}

// planOf returns a machine's plan from this node's store, secrets redacted.
func (s *provisionService) planOf(machineID string) (*underlayv1.Plan, error) {
	p, err := s.store.Plan(machineID)
	if err != nil {
		return nil, toStatus(err)
	}
	return redactPlan(p), nil
}

// Assign gives a machine a role and returns the resolved plan.
func (s *provisionService) Assign(ctx context.Context, req *underlayv1.AssignRequest) (*underlayv1.Plan, error) {
	if req.GetMachineId() == "" || req.GetRole() == "" {
		return nil, toStatus(invalidf("machine id and role are required"))
	}
	if _, err := s.applyAndWait(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_AssignRole{AssignRole: &underlayv1.AssignRole{
		MachineId: req.GetMachineId(), Role: req.GetRole(),
	}}}); err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("role assigned", "machine_id", req.GetMachineId(), "role", req.GetRole(), "by", actor(ctx))
	return s.planOf(req.GetMachineId())
}

// GetPlan returns a machine's plan.
func (s *provisionService) GetPlan(ctx context.Context, req *underlayv1.GetPlanRequest) (*underlayv1.Plan, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.store.Machine(req.GetMachineId()); err != nil {
		return nil, toStatus(notFoundf("machine %q", req.GetMachineId()))
	}
	p, err := s.store.Plan(req.GetMachineId())
	if err != nil {
		return nil, toStatus(notFoundf("machine %s has no plan: assign it a role with 'underlay machine assign %s --role ROLE'", req.GetMachineId(), req.GetMachineId()))
	}
	return redactPlan(p), nil
}

func (s *provisionService) planCommand(ctx context.Context, machineID string, cmd *underlayv1.Command, what string) (*underlayv1.Plan, error) {
	if machineID == "" {
		return nil, toStatus(invalidf("machine id is required"))
	}
	if _, err := s.applyAndWait(ctx, cmd); err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("plan "+what, "machine_id", machineID, "by", actor(ctx))
	return s.planOf(machineID)
}

// Retry makes the failed or cancelled step runnable again.
func (s *provisionService) Retry(ctx context.Context, req *underlayv1.MachinePlanRequest) (*underlayv1.Plan, error) {
	return s.planCommand(ctx, req.GetMachineId(), &underlayv1.Command{Cmd: &underlayv1.Command_RetryPlan{RetryPlan: &underlayv1.RetryPlan{MachineId: req.GetMachineId()}}}, "retried")
}

// Cancel stops a running plan.
func (s *provisionService) Cancel(ctx context.Context, req *underlayv1.MachinePlanRequest) (*underlayv1.Plan, error) {
	return s.planCommand(ctx, req.GetMachineId(), &underlayv1.Command{Cmd: &underlayv1.Command_CancelPlan{CancelPlan: &underlayv1.CancelPlan{MachineId: req.GetMachineId(), Reason: req.GetReason()}}}, "cancelled")
}

// Redeploy wipes the machine and rebuilds its role.
func (s *provisionService) Redeploy(ctx context.Context, req *underlayv1.MachinePlanRequest) (*underlayv1.Plan, error) {
	return s.planCommand(ctx, req.GetMachineId(), &underlayv1.Command{Cmd: &underlayv1.Command_RedeployMachine{RedeployMachine: &underlayv1.RedeployMachine{MachineId: req.GetMachineId()}}}, "redeploy")
}

// ListJobs lists a machine's jobs, oldest first.
func (s *provisionService) ListJobs(ctx context.Context, req *underlayv1.ListJobsRequest) (*underlayv1.ListJobsResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	if _, err := s.store.Machine(req.GetMachineId()); err != nil {
		return nil, toStatus(notFoundf("machine %q", req.GetMachineId()))
	}
	out := &underlayv1.ListJobsResponse{}
	for _, j := range s.store.Jobs(req.GetMachineId()) {
		out.Jobs = append(out.Jobs, redactJob(j))
	}
	return out, nil
}

// ListRoleStatus lists the rollout state of every role.
func (s *provisionService) ListRoleStatus(ctx context.Context, req *underlayv1.ListRoleStatusRequest) (*underlayv1.ListRoleStatusResponse, error) {
	if err := s.read(ctx, req.GetRead()); err != nil {
		return nil, toStatus(err)
	}
	have := map[string]*underlayv1.RoleStatus{}
	for _, r := range s.store.RoleStatuses() {
		have[r.GetRole()] = r
	}
	var out []*underlayv1.RoleStatus
	for _, d := range s.store.Definitions(store.KindRole) {
		name := d.GetRole().GetName()
		if r, ok := have[name]; ok {
			out = append(out, r)
		} else {
			out = append(out, &underlayv1.RoleStatus{Role: name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetRole() < out[j].GetRole() })
	return &underlayv1.ListRoleStatusResponse{Roles: out}, nil
}

// ResumeRole closes a role's tripped circuit breaker.
func (s *provisionService) ResumeRole(ctx context.Context, req *underlayv1.ResumeRoleRequest) (*underlayv1.RoleStatus, error) {
	if _, err := s.applyAndWait(ctx, &underlayv1.Command{Cmd: &underlayv1.Command_ResumeRole{ResumeRole: &underlayv1.ResumeRole{Role: req.GetRole()}}}); err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("role resumed", "role", req.GetRole(), "by", actor(ctx))
	return s.store.RoleStatus(req.GetRole()), nil
}
