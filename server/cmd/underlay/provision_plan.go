package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

var (
	// errPlanFailed is returned by --wait when the plan failed.
	errPlanFailed = errors.New("plan failed")
	// errPlanCancelled is returned by --wait when the plan was cancelled.
	errPlanCancelled = errors.New("plan cancelled")
	// errPlanReplaced is returned by --wait when a new assignment or
	// redeploy replaced the plan being followed.
	errPlanReplaced = errors.New("plan replaced")
	// errWaitTimeout is returned by --wait when --timeout ran out.
	errWaitTimeout = errors.New("plan still running")
)

// planPollInterval is how often --wait asks for the plan.
var planPollInterval = 500 * time.Millisecond

// machineProvisionCmds are the machine sub-commands of provisioning and
// power control.
func (a *app) machineProvisionCmds() []*cobra.Command {
	return []*cobra.Command{
		a.newMachineAssignCmd(), a.newMachinePlanCmd(),
		a.newMachinePlanActionCmd("retry"), a.newMachinePlanActionCmd("cancel"), a.newMachinePlanActionCmd("redeploy"),
		a.newMachineJobsCmd(), a.newMachineProfileCmd(), a.newMachinePowerCmd(), a.newMachineBootCmd(),
	}
}

// waitHelp is the Long text of --wait for the commands that start a plan.
func waitHelp() string {
	return `

With --wait the command follows the plan, printing a line each time a step
changes state ("step 2 join-cluster: running"), and exits 0 when the plan
succeeds, or 1 with the reason when it fails or is cancelled. --timeout, when
given, bounds the whole wait (without it the wait lasts until the plan ends or
Ctrl-C); each request is bounded by the default timeout. With -o json each
line is one JSON object (the plan first, then each step that changed).`
}

func (a *app) newMachineAssignCmd() *cobra.Command {
	var (
		role string
		wait bool
	)
	cmd := &cobra.Command{
		Use:   "assign ID --role ROLE [--wait]",
		Short: "Assign a role to a machine and start its plan",
		Long: `Assign a role to a machine. The cluster resolves the role against the
machine's inventory (late binding: which disks form the RAID, which NICs the
bond) into a plan of steps - BIOS, RAID, network, then the role's tasks - and
starts it. The plan is printed; follow it with 'underlay machine plan' and
'underlay logs'.` + waitHelp(),
		Example: `  underlay machine assign m-3fa9c0d2e1b4 --role worker
  underlay machine assign m-3fa9c0d2e1b4 --role worker --wait --timeout 30m`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return usagef("--role is required: name the role to assign (see 'underlay role ls')")
			}
			return a.startPlan(cmd, wait, func(ctx context.Context, c *client.Client) (*underlayv1.Plan, error) {
				return c.Provision.Assign(ctx, &underlayv1.AssignRequest{MachineId: args[0], Role: role})
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "the role to assign (required)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the plan until it ends")
	return cmd
}

func (a *app) newMachinePlanCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "plan ID",
		Short: "Show a machine's plan and the state of each step",
		Long: `Show a machine's current plan: its role and version, generation (assignments
and redeploys count up), state, and each step with its state, attempt, start
time, duration and why it is waiting or failed. Hardware steps (raid, bios,
network, wipe) show what they resolved to on the lines below them.`,
		Example: `  underlay machine plan m-3fa9c0d2e1b4
  underlay machine plan m-3fa9c0d2e1b4 -o yaml`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				pl, err := c.Provision.GetPlan(ctx, &underlayv1.GetPlanRequest{Read: a.readOptions(), MachineId: args[0]})
				if err != nil {
					return err
				}
				return p.print(pl, func(w io.Writer) { p.planView(w, pl) })
			})
		},
	}
}

// planActions describes retry, cancel and redeploy.
var planActions = map[string]struct {
	short, long, example string
	wait                 bool
}{
	"retry": {
		short: "Retry a machine's failed plan from the failed step",
		long: `Retry a failed or cancelled plan: the failed step runs again (a new
attempt) and the plan continues from there. Steps that succeeded are not run
again.`,
		example: `  underlay machine retry m-3fa9c0d2e1b4`,
	},
	"cancel": {
		short: "Cancel a machine's running plan",
		long: `Cancel a machine's plan. A running job is stopped, no further step is
started, and the plan ends cancelled; 'underlay machine retry' continues it.`,
		example: `  underlay machine cancel m-3fa9c0d2e1b4 --reason "wrong rack"`,
	},
	"redeploy": {
		short: "Wipe a machine and rebuild it with its role",
		long: `Redeploy a machine: wipe it, re-plan its role against its inventory and run
the plan again from the start, as a new generation. Redeploying twice gives
the same result.`,
		example: `  underlay machine redeploy m-3fa9c0d2e1b4
  underlay machine redeploy m-3fa9c0d2e1b4 --wait --timeout 1h`,
		wait: true,
	},
}

