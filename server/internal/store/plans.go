package store

import (
	"fmt"
	"sort"

	"github.com/hashicorp/go-memdb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const (
	tablePlans      = "plans"
	tableJobs       = "jobs"
	tableLogs       = "logs"
	tableRoleStatus = "role_status"
)

// Retention of jobs and their output.
const (
	// MaxMachineJobs is how many jobs are kept per machine (with their logs).
	MaxMachineJobs = 200
	// MaxJobLogBytes caps the stored output of one job; the rest is dropped
	// and the job marked log_truncated.
	MaxJobLogBytes = 1 << 20
)

// logRow is one chunk of a job's output.
type logRow struct {
	JobID  string
	Offset uint64
	Chunk  *underlayv1.LogChunk
}

func plansTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tablePlans,
		Indexes: map[string]*memdb.IndexSchema{
			"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "MachineId"}},
			"role": {Name: "role", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Role"}},
			"running": {Name: "running", Indexer: &memdb.ConditionalIndex{Conditional: func(raw any) (bool, error) {
				return raw.(*underlayv1.Plan).GetState() == underlayv1.PlanState_PLAN_STATE_RUNNING, nil
			}}},
		},
	}
}

func jobsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableJobs,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
			"machine": {Name: "machine", Unique: true, Indexer: seqIndex{
				str: func(raw any) string { return raw.(*underlayv1.Job).GetMachineId() },
				seq: func(raw any) uint64 { return raw.(*underlayv1.Job).GetCreateIndex() },
			}},
		},
	}
}

func logsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableLogs,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: seqIndex{
				str: func(raw any) string { return raw.(*logRow).JobID },
				seq: func(raw any) uint64 { return raw.(*logRow).Offset },
			}},
		},
	}
}

func roleStatusTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableRoleStatus,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Role"}},
		},
	}
}

func getPlan(txn *memdb.Txn, machineID string) (*underlayv1.Plan, bool) {
	raw, err := txn.First(tablePlans, "id", machineID)
	if err != nil || raw == nil {
		return nil, false
	}
	return clone(raw.(*underlayv1.Plan)), true
}

func getJob(txn *memdb.Txn, id string) (*underlayv1.Job, bool) {
	raw, err := txn.First(tableJobs, "id", id)
	if err != nil || raw == nil {
		return nil, false
	}
	return clone(raw.(*underlayv1.Job)), true
}

func plansWithRole(txn *memdb.Txn, role string) []*underlayv1.Plan {
	out := clones(getAll[*underlayv1.Plan](txn, tablePlans, "role", role))
	sort.Slice(out, func(i, j int) bool { return out[i].GetCreateIndex() < out[j].GetCreateIndex() })
	return out
}

func roleStatus(txn *memdb.Txn, role string) *underlayv1.RoleStatus {
	raw, err := txn.First(tableRoleStatus, "id", role)
	if err != nil || raw == nil {
		return &underlayv1.RoleStatus{Role: role}
	}
	return clone(raw.(*underlayv1.RoleStatus))
}

// Plan returns the plan of a machine.
func (s *Store) Plan(machineID string) (*underlayv1.Plan, error) {
	p, ok := getPlan(s.read(), machineID)
	if !ok {
		return nil, fmt.Errorf("plan of machine %s: %w", machineID, ErrNotFound)
	}
	return p, nil
}

// Job returns a job by ID.
func (s *Store) Job(id string) (*underlayv1.Job, error) {
	j, ok := getJob(s.read(), id)
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return j, nil
}

// Jobs returns the jobs of a machine, oldest first.
func (s *Store) Jobs(machineID string) []*underlayv1.Job {
	return clones(getAll[*underlayv1.Job](s.read(), tableJobs, "machine_prefix", machineID))
}

// Logs returns the stored output of a job from byte offset from on.
func (s *Store) Logs(jobID string, from uint64) []*underlayv1.LogChunk {
	var out []*underlayv1.LogChunk
	for _, r := range getAll[*logRow](s.read(), tableLogs, "id_prefix", jobID) {
		if r.Offset+uint64(len(r.Chunk.GetData())) > from {
			out = append(out, clone(r.Chunk))
		}
	}
	return out
}

