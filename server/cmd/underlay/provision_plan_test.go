package main

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const (
	stepPending   = underlayv1.StepState_STEP_STATE_PENDING
	stepWaiting   = underlayv1.StepState_STEP_STATE_WAITING
	stepRunning   = underlayv1.StepState_STEP_STATE_RUNNING
	stepSucceeded = underlayv1.StepState_STEP_STATE_SUCCEEDED
	stepFailed    = underlayv1.StepState_STEP_STATE_FAILED
	planRunning   = underlayv1.PlanState_PLAN_STATE_RUNNING
	planSucceeded = underlayv1.PlanState_PLAN_STATE_SUCCEEDED
	planFailed    = underlayv1.PlanState_PLAN_STATE_FAILED
)

func testPlan() *underlayv1.Plan {
	return &underlayv1.Plan{
		MachineId: "m-1", Role: "worker", RoleVersion: 3, Generation: 2, State: planRunning,
		Updated: ts(-10 * time.Second),
		Steps: []*underlayv1.Step{
			{Index: 0, Name: "raid", Kind: "raid", State: stepSucceeded, Attempt: 1, MaxAttempts: 1,
				Summary: []string{"md0 raid1 of vda, vdb", "md1 raid0 of vdc"},
				Started: ts(-5 * time.Minute), Finished: ts(-4 * time.Minute)},
			{Index: 1, Name: "install-os", Kind: "task", Task: "install-os", State: stepRunning, Attempt: 2, MaxAttempts: 3,
				Started: ts(-90 * time.Second)},
			{Index: 2, Name: "join-cluster", Kind: "task", State: stepWaiting, Reason: "link control-plane/join_token"},
		},
		Outputs: []*underlayv1.Output{
			{Name: "root_uuid", Value: "4f1c", Step: "install-os", JobId: "j-2"},
			{Name: "token", Secret: true, Step: "raid", JobId: "j-1"},
		},
	}
}

const testPlanView = `Machine:     m-1
Role:        worker@3
Generation:  2
State:       running
Updated:     10s ago

STEP  NAME          KIND  STATE      ATTEMPT  STARTED  DURATION  REASON
0     raid          raid  succeeded  1/1      5m ago   60s       -
      md0 raid1 of vda, vdb
      md1 raid0 of vdc
1     install-os    task  running    2/3      90s ago  90s       -
2     join-cluster  task  waiting    -        -        -         link control-plane/join_token

OUTPUT     VALUE     STEP        JOB
root_uuid  4f1c      install-os  j-2
token      <secret>  raid        j-1
`

