package fsm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
	"underlay.dev/server/internal/plan"
	"underlay.dev/server/internal/store"
)

func def(d any) *underlayv1.Definition {
	switch x := d.(type) {
	case *underlayv1.Task:
		return &underlayv1.Definition{Def: &underlayv1.Definition_Task{Task: x}}
	case *underlayv1.Role:
		return &underlayv1.Definition{Def: &underlayv1.Definition_Role{Role: x}}
	case *underlayv1.Profile:
		return &underlayv1.Definition{Def: &underlayv1.Definition_Profile{Profile: x}}
	case *underlayv1.Rule:
		return &underlayv1.Definition{Def: &underlayv1.Definition_Rule{Rule: x}}
	}
	panic("unknown definition")
}

func applyDefs(defs ...*underlayv1.Definition) *underlayv1.Command {
	return &underlayv1.Command{Cmd: &underlayv1.Command_ApplyDefinitions{ApplyDefinitions: &underlayv1.ApplyDefinitions{Definitions: defs}}}
}

func assignCmd(id, role string) *underlayv1.Command {
	return &underlayv1.Command{Cmd: &underlayv1.Command_AssignRole{AssignRole: &underlayv1.AssignRole{MachineId: id, Role: role}}}
}

func startCmd(p *underlayv1.Plan) *underlayv1.Command {
	s := plan.Current(p)
	return &underlayv1.Command{Cmd: &underlayv1.Command_StartJob{StartJob: &underlayv1.StartJob{
		MachineId: p.GetMachineId(), Generation: p.GetGeneration(), Step: s.GetIndex(),
		JobId: plan.JobID(p.GetMachineId(), p.GetGeneration(), s.GetIndex(), s.GetAttempt()+1),
	}}}
}

func finishCmd(job string, ok bool, errText string, outs ...*underlayv1.Output) *underlayv1.Command {
	return &underlayv1.Command{Cmd: &underlayv1.Command_FinishJob{FinishJob: &underlayv1.FinishJob{JobId: job, Success: ok, Error: errText, Outputs: outs}}}
}

// provisioned is a cluster with two enrolled machines and a role of two
// tasks: the first publishes an output, the second may be retried once.
func provisioned(tb testing.TB) *harness {
	tb.Helper()
	h := newHarness(tb)
	disc := underlayv1.TokenKind_TOKEN_KIND_DISCOVERY
	inv := &underlayv1.Inventory{Disks: []*underlayv1.BlockDevice{{Name: "vdb", SizeBytes: 8 << 30}, {Name: "vdc", SizeBytes: 8 << 30}}}
	h.mustApply(tb, bootstrapCmd(), tokenCmd("disc", disc, 0, t0.Add(1e6*1e9)),
		enrollCmd("m-1", "disc", identity(uuid1, "52:54:00:00:00:01"), "c-1", inv),
		enrollCmd("m-2", "disc", identity("0b9a8c7d-6e5f-4a3b-9c2d-1e0f00aabbcc", "52:54:00:00:00:02"), "c-2", inv),
		applyDefs(
			def(&underlayv1.Task{Name: "publish", Script: "echo", Outputs: []*underlayv1.OutputSpec{{Name: "token"}}}),
			def(&underlayv1.Task{Name: "use", Script: "echo {{ .params.token }}", Retries: 1,
				Inputs: []*underlayv1.ParamSpec{{Name: "token", Required: true}}}),
			def(&underlayv1.Role{Name: "app", Tasks: []string{"publish", "use"}, Breaker: &underlayv1.Breaker{MaxFailures: 2}}),
		),
	)
	return h
}

func (h *harness) plan(tb testing.TB, id string) *underlayv1.Plan {
	tb.Helper()
	p, err := h.store.Plan(id)
	if err != nil {
		tb.Fatalf("plan of %s: %v", id, err)
	}
	return p
}