// RoleStatuses returns the rollout state of every role that has one.
func (s *Store) RoleStatuses() []*underlayv1.RoleStatus {
	return clones(getAll[*underlayv1.RoleStatus](s.read(), tableRoleStatus, "id"))
}

// RoleStatus returns the rollout state of a role (zero if none).
func (s *Store) RoleStatus(role string) *underlayv1.RoleStatus { return roleStatus(s.read(), role) }

// Plan returns the plan of a machine.
func (v *View) Plan(machineID string) (*underlayv1.Plan, bool) { return getPlan(v.txn, machineID) }

// PlansWithRole returns the plans of a role, oldest first.
func (v *View) PlansWithRole(role string) []*underlayv1.Plan { return plansWithRole(v.txn, role) }

// RoleStatus returns the rollout state of a role.
func (v *View) RoleStatus(role string) *underlayv1.RoleStatus { return roleStatus(v.txn, role) }

// RunningPlans returns every running plan.
func (v *View) RunningPlans() []*underlayv1.Plan {
	return clones(getAll[*underlayv1.Plan](v.txn, tablePlans, "running", true))
}

// Job returns a job by ID.
func (v *View) Job(id string) (*underlayv1.Job, bool) { return getJob(v.txn, id) }

// MachinesWhere returns the machines for which keep is true, sorted by ID.
// keep sees the stored machine and must not change it; only the machines
// it keeps are copied, so a scan that keeps few stays cheap.
func (v *View) MachinesWhere(keep func(*underlayv1.Machine) bool) []*underlayv1.Machine {
	var kept []*underlayv1.Machine
	for _, m := range getAll[*underlayv1.Machine](v.txn, tableMachines, "id") {
		if keep(m) {
			kept = append(kept, m)
		}
	}
	return clones(kept)
}

// Machine returns a machine.
func (v *View) Machine(id string) (*underlayv1.Machine, bool) {
	raw, err := v.txn.First(tableMachines, "id", id)
	if err != nil || raw == nil {
		return nil, false
	}
	return clone(raw.(*underlayv1.Machine)), true
}

// Inventory returns the latest inventory of a machine.
func (v *View) Inventory(machineID string) (*underlayv1.Inventory, bool) {
	inv, _, err := latestInventory(v.txn, machineID)
	return inv, err == nil
}

// Plan returns the plan of a machine.
func (tx *Tx) Plan(machineID string) (*underlayv1.Plan, bool) { return getPlan(tx.txn, machineID) }

// PlansWithRole returns the plans of a role, oldest first.
func (tx *Tx) PlansWithRole(role string) []*underlayv1.Plan { return plansWithRole(tx.txn, role) }

// Inventory returns the latest inventory of a machine.
func (tx *Tx) Inventory(machineID string) (*underlayv1.Inventory, bool) {
	inv, _, err := latestInventory(tx.txn, machineID)
	return inv, err == nil
}

// PutPlan creates or replaces the plan of a machine.
func (tx *Tx) PutPlan(p *underlayv1.Plan) error {
	if p.GetMachineId() == "" {
		return fmt.Errorf("put plan: machine id required: %w", ErrInvalid)
	}
	p = clone(p)
	p.CreateIndex, p.ModifyIndex = tx.idx, tx.idx
	if old, ok := getPlan(tx.txn, p.GetMachineId()); ok {
		p.CreateIndex = old.GetCreateIndex()
	}
	if err := tx.txn.Insert(tablePlans, p); err != nil {
		return fmt.Errorf("put plan of %s: %w", p.GetMachineId(), err)
	}
	return nil
}

// DeletePlan removes a machine's plan, its jobs and their logs.
func (tx *Tx) DeletePlan(machineID string) error {
	if _, err := tx.txn.DeleteAll(tablePlans, "id", machineID); err != nil {
		return fmt.Errorf("delete plan of %s: %w", machineID, err)
	}
	for _, j := range getAll[*underlayv1.Job](tx.txn, tableJobs, "machine_prefix", machineID) {
		if err := tx.dropJob(j); err != nil {
			return err
		}
	}
	return nil
}