func TestPlanCommands(t *testing.T) {
	f := newFakeCluster(t)
	plan := testPlan()
	planReq := &underlayv1.MachinePlanRequest{MachineId: "m-1"}
	jobs := &underlayv1.ListJobsResponse{Jobs: []*underlayv1.Job{
		{Id: "j-1", Step: 0, StepName: "raid", Attempt: 1, State: stepSucceeded, ExitCode: 0,
			Started: ts(-5 * time.Minute), Finished: ts(-4 * time.Minute), Node: "n1"},
		{Id: "j-2", Step: 1, StepName: "install-os", Attempt: 1, State: stepFailed, ExitCode: 3,
			Started: ts(-3 * time.Minute), Finished: ts(-2 * time.Minute), Node: "n2", Error: "exit status 3"},
		{Id: "j-3", Step: 1, StepName: "install-os", Attempt: 2, State: stepRunning, Started: ts(-90 * time.Second), Node: "n2"},
	}}
	runCases(t, f, []cliCase{
		{
			name: "plan", args: []string{"machine", "plan", "m-1"},
			replies:    map[string][]fakeReply{"GetPlan": replyOK(plan)},
			wantCalls:  []fakeCall{call("GetPlan", &underlayv1.GetPlanRequest{Read: readOpts(), MachineId: "m-1"})},
			wantStdout: testPlanView,
		},
		{
			name: "plan yaml", args: []string{"machine", "plan", "m-1", "-o", "yaml"},
			replies: map[string][]fakeReply{"GetPlan": replyOK(&underlayv1.Plan{MachineId: "m-1", Role: "worker", Generation: 1,
				State: planSucceeded, Steps: []*underlayv1.Step{{Index: 0, Name: "wipe", Kind: "wipe", State: stepSucceeded}}})},
			wantCalls: []fakeCall{call("GetPlan", &underlayv1.GetPlanRequest{Read: readOpts(), MachineId: "m-1"})},
			wantStdout: `generation: "1"
machine_id: m-1
role: worker
state: PLAN_STATE_SUCCEEDED
steps:
- kind: wipe
  name: wipe
  state: STEP_STATE_SUCCEEDED
`,
		},
		{
			name: "plan of an unknown machine", args: []string{"machine", "plan", "m-404"},
			replies:    map[string][]fakeReply{"GetPlan": replyErr(codes.NotFound, "machine m-404 not found")},
			wantCalls:  []fakeCall{call("GetPlan", &underlayv1.GetPlanRequest{Read: readOpts(), MachineId: "m-404"})},
			wantCode:   exitError,
			wantStderr: "error: not found: machine m-404 not found",
		},
		{
			name: "assign", args: []string{"machine", "assign", "m-1", "--role", "worker"},
			replies:    map[string][]fakeReply{"Assign": replyOK(plan)},
			wantCalls:  []fakeCall{call("Assign", &underlayv1.AssignRequest{MachineId: "m-1", Role: "worker"})},
			wantStdout: testPlanView,
		},
		{
			name: "assign an unknown role", args: []string{"machine", "assign", "m-1", "--role", "nope"},
			replies:    map[string][]fakeReply{"Assign": replyErr(codes.NotFound, `role "nope" not found`)},
			wantCalls:  []fakeCall{call("Assign", &underlayv1.AssignRequest{MachineId: "m-1", Role: "nope"})},
			wantCode:   exitError,
			wantStderr: `error: not found: role "nope" not found`,
		},
		{
			name: "assign without a role", args: []string{"machine", "assign", "m-1"},
			wantCode: exitUsage, wantStderr: "--role is required",
		},
		{
			name: "assign without a machine", args: []string{"machine", "assign", "--role", "worker"},
			wantCode: exitUsage, wantStderr: `"underlay machine assign" needs 1 argument(s) (ID), got 0`,
		},
		{
			name: "retry", args: []string{"machine", "retry", "m-1"},
			replies:    map[string][]fakeReply{"Retry": replyOK(plan)},
			wantCalls:  []fakeCall{call("Retry", planReq)},
			wantStdout: testPlanView,
		},
		{
			name: "cancel with a reason", args: []string{"machine", "cancel", "m-1", "--reason", "wrong rack", "-o", "json"},
			replies: map[string][]fakeReply{"Cancel": replyOK(&underlayv1.Plan{MachineId: "m-1",
				State: underlayv1.PlanState_PLAN_STATE_CANCELLED, Reason: "wrong rack"})},
			wantCalls:  []fakeCall{call("Cancel", &underlayv1.MachinePlanRequest{MachineId: "m-1", Reason: "wrong rack"})},
			wantStdout: "{\n  \"machine_id\": \"m-1\",\n  \"state\": \"PLAN_STATE_CANCELLED\",\n  \"reason\": \"wrong rack\"\n}\n",
		},
		{
			name: "cancel has no --wait", args: []string{"machine", "cancel", "m-1", "--wait"},
			wantCode: exitUsage, wantStderr: "unknown flag: --wait",
		},
		{
			name: "redeploy", args: []string{"machine", "redeploy", "m-1"},
			replies:    map[string][]fakeReply{"Redeploy": replyOK(plan)},
			wantCalls:  []fakeCall{call("Redeploy", planReq)},
			wantStdout: testPlanView,
		},
		{
			name: "redeploy refused", args: []string{"machine", "redeploy", "m-1"},
			replies:    map[string][]fakeReply{"Redeploy": replyErr(codes.FailedPrecondition, "machine m-1 has no role")},
			wantCalls:  []fakeCall{call("Redeploy", planReq)},
			wantCode:   exitError,
			wantStderr: "error: failed precondition: machine m-1 has no role",
		},
		{
			name: "jobs", args: []string{"machine", "jobs", "m-1"},
			replies:   map[string][]fakeReply{"ListJobs": replyOK(jobs)},
			wantCalls: []fakeCall{call("ListJobs", &underlayv1.ListJobsRequest{Read: readOpts(), MachineId: "m-1"})},
			wantStdout: `JOB  STEP          ATTEMPT  STATE      EXIT  STARTED  DURATION  NODE  ERROR
j-1  0:raid        1        succeeded  0     5m ago   60s       n1    -
j-2  1:install-os  1        failed     3     3m ago   60s       n2    exit status 3
j-3  1:install-os  2        running    -     90s ago  90s       n2    -
`,
		},
		{
			name: "jobs of an unknown machine", args: []string{"machine", "jobs", "m-404"},
			replies:    map[string][]fakeReply{"ListJobs": replyErr(codes.NotFound, "machine m-404 not found")},
			wantCalls:  []fakeCall{call("ListJobs", &underlayv1.ListJobsRequest{Read: readOpts(), MachineId: "m-404"})},
			wantCode:   exitError,
			wantStderr: "error: not found: machine m-404 not found",
		},
	})
}