func (h *harness) machineState(tb testing.TB, id string) underlayv1.MachineState {
	tb.Helper()
	m, err := h.store.Machine(id)
	if err != nil {
		tb.Fatal(err)
	}
	return m.GetState()
}

func TestPlanRunsToActive(t *testing.T) {
	h := provisioned(t)
	h.mustApply(t, assignCmd("m-1", "app"))
	p := h.plan(t, "m-1")
	if got, want := h.machineState(t, "m-1"), underlayv1.MachineState_MACHINE_STATE_CONFIGURING; got != want {
		t.Errorf("after assign the machine is %s, want %s", got, want)
	}
	h.mustApply(t, startCmd(p))
	job := plan.Current(h.plan(t, "m-1")).GetJobId()
	if got := h.machineState(t, "m-1"); got != underlayv1.MachineState_MACHINE_STATE_DEPLOYING {
		t.Errorf("with a task dispatched the machine is %s, want deploying", got)
	}
	// A second dispatch of the same step is refused.
	if res := h.apply(t, startCmd(p)); res.GetErrorKind() != underlayv1.ErrorKind_ERROR_KIND_FAILED_PRECONDITION {
		t.Errorf("second StartJob: %v %s", res.GetErrorKind(), res.GetErrorMessage())
	}
	h.mustApply(t,
		&underlayv1.Command{Cmd: &underlayv1.Command_JobStarted{JobStarted: &underlayv1.JobStarted{JobId: job, NodeId: "n1"}}},
		finishCmd(job, true, "", &underlayv1.Output{Name: "token", Value: "t-123"}),
	)
	before := h.plan(t, "m-1")
	// The agent sends its result again (a lost ack): nothing changes.
	h.mustApply(t, finishCmd(job, true, "", &underlayv1.Output{Name: "token", Value: "other"}))
	if diff := cmp.Diff(before, h.plan(t, "m-1"), protocmp.Transform(), protocmp.IgnoreFields(&underlayv1.Plan{}, "modify_index")); diff != "" {
		t.Errorf("a repeated result changed the plan (-before +after):\n%s", diff)
	}
	if o, _ := plan.Output(before, "token"); o.GetValue() != "t-123" || o.GetStep() != "publish" {
		t.Errorf("output token = %v", o)
	}
	// The second task fails once (retried), then succeeds.
	h.mustApply(t, startCmd(h.plan(t, "m-1")))
	j2 := plan.Current(h.plan(t, "m-1")).GetJobId()
	h.mustApply(t, finishCmd(j2, false, "exit status 1"))
	s := plan.Current(h.plan(t, "m-1"))
	if s.GetState() != underlayv1.StepState_STEP_STATE_PENDING || !strings.Contains(s.GetReason(), "attempt 1 of 2 failed") {
		t.Errorf("after a failed attempt the step is %s %q, want pending for a retry", s.GetState(), s.GetReason())
	}
	h.mustApply(t, startCmd(h.plan(t, "m-1")))
	j3 := plan.Current(h.plan(t, "m-1")).GetJobId()
	if j3 == j2 || !strings.HasSuffix(j3, ".a2") {
		t.Errorf("retry job id %s, want attempt 2", j3)
	}
	h.mustApply(t, finishCmd(j3, true, ""))
	if p := h.plan(t, "m-1"); p.GetState() != underlayv1.PlanState_PLAN_STATE_SUCCEEDED {
		t.Errorf("plan %s, want succeeded", p.GetState())
	}
	if got := h.machineState(t, "m-1"); got != underlayv1.MachineState_MACHINE_STATE_ACTIVE {
		t.Errorf("machine %s, want active", got)
	}
	// A stale result of the first attempt does not reopen anything.
	h.mustApply(t, finishCmd(j2, true, ""))
	if got := h.machineState(t, "m-1"); got != underlayv1.MachineState_MACHINE_STATE_ACTIVE {
		t.Errorf("after a stale result the machine is %s", got)
	}
}

