package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
)

// errNoDefinitions is returned when apply -f finds nothing to apply.
var errNoDefinitions = errors.New("no definitions found")

// noArgs refuses positional arguments with a usage error (cobra.NoArgs
// returns a plain error, which would exit 1).
var noArgs = rangeArgs(0, 0, "no arguments")

// Definition kinds as the ProvisionService names them.
const (
	kindTask    = "task"
	kindRole    = "role"
	kindProfile = "profile"
	kindRule    = "rule"
	kindGlobal  = "global"
)

func (a *app) newApplyCmd() *cobra.Command {
	var (
		files  []string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR [-f ...]",
		Short: "Create or update tasks, roles, profiles, rules and global params from YAML",
		Long: `Apply definitions from YAML files. -f takes a file or a directory (every
.yaml/.yml file in it, recursively) and may be repeated. The files are parsed
here first: a mistake is reported with its file and line and nothing is sent.
Then all definitions go to the cluster in one request, which validates them
together (a role naming a task that does not exist is refused) and stores
them atomically. Every change of content bumps a definition's version.

The result lists each definition with its change: created, updated or
unchanged. --dry-run validates on the cluster and shows what would change,
without applying anything.`,
		Example: `  underlay apply -f catalog/
  underlay apply -f tasks.yaml -f roles.yaml --dry-run
  underlay apply -f catalog/ -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usagef("-f is required: name a YAML file or a directory of them")
			}
			p, err := a.printer()
			if err != nil {
				return err
			}
			defs, err := catalog.ReadPaths(files)
			if err != nil {
				return err // names file:line; nothing was sent
			}
			if len(defs) == 0 {
				return fmt.Errorf("%w in %s", errNoDefinitions, strings.Join(files, ", "))
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, _ *printer) error {
				r, err := c.Provision.Apply(ctx, &underlayv1.ApplyDefinitionsRequest{Definitions: defs, DryRun: dryRun})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { applyTable(w, r, dryRun) })
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&files, "filename", "f", nil, "YAML file or directory to apply (repeatable)")
	f.BoolVar(&dryRun, "dry-run", false, "validate and show the changes without applying them")
	return cmd
}

// defKind describes one kind of definition for its ls/show/delete verbs.
type defKind struct {
	kind    string // task, role, ...
	group   string // the command group's Short
	long    string // the command group's Long
	example string // a sample name for examples
	listCol string // what ls shows, for its Long
	more    string // more example lines for the group
	table   func(p *printer, w io.Writer, defs []*underlayv1.Definition)
}

var (
	taskKind = defKind{
		kind: kindTask, example: "install-os",
		group: "List, show and delete tasks",
		long: `Tasks are isolated units of work with declared inputs and outputs: a templated
script or a built-in action (wipe, reboot, write-file, and the hardware actions
raid, bios and network). Create and change them with 'underlay apply -f'.`,
		listCol: "name, version, kind (script or action), inputs, outputs, timeout, retries and source",
		table:   func(p *printer, w io.Writer, defs []*underlayv1.Definition) { tasksTable(w, defs) },
	}
	roleKind = defKind{
		kind: kindRole, example: "worker",
		group: "List, show and delete roles; see and resume their rollouts",
		long: `A role is what a machine becomes: a hardware profile (BIOS, RAID, network), an
ordered list of tasks, links to outputs of other roles, profiles and params,
and a circuit breaker that pauses its rollout after too many failures. Create
and change roles with 'underlay apply -f'; assign one with 'underlay machine
assign'.`,
		listCol: "name, version, tasks, links (requires), profiles and which hardware settings it has",
		more:    "\n  underlay role status\n  underlay role resume worker",
		table:   func(p *printer, w io.Writer, defs []*underlayv1.Definition) { rolesTable(w, defs) },
	}
	profileKind = defKind{
		kind: kindProfile, example: "fast-disks",
		group: "List, show and delete profiles (named param sets)",
		long: `A profile is a named set of params. Roles, rules and machines name profiles;
their params override global params and are overridden by the role's and the
machine's own. Create and change profiles with 'underlay apply -f'.`,
		listCol: "name, version and the params it sets",
		table:   func(p *printer, w io.Writer, defs []*underlayv1.Definition) { profilesTable(w, defs) },
	}
	ruleKind = defKind{
		kind: kindRule, example: "big-disks",
		group: "List, show and delete classification rules",
		long: `A rule classifies machines from their inventory facts and labels: when its
match expression holds, the machine gets the rule's labels and profiles and,
if the rule names one, its role. Rules are evaluated by priority (lower first),
then by name. Create and change rules with 'underlay apply -f'.`,
		listCol: "name, priority, match expression, role, profiles and labels, in evaluation order",
		table:   func(p *printer, w io.Writer, defs []*underlayv1.Definition) { rulesTable(w, defs) },
	}
)

// newDefCmd builds the command group of a definition kind with ls, show
// and delete, plus extra sub-commands.
func (a *app) newDefCmd(k defKind, extra ...*cobra.Command) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     k.kind,
		Aliases: []string{k.kind + "s"},
		Short:   k.group,
		Long:    k.long,
		Example: fmt.Sprintf(`  underlay %[1]s ls
  underlay %[1]s show %[2]s > %[2]s.yaml
  underlay %[1]s delete %[2]s`, k.kind, k.example) + k.more,
	})
	cmd.AddCommand(a.newDefListCmd(k), a.newDefShowCmd(k.kind, k.example), a.newDefDeleteCmd(k.kind, k.example))
	cmd.AddCommand(extra...)
	return cmd
}