// Job returns a job.
func (tx *Tx) Job(id string) (*underlayv1.Job, bool) { return getJob(tx.txn, id) }

// PutJob creates or replaces a job. A new job beyond MaxMachineJobs for its
// machine pushes out the oldest one with its logs.
func (tx *Tx) PutJob(j *underlayv1.Job) error {
	if j.GetId() == "" || j.GetMachineId() == "" {
		return fmt.Errorf("put job: id and machine required: %w", ErrInvalid)
	}
	j = clone(j)
	j.CreateIndex, j.ModifyIndex = tx.idx, tx.idx
	old, exists := getJob(tx.txn, j.GetId())
	if exists {
		j.CreateIndex = old.GetCreateIndex()
	}
	if err := tx.txn.Insert(tableJobs, j); err != nil {
		return fmt.Errorf("put job %s: %w", j.GetId(), err)
	}
	if exists {
		return nil
	}
	jobs := getAll[*underlayv1.Job](tx.txn, tableJobs, "machine_prefix", j.GetMachineId())
	for len(jobs) > MaxMachineJobs {
		if err := tx.dropJob(jobs[0]); err != nil {
			return err
		}
		jobs = jobs[1:]
	}
	return nil
}

func (tx *Tx) dropJob(j *underlayv1.Job) error {
	if err := tx.txn.Delete(tableJobs, j); err != nil {
		return fmt.Errorf("drop job %s: %w", j.GetId(), err)
	}
	if _, err := tx.txn.DeleteAll(tableLogs, "id_prefix", j.GetId()); err != nil {
		return fmt.Errorf("drop logs of job %s: %w", j.GetId(), err)
	}
	return nil
}

// AppendLog stores a chunk of a job's output at its offset, within
// MaxJobLogBytes. A chunk (or the part of it) that was stored already is
// skipped, so that a resent chunk is stored once. It returns the job as
// updated (log_bytes, log_truncated).
func (tx *Tx) AppendLog(c *underlayv1.LogChunk) (*underlayv1.Job, error) {
	j, ok := getJob(tx.txn, c.GetJobId())
	if !ok {
		return nil, fmt.Errorf("log of job %s: %w", c.GetJobId(), ErrNotFound)
	}
	data := c.GetData()
	off := c.GetOffset()
	if end := off + uint64(len(data)); end <= j.GetLogBytes() {
		return j, nil // stored already
	}
	if off < j.GetLogBytes() {
		data = data[j.GetLogBytes()-off:]
		off = j.GetLogBytes()
	}
	room := uint64(MaxJobLogBytes) - min(j.GetLogBytes(), MaxJobLogBytes)
	if uint64(len(data)) > room {
		data = data[:room]
		j.LogTruncated = true
	}
	if len(data) > 0 {
		stored := &underlayv1.LogChunk{JobId: j.GetId(), MachineId: j.GetMachineId(), Offset: off, Data: data, Stream: c.GetStream(), Time: tx.Now()}
		if err := tx.txn.Insert(tableLogs, &logRow{JobID: j.GetId(), Offset: off, Chunk: stored}); err != nil {
			return nil, fmt.Errorf("append log of %s: %w", j.GetId(), err)
		}
		j.LogBytes = off + uint64(len(data))
	}
	if err := tx.PutJob(j); err != nil {
		return nil, err
	}
	return j, nil
}

// RoleStatus returns the rollout state of a role (zero if none).
func (tx *Tx) RoleStatus(role string) *underlayv1.RoleStatus { return roleStatus(tx.txn, role) }

// PutRoleStatus stores a role's rollout state.
func (tx *Tx) PutRoleStatus(r *underlayv1.RoleStatus) error {
	r = clone(r)
	r.ModifyIndex = tx.idx
	if err := tx.txn.Insert(tableRoleStatus, r); err != nil {
		return fmt.Errorf("put role status %s: %w", r.GetRole(), err)
	}
	return nil
}

// DeleteRoleStatus removes a role's rollout state.
func (tx *Tx) DeleteRoleStatus(role string) error {
	if _, err := tx.txn.DeleteAll(tableRoleStatus, "id", role); err != nil {
		return fmt.Errorf("delete role status %s: %w", role, err)
	}
	return nil
}