func TestBreakerTripsAndResumes(t *testing.T) {
	h := provisioned(t)
	for _, id := range []string{"m-1", "m-2"} {
		h.mustApply(t, assignCmd(id, "app"))
		h.mustApply(t, startCmd(h.plan(t, id)))
		h.mustApply(t, finishCmd(plan.Current(h.plan(t, id)).GetJobId(), false, "boom"))
	}
	rs := h.store.RoleStatus("app")
	if !rs.GetPaused() || rs.GetFailures() != 2 || !strings.Contains(rs.GetReason(), "m-1, m-2") {
		t.Fatalf("role status %v, want paused after 2 failures", rs)
	}
	if got := h.machineState(t, "m-1"); got != underlayv1.MachineState_MACHINE_STATE_FAILED {
		t.Errorf("failed machine is %s", got)
	}
	h.mustApply(t, &underlayv1.Command{Cmd: &underlayv1.Command_ResumeRole{ResumeRole: &underlayv1.ResumeRole{Role: "app"}}})
	if rs := h.store.RoleStatus("app"); rs.GetPaused() || rs.GetFailures() != 0 {
		t.Errorf("after resume: %v", rs)
	}
	// A failed plan retries at its failed step.
	h.mustApply(t, &underlayv1.Command{Cmd: &underlayv1.Command_RetryPlan{RetryPlan: &underlayv1.RetryPlan{MachineId: "m-1"}}})
	p := h.plan(t, "m-1")
	if p.GetState() != underlayv1.PlanState_PLAN_STATE_RUNNING || plan.Current(p).GetIndex() != 0 {
		t.Errorf("after retry: plan %s at step %d", p.GetState(), plan.Current(p).GetIndex())
	}
}

func TestCancelAndRedeploy(t *testing.T) {
	h := provisioned(t)
	h.mustApply(t, assignCmd("m-1", "app"))
	h.mustApply(t, startCmd(h.plan(t, "m-1")))
	job := plan.Current(h.plan(t, "m-1")).GetJobId()
	h.mustApply(t, &underlayv1.Command{Cmd: &underlayv1.Command_CancelPlan{CancelPlan: &underlayv1.CancelPlan{MachineId: "m-1", Reason: "wrong rack"}}})
	j, _ := h.store.Job(job)
	if j.GetState() != underlayv1.StepState_STEP_STATE_CANCELLED || h.plan(t, "m-1").GetState() != underlayv1.PlanState_PLAN_STATE_CANCELLED {
		t.Errorf("after cancel: job %s, plan %s", j.GetState(), h.plan(t, "m-1").GetState())
	}
	// The agent's late result changes nothing.
	h.mustApply(t, finishCmd(job, true, ""))
	if h.plan(t, "m-1").GetState() != underlayv1.PlanState_PLAN_STATE_CANCELLED {
		t.Errorf("a late result revived a cancelled plan")
	}
	// Redeploy from failed: a new generation that wipes first.
	h.mustApply(t, &underlayv1.Command{Cmd: &underlayv1.Command_RedeployMachine{RedeployMachine: &underlayv1.RedeployMachine{MachineId: "m-1"}}})
	p := h.plan(t, "m-1")
	var kinds []string
	for _, s := range p.GetSteps() {
		kinds = append(kinds, s.GetName())
	}
	if diff := cmp.Diff([]string{"wipe", "publish", "use"}, kinds); diff != "" || p.GetGeneration() != 2 || len(p.GetOutputs()) != 0 {
		t.Errorf("redeploy plan g%d outputs %v steps (-want +got):\n%s", p.GetGeneration(), p.GetOutputs(), diff)
	}
	if got := h.machineState(t, "m-1"); got != underlayv1.MachineState_MACHINE_STATE_REDEPLOYING {
		t.Errorf("machine %s, want redeploying", got)
	}
}