func (a *app) newMachinePlanActionCmd(action string) *cobra.Command {
	info := planActions[action]
	var (
		reason string
		wait   bool
	)
	long := info.long
	if info.wait {
		long += waitHelp()
	}
	cmd := &cobra.Command{
		Use:     action + " ID",
		Short:   info.short,
		Long:    long,
		Example: info.example,
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &underlayv1.MachinePlanRequest{MachineId: args[0], Reason: reason}
			return a.startPlan(cmd, wait, func(ctx context.Context, c *client.Client) (*underlayv1.Plan, error) {
				switch action {
				case "retry":
					return c.Provision.Retry(ctx, req)
				case "cancel":
					return c.Provision.Cancel(ctx, req)
				}
				return c.Provision.Redeploy(ctx, req)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the machine's events)")
	if info.wait {
		cmd.Flags().BoolVar(&wait, "wait", false, "follow the plan until it ends")
	}
	return cmd
}

// startPlan runs start, prints the plan it returns and, with wait, follows
// the plan until it ends.
func (a *app) startPlan(cmd *cobra.Command, wait bool, start func(context.Context, *client.Client) (*underlayv1.Plan, error)) error {
	if !wait {
		return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
			pl, err := start(ctx, c)
			if err != nil {
				return err
			}
			return p.print(pl, func(w io.Writer) { p.planView(w, pl) })
		})
	}
	return a.session(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
		if a.flagChanged("timeout") {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, a.timeout)
			defer cancel()
		}
		rctx, cancel := context.WithTimeout(ctx, a.timeout)
		pl, err := start(rctx, c)
		cancel()
		if err != nil {
			return err
		}
		if p.format == formatTable {
			if err := p.print(pl, func(w io.Writer) { p.planView(w, pl) }); err != nil {
				return err
			}
			fmt.Fprintln(p.w)
		} else if err := p.line(pl, ""); err != nil {
			return err
		}
		return a.followPlan(ctx, c, p, pl)
	})
}

// followPlan polls the plan of first's machine until it ends, printing
// each step whose state, attempt or reason changed.
func (a *app) followPlan(ctx context.Context, c *client.Client, p *printer, first *underlayv1.Plan) error {
	seen := map[int32]*underlayv1.Step{}
	for _, s := range first.GetSteps() {
		seen[s.GetIndex()] = s
	}
	id, gen := first.GetMachineId(), first.GetGeneration()
	pl := first
	for {
		if done, err := planEnded(pl); done {
			if err == nil && p.format == formatTable {
				fmt.Fprintf(p.w, "Plan for %s succeeded (role %s, generation %d).\n", id, pl.GetRole(), gen)
			}
			return err
		}
		t := time.NewTimer(planPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: machine %s after %s (raise --timeout)", errWaitTimeout, id, a.timeout)
			}
			return ctx.Err()
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, a.timeout)
		next, err := c.Provision.GetPlan(rctx, &underlayv1.GetPlanRequest{Read: a.readOptions(), MachineId: id})
		cancel()
		if err != nil {
			// gRPC enforces the deadline with its own timer, so the wait's
			// deadline may show up here before ctx says so.
			if dl, ok := ctx.Deadline(); ctx.Err() != nil || (ok && !time.Now().Before(dl)) {
				<-ctx.Done()
				continue // reported at the top of the loop
			}
			return err
		}
		if next.GetGeneration() != gen {
			return fmt.Errorf("%w: machine %s now runs generation %d (role %s); follow it with 'underlay machine plan %s'",
				errPlanReplaced, id, next.GetGeneration(), next.GetRole(), id)
		}
		for _, s := range next.GetSteps() {
			old := seen[s.GetIndex()]
			if old != nil && old.GetState() == s.GetState() && old.GetAttempt() == s.GetAttempt() && old.GetReason() == s.GetReason() {
				continue
			}
			seen[s.GetIndex()] = s
			if err := p.line(s, stepLine(s)); err != nil {
				return fmt.Errorf("write progress: %w", err)
			}
		}
		pl = next
	}
}

// planEnded reports whether pl ended, and the error for a plan that did
// not succeed.
func planEnded(pl *underlayv1.Plan) (bool, error) {
	why := func() string {
		if pl.GetReason() != "" {
			return pl.GetReason()
		}
		for _, s := range pl.GetSteps() {
			if s.GetState() == underlayv1.StepState_STEP_STATE_FAILED {
				return stepLine(s)
			}
		}
		return "no reason given"
	}
	switch pl.GetState() {
	case underlayv1.PlanState_PLAN_STATE_SUCCEEDED:
		return true, nil
	case underlayv1.PlanState_PLAN_STATE_FAILED:
		return true, fmt.Errorf("%w: machine %s: %s", errPlanFailed, pl.GetMachineId(), why())
	case underlayv1.PlanState_PLAN_STATE_CANCELLED:
		return true, fmt.Errorf("%w: machine %s: %s", errPlanCancelled, pl.GetMachineId(), why())
	}
	return false, nil
}

func (a *app) newMachineJobsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "jobs ID",
		Short: "List a machine's jobs (each run of each step)",
		Long: `List the jobs of a machine: every execution of every step, with its attempt,
state, exit code, start time, duration, the node that delivered it and its
error. 'underlay logs --job JOB' prints a job's output.`,
		Example: `  underlay machine jobs m-3fa9c0d2e1b4
  underlay machine jobs m-3fa9c0d2e1b4 -o json`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Provision.ListJobs(ctx, &underlayv1.ListJobsRequest{Read: a.readOptions(), MachineId: args[0]})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { p.jobsTable(w, r.GetJobs()) })
			})
		},
	}
}