// planAt returns a two-step plan in the given states.
func planAt(gen uint64, state underlayv1.PlanState, reason string, steps ...underlayv1.StepState) *underlayv1.Plan {
	names := []string{"wipe", "join-cluster"}
	pl := &underlayv1.Plan{MachineId: "m-1", Role: "worker", RoleVersion: 1, Generation: gen, State: state, Reason: reason}
	for i, s := range steps {
		pl.Steps = append(pl.Steps, &underlayv1.Step{Index: int32(i), Name: names[i], Kind: "task", State: s, Attempt: 1, MaxAttempts: 2})
	}
	return pl
}

func TestWait(t *testing.T) {
	old := planPollInterval
	planPollInterval = time.Millisecond
	t.Cleanup(func() { planPollInterval = old })

	f := newFakeCluster(t)
	start := planAt(5, planRunning, "", stepPending, stepPending)
	getPlan := call("GetPlan", &underlayv1.GetPlanRequest{Read: readOpts(), MachineId: "m-1"})
	startView := `Machine:     m-1
Role:        worker@1
Generation:  5
State:       running
Updated:     -

STEP  NAME          KIND  STATE    ATTEMPT  STARTED  DURATION  REASON
0     wipe          task  pending  1/2      -        -         -
1     join-cluster  task  pending  1/2      -        -         -

`
	retried := planAt(5, planRunning, "", stepSucceeded, stepRunning)
	retried.Steps[1].Attempt = 2
	failed := planAt(5, planFailed, "", stepSucceeded, stepFailed)
	failed.Steps[1].ExitCode = 3
	failed.Steps[1].Reason = "exit status 3"

	runCases(t, f, []cliCase{
		{
			name: "assign --wait follows to success", args: []string{"machine", "assign", "m-1", "--role", "worker", "--wait"},
			replies: map[string][]fakeReply{
				"Assign": replyOK(start),
				"GetPlan": replyOK(
					planAt(5, planRunning, "", stepRunning, stepPending),
					planAt(5, planRunning, "", stepRunning, stepPending), // no change: no line
					planAt(5, planRunning, "", stepSucceeded, stepWaiting),
					retried,
					planAt(5, planSucceeded, "", stepSucceeded, stepSucceeded),
				),
			},
			wantCalls: []fakeCall{
				call("Assign", &underlayv1.AssignRequest{MachineId: "m-1", Role: "worker"}),
				getPlan, getPlan, getPlan, getPlan, getPlan,
			},
			wantStdout: startView + `step 0 wipe: running
step 0 wipe: succeeded
step 1 join-cluster: waiting
step 1 join-cluster: running (attempt 2/2)
step 1 join-cluster: succeeded
Plan for m-1 succeeded (role worker, generation 5).
`,
		},
		{
			name: "redeploy --wait fails with the reason", args: []string{"machine", "redeploy", "m-1", "--wait"},
			replies: map[string][]fakeReply{
				"Redeploy": replyOK(start),
				"GetPlan":  replyOK(failed),
			},
			wantCalls: []fakeCall{call("Redeploy", &underlayv1.MachinePlanRequest{MachineId: "m-1"}), getPlan},
			wantStdout: startView + `step 0 wipe: succeeded
step 1 join-cluster: failed (exit 3, exit status 3)
`,
			wantCode:   exitError,
			wantStderr: "error: plan failed: machine m-1: step 1 join-cluster: failed (exit 3, exit status 3)\n",
		},
		{
			name: "--wait with -o json prints json lines", args: []string{"machine", "redeploy", "m-1", "--wait", "-o", "json"},
			replies: map[string][]fakeReply{
				"Redeploy": replyOK(planAt(5, planRunning, "", stepRunning)),
				"GetPlan":  replyOK(planAt(5, planSucceeded, "", stepSucceeded)),
			},
			wantCalls: []fakeCall{call("Redeploy", &underlayv1.MachinePlanRequest{MachineId: "m-1"}), getPlan},
			wantStdout: `{"machine_id":"m-1","role":"worker","role_version":"1","generation":"5","state":"PLAN_STATE_RUNNING","steps":[{"name":"wipe","kind":"task","state":"STEP_STATE_RUNNING","attempt":1,"max_attempts":2}]}
{"name":"wipe","kind":"task","state":"STEP_STATE_SUCCEEDED","attempt":1,"max_attempts":2}
`,
		},
		{
			name: "a plan that ended already is not waited for", args: []string{"machine", "assign", "m-1", "--role", "worker", "--wait", "-o", "json"},
			replies:    map[string][]fakeReply{"Assign": replyOK(planAt(5, planFailed, "no disk matches the raid profile"))},
			wantCalls:  []fakeCall{call("Assign", &underlayv1.AssignRequest{MachineId: "m-1", Role: "worker"})},
			wantStdout: `{"machine_id":"m-1","role":"worker","role_version":"1","generation":"5","state":"PLAN_STATE_FAILED","reason":"no disk matches the raid profile"}` + "\n",
			wantCode:   exitError,
			wantStderr: "error: plan failed: machine m-1: no disk matches the raid profile",
		},
		{
			name: "a replaced plan ends the wait", args: []string{"machine", "redeploy", "m-1", "--wait", "-o", "yaml"},
			replies: map[string][]fakeReply{
				"Redeploy": replyOK(planAt(5, planRunning, "")),
				"GetPlan":  replyOK(planAt(6, planRunning, "")),
			},
			wantCalls:  []fakeCall{call("Redeploy", &underlayv1.MachinePlanRequest{MachineId: "m-1"}), getPlan},
			wantStdout: "---\ngeneration: \"5\"\nmachine_id: m-1\nrole: worker\nrole_version: \"1\"\nstate: PLAN_STATE_RUNNING\n",
			wantCode:   exitError,
			wantStderr: "error: plan replaced: machine m-1 now runs generation 6 (role worker)",
		},
		{
			name: "the machine disappears", args: []string{"machine", "redeploy", "m-1", "--wait", "-o", "json"},
			replies: map[string][]fakeReply{
				"Redeploy": replyOK(planAt(5, planRunning, "")),
				"GetPlan":  replyErr(codes.NotFound, "machine m-1 not found"),
			},
			wantCalls:  []fakeCall{call("Redeploy", &underlayv1.MachinePlanRequest{MachineId: "m-1"}), getPlan},
			wantStdout: `{"machine_id":"m-1","role":"worker","role_version":"1","generation":"5","state":"PLAN_STATE_RUNNING"}` + "\n",
			wantCode:   exitError,
			wantStderr: "error: not found: machine m-1 not found",
		},
	})

	t.Run("--timeout ends the wait", func(t *testing.T) {
		planPollInterval = 50 * time.Millisecond
		f.reset(map[string][]fakeReply{
			"Assign":  replyOK(planAt(5, planRunning, "", stepRunning)),
			"GetPlan": replyOK(planAt(5, planRunning, "", stepRunning)),
		}, nil)
		code, _, stderr := f.run(t, "machine", "assign", "m-1", "--role", "worker", "--wait", "--timeout", "2s")
		if code != exitError {
			t.Errorf("exit code = %d, want %d", code, exitError)
		}
		if want := "error: plan still running: machine m-1 after 2s (raise --timeout)\n"; stderr != want {
			t.Errorf("stderr = %q, want %q", stderr, want)
		}
		for _, c := range f.recorded()[1:] {
			if !proto.Equal(c.Req, getPlan.Req) {
				t.Errorf("request %v, want only GetPlan for m-1 after Assign", c)
			}
		}
	})
}