func TestApplyDefinitionsAllOrNothing(t *testing.T) {
	h := provisioned(t)
	before := h.store.Definitions("")
	res := h.apply(t, applyDefs(
		def(&underlayv1.Task{Name: "fine", Script: "true"}),
		def(&underlayv1.Role{Name: "broken", Tasks: []string{"fine"}, Requires: []*underlayv1.Link{{Role: "ghost", Output: "x"}}}),
	))
	if res.GetErrorKind() != underlayv1.ErrorKind_ERROR_KIND_INVALID || !strings.Contains(res.GetErrorMessage(), "ghost") {
		t.Fatalf("apply: %v %s", res.GetErrorKind(), res.GetErrorMessage())
	}
	if diff := cmp.Diff(before, h.store.Definitions(""), protocmp.Transform()); diff != "" {
		t.Errorf("a rejected apply changed the definitions (-before +after):\n%s", diff)
	}
	// A secret must arrive sealed.
	res = h.apply(t, applyDefs(def(&underlayv1.Profile{Name: "p", Params: map[string]*underlayv1.ParamValue{"pw": {Value: "clear", Secret: true}}})))
	if res.GetErrorKind() != underlayv1.ErrorKind_ERROR_KIND_INVALID || !strings.Contains(res.GetErrorMessage(), "unsealed") {
		t.Errorf("unsealed secret: %v %s", res.GetErrorKind(), res.GetErrorMessage())
	}
	// The same content again keeps the version.
	task, _ := h.store.Definition(store.KindTask, "publish")
	h.mustApply(t, applyDefs(def(&underlayv1.Task{Name: "publish", Script: "echo", Outputs: []*underlayv1.OutputSpec{{Name: "token"}}})))
	again, _ := h.store.Definition(store.KindTask, "publish")
	if catalog.Meta(again).GetVersion() != catalog.Meta(task).GetVersion() {
		t.Errorf("unchanged re-apply bumped the version to %d", catalog.Meta(again).GetVersion())
	}
	// A task a role uses cannot be deleted.
	res = h.apply(t, &underlayv1.Command{Cmd: &underlayv1.Command_DeleteDefinition{DeleteDefinition: &underlayv1.DeleteDefinition{Kind: "task", Name: "use"}}})
	if res.GetErrorKind() != underlayv1.ErrorKind_ERROR_KIND_FAILED_PRECONDITION || !strings.Contains(res.GetErrorMessage(), "role app") {
		t.Errorf("delete a used task: %v %s", res.GetErrorKind(), res.GetErrorMessage())
	}
}

func TestRAIDResolvedAtAssignment(t *testing.T) {
	h := provisioned(t)
	h.mustApply(t, applyDefs(
		def(&underlayv1.Role{Name: "r5", Hardware: &underlayv1.HardwareProfile{RaidJson: `{"logical_disks":[{"raid_level":"5","size_gb":"MAX"}]}`}}),
		def(&underlayv1.Role{Name: "r1", Hardware: &underlayv1.HardwareProfile{RaidJson: `{"logical_disks":[{"raid_level":"1","size_gb":"MAX"}]}`}}),
	))
	h.mustApply(t, assignCmd("m-1", "r5"))
	p := h.plan(t, "m-1")
	if p.GetState() != underlayv1.PlanState_PLAN_STATE_FAILED || !strings.Contains(p.GetSteps()[0].GetReason(), "at least 3 disks") {
		t.Errorf("raid5 on two disks: plan %s, step %q", p.GetState(), p.GetSteps()[0].GetReason())
	}
	if got := h.machineState(t, "m-1"); got != underlayv1.MachineState_MACHINE_STATE_FAILED {
		t.Errorf("machine %s, want failed", got)
	}
	h.mustApply(t, assignCmd("m-1", "r1"))
	p = h.plan(t, "m-1")
	if p.GetState() != underlayv1.PlanState_PLAN_STATE_RUNNING || !strings.Contains(strings.Join(p.GetSteps()[0].GetSummary(), " "), "raid1 of vdb, vdc") {
		t.Errorf("raid1: plan %s, summary %v", p.GetState(), p.GetSteps()[0].GetSummary())
	}
}