func (a *app) newDefListCmd(k defKind) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   fmt.Sprintf("List %ss", k.kind),
		Long:    fmt.Sprintf("List every %s with its %s.", k.kind, k.listCol),
		Example: fmt.Sprintf("  underlay %[1]s ls\n  underlay %[1]s ls -o yaml", k.kind),
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Provision.ListDefinitions(ctx, &underlayv1.ListDefinitionsRequest{Read: a.readOptions(), Kind: k.kind})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { k.table(p, w, r.GetDefinitions()) })
			})
		},
	}
}

func (a *app) newDefShowCmd(kind, example string) *cobra.Command {
	var ver uint64
	use, args, ex := "show NAME", exactArgs("NAME"), fmt.Sprintf(`  underlay %[1]s show %[2]s
  underlay %[1]s show %[2]s --version 2
  underlay %[1]s show %[2]s -o json`, kind, example)
	if kind == kindGlobal {
		use, args, ex = "show", noArgs, `  underlay global show > global.yaml
  underlay global show --version 3 -o json`
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: fmt.Sprintf("Print a %s as YAML that 'underlay apply -f' takes back", kind),
		Long: fmt.Sprintf(`Print the current %s (or an older --version) as YAML in the form 'underlay
apply -f' reads, so it can be edited and applied again. Secret values are never
printed: they appear as {secret: true}, and applying that back keeps the stored
value. -o json prints the definition as the API returns it, with its version,
update time and author.`, kind),
		Example: ex,
		Args:    args,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := kindGlobal
			if len(args) == 1 {
				name = args[0]
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				d, err := c.Provision.GetDefinition(ctx, &underlayv1.GetDefinitionRequest{
					Read: a.readOptions(), Kind: kind, Name: name, Version: ver})
				if err != nil {
					return err
				}
				if p.format == formatJSON {
					return p.print(d, nil)
				}
				b, err := catalog.Marshal([]*underlayv1.Definition{d})
				if err != nil {
					return fmt.Errorf("render %s %s as yaml: %w", kind, name, err)
				}
				_, err = p.w.Write(b)
				return err
			})
		},
	}
	cmd.Flags().Uint64Var(&ver, "version", 0, "show this version instead of the current one")
	return cmd
}

func (a *app) newDefDeleteCmd(kind, example string) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   fmt.Sprintf("Delete a %s", kind),
		Long: fmt.Sprintf(`Delete a %s. The cluster refuses to delete a definition that others still
name (a task in a role, a role of a machine or rule, a profile in use); the
error says which.`, kind),
		Example: fmt.Sprintf("  underlay %s delete %s", kind, example),
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Provision.DeleteDefinition(ctx, &underlayv1.DeleteDefinitionRequest{Kind: kind, Name: args[0]})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { fmt.Fprintf(w, "Deleted %s %s.\n", kind, args[0]) })
			})
		},
	}
}

func (a *app) newTaskCmd() *cobra.Command    { return a.newDefCmd(taskKind) }
func (a *app) newProfileCmd() *cobra.Command { return a.newDefCmd(profileKind) }
func (a *app) newRuleCmd() *cobra.Command    { return a.newDefCmd(ruleKind) }

func (a *app) newRoleCmd() *cobra.Command {
	return a.newDefCmd(roleKind, a.newRoleStatusCmd(), a.newRoleResumeCmd())
}

func (a *app) newGlobalCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   kindGlobal,
		Short: "Show the cluster-wide params",
		Long: `The global params are the cluster-wide defaults: they override task defaults
and are overridden by profiles, roles and machines. Set them in YAML with
'underlay apply -f' (kind global) or one by one with 'underlay param set
--global'.`,
		Example: `  underlay global show
  underlay param set --global ntp_server=10.0.0.1`,
	})
	cmd.AddCommand(a.newDefShowCmd(kindGlobal, ""))
	return cmd
}

func (a *app) newRoleStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each role's rollout: failures and whether it is paused",
		Long: `Show each role's circuit breaker: how many machines failed, which, and
whether the rollout is paused (no new machine starts the role's plan until
'underlay role resume').`,
		Example: `  underlay role status`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Provision.ListRoleStatus(ctx, &underlayv1.ListRoleStatusRequest{Read: a.readOptions()})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { roleStatusTable(w, r.GetRoles()) })
			})
		},
	}
}

func (a *app) newRoleResumeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resume NAME",
		Short: "Resume a paused role and reset its failure count",
		Long: `Resume the rollout of a role its circuit breaker paused, and reset its failure
count. Fix the cause first: failed machines stay failed until retried with
'underlay machine retry'.`,
		Example: `  underlay role resume worker`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Provision.ResumeRole(ctx, &underlayv1.ResumeRoleRequest{Role: args[0]})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) {
					fmt.Fprintf(w, "Role %s resumed.\n\n", r.GetRole())
					roleStatusTable(w, []*underlayv1.RoleStatus{r})
				})
			})
		},
	}
}