// TestProvisioningDeterministic applies the same provisioning log to two
// FSMs and to one restored from a snapshot halfway: the states are equal.
func TestProvisioningDeterministic(t *testing.T) {
	log := func(h *harness) {
		h.mustApply(t, assignCmd("m-1", "app"))
		h.mustApply(t, startCmd(h.plan(t, "m-1")))
		job := plan.Current(h.plan(t, "m-1")).GetJobId()
		h.mustApply(t,
			&underlayv1.Command{Cmd: &underlayv1.Command_AppendJobLog{AppendJobLog: &underlayv1.AppendJobLog{Chunks: []*underlayv1.LogChunk{{JobId: job, Data: []byte("out\n")}}}}},
			finishCmd(job, true, "", &underlayv1.Output{Name: "token", Value: "v"}),
			assignCmd("m-2", "app"),
		)
	}
	a, b := provisioned(t), provisioned(t)
	log(a)
	log(b)
	if !bytes.Equal(a.dump(t), b.dump(t)) {
		t.Error("two FSMs applying the same provisioning log differ")
	}
	c := newHarness(t)
	if err := c.fsm.Restore(nopCloser{bytes.NewReader(a.dump(t))}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.dump(t), c.dump(t)) {
		t.Error("a restored FSM differs from its snapshot's source")
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// TestNetworkTemplatedAndAllocated resolves a role's network profile that
// names its NICs through machine facts, and reserves the static address
// in IPAM in the same write as the plan.
func TestNetworkTemplatedAndAllocated(t *testing.T) {
	h := provisioned(t)
	inv := &underlayv1.Inventory{Nics: []*underlayv1.NIC{
		{Name: "eno1", Mac: "52:54:00:aa:00:02", PermanentMac: "52:54:00:aa:00:02", Kind: "device"},
		{Name: "eno2", Mac: "52:54:00:aa:00:01", PermanentMac: "52:54:00:aa:00:01", Kind: "device"},
	}}
	h.mustApply(t,
		enrollCmd("m-3", "disc", identity("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "52:54:00:aa:00:01", "52:54:00:aa:00:02"), "c-3", inv),
		&underlayv1.Command{Cmd: &underlayv1.Command_PutSubnet{PutSubnet: &underlayv1.PutSubnet{Subnet: &underlayv1.Subnet{
			Name: "prov", Cidr: "10.9.0.0/24", RangeStart: "10.9.0.100", RangeEnd: "10.9.0.200", Gateway: "10.9.0.1",
		}}}},
		applyDefs(def(&underlayv1.Role{Name: "bonded", Hardware: &underlayv1.HardwareProfile{NetworkJson: `{
			"links": [
				{"id": "a", "type": "phy", "ethernet_mac_address": "{{ index .machine.macs 0 }}"},
				{"id": "b", "type": "phy", "ethernet_mac_address": "{{ index .machine.macs 1 }}"},
				{"id": "bond0", "type": "bond", "bond_mode": "active-backup", "bond_links": ["a", "b"]}
			],
			"networks": [{"id": "n", "type": "ipv4", "link": "bond0", "subnet": "prov"}]}`}})),
	)
	h.mustApply(t, assignCmd("m-3", "bonded"))
	p := h.plan(t, "m-3")
	summary := strings.Join(p.GetSteps()[0].GetSummary(), "\n")
	if p.GetState() != underlayv1.PlanState_PLAN_STATE_RUNNING || !strings.Contains(summary, "52:54:00:aa:00:01") || !strings.Contains(summary, "10.9.0.2/24") {
		t.Fatalf("plan %s %s, network summary:\n%s", p.GetState(), p.GetReason(), summary)
	}
	var reserved []string
	for _, r := range h.store.Reservations("prov") {
		reserved = append(reserved, r.GetIp()+" "+r.GetHostname())
	}
	if diff := cmp.Diff([]string{"10.9.0.2 m-3"}, reserved); diff != "" {
		t.Errorf("reservations (-want +got):\n%s", diff)
	}
	// A hardware profile cannot use params: they are not known when it is resolved.
	res := h.apply(t, applyDefs(def(&underlayv1.Role{Name: "bad", Hardware: &underlayv1.HardwareProfile{
		RaidJson: `{"logical_disks": [{"raid_level": "1", "size_gb": "MAX", "volume_name": "{{ .params.name }}"}]}`}})))
	if res.GetErrorKind() != underlayv1.ErrorKind_ERROR_KIND_INVALID || !strings.Contains(res.GetErrorMessage(), "machine facts") {
		t.Errorf("params in a hardware profile: %v %s", res.GetErrorKind(), res.GetErrorMessage())
	}
}

// A classification decision counts for the inventory version and the rule
// set it came from: one for rules that changed since is ignored, one for
// what the machine was already classified against is a no-op, and a
// changed rule set lets the machine be classified again. A command without
// a digest (written before digests existed) is judged as it was then.
func TestClassifyFollowsRuleChanges(t *testing.T) {
	h := provisioned(t)
	rules := func() string { return store.RulesDigest(h.store.Definitions(store.KindRule)) }
	classifyCmd := func(digest string, labels map[string]string) *underlayv1.Command {
		return &underlayv1.Command{Cmd: &underlayv1.Command_ClassifyMachine{ClassifyMachine: &underlayv1.ClassifyMachine{
			MachineId: "m-1", InventoryVersion: 1, Rules: []string{"r"}, Labels: labels, RulesDigest: digest,
		}}}
	}
	label := func() string {
		m, err := h.store.Machine("m-1")
		if err != nil {
			t.Fatal(err)
		}
		return m.GetLabels()["tier"]
	}
	h.mustApply(t, applyDefs(def(&underlayv1.Rule{Name: "r", Match: "disks >= 1", Labels: map[string]string{"tier": "a"}})))
	d1 := rules()
	if d1 == "" {
		t.Fatal("digest of one rule is empty")
	}
	h.mustApply(t, applyDefs(def(&underlayv1.Rule{Name: "r", Match: "disks >= 1", Labels: map[string]string{"tier": "a"}})))
	if rules() != d1 {
		t.Fatal("applying the same rule again changed the digest")
	}
	h.mustApply(t, classifyCmd(d1, map[string]string{"tier": "a"}))
	if got := label(); got != "a" {
		t.Fatalf("tier = %q after the first decision, want a", got)
	}
	h.mustApply(t, classifyCmd(d1, map[string]string{"tier": "again"}))
	if got := label(); got != "a" {
		t.Fatalf("tier = %q: a second decision for the same inventory and rules was applied", got)
	}

	h.mustApply(t, applyDefs(def(&underlayv1.Rule{Name: "r", Match: "disks >= 2", Labels: map[string]string{"tier": "b"}})))
	d2 := rules()
	if d2 == d1 {
		t.Fatal("changing the rule left the digest unchanged")
	}
	h.mustApply(t, classifyCmd(d1, map[string]string{"tier": "stale"}))
	if got := label(); got != "a" {
		t.Fatalf("tier = %q: a decision from the old rules was applied", got)
	}
	h.mustApply(t, classifyCmd(d2, map[string]string{"tier": "b"}))
	m, _ := h.store.Machine("m-1")
	if m.GetLabels()["tier"] != "b" || m.GetClassifiedRules() != d2 {
		t.Fatalf("after the changed rules: tier %q, classified rules %q (want b, %q)", m.GetLabels()["tier"], m.GetClassifiedRules(), d2)
	}
	h.mustApply(t, classifyCmd("", map[string]string{"tier": "legacy"}))
	if got := label(); got != "b" {
		t.Fatalf("tier = %q: a digest-less decision for an inventory already classified was applied", got)
	}
}
