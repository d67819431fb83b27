package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// errBadParam is returned for a param argument that is not KEY=VALUE or a
// valid KEY.
var errBadParam = errors.New("bad param")

func (a *app) newParamCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "param",
		Aliases: []string{"params"},
		Short:   "Show where a machine's params come from; set and unset params",
		Long: `Params are the values tasks are templated with. Precedence, lowest first:
task default < global < profiles < role < machine < outputs (of the machine's
own steps and of linked roles). 'param show' lists every resolved value with
its source and what it overrode; 'param set' and 'param unset' change the
machine's own params or the global ones.`,
		Example: `  underlay param show m-3fa9c0d2e1b4
  underlay param set --machine m-3fa9c0d2e1b4 hostname=db1 disk=/dev/sda
  underlay param set --global ntp_server=10.0.0.1 --secret-file root_password=./pw
  underlay param unset --machine m-3fa9c0d2e1b4 disk`,
	})
	cmd.AddCommand(a.newParamShowCmd(), a.newParamSetCmd(), a.newParamUnsetCmd())
	return cmd
}

func (a *app) newParamShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show MACHINE",
		Short: "Show a machine's resolved params and where each came from",
		Long: `Show every param of a machine as its tasks would see it, with the source of
the value (task default, global, profile P, role R, machine, output of a step,
a link) and the lower-precedence sources it overrode. Secret values are shown
as <secret>, in every output format.`,
		Example: `  underlay param show m-3fa9c0d2e1b4
  underlay param show m-3fa9c0d2e1b4 -o json`,
		Args: exactArgs("MACHINE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Provision.ShowParams(ctx, &underlayv1.ShowParamsRequest{Read: a.readOptions(), MachineId: args[0]})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { paramsTable(w, args[0], r) })
			})
		},
	}
}

// paramTarget is --machine ID or --global.
type paramTarget struct {
	machine string
	global  bool
}

func (t *paramTarget) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.machine, "machine", "", "change this machine's own params")
	cmd.Flags().BoolVar(&t.global, "global", false, "change the global params")
}

// check requires exactly one of --machine and --global.
func (t *paramTarget) check() error {
	switch {
	case t.machine != "" && t.global:
		return usagef("give --machine ID or --global, not both")
	case t.machine == "" && !t.global:
		return usagef("say whose params to change: --machine ID or --global")
	}
	return nil
}

func (t *paramTarget) String() string {
	if t.global {
		return "global params"
	}
	return "machine " + t.machine
}

func (a *app) newParamSetCmd() *cobra.Command {
	var (
		target              paramTarget
		secrets, secretFile []string
	)
	cmd := &cobra.Command{
		Use:   "set (--machine ID | --global) KEY=VALUE... [--secret KEY=VALUE] [--secret-file KEY=PATH]",
		Short: "Set params of a machine or global params",
		Long: `Set params on one machine (--machine) or cluster-wide (--global). Plain values
are KEY=VALUE arguments; an empty VALUE sets the empty string. Secret values
are stored sealed and never shown again: --secret KEY=VALUE, or, to keep the
value out of the shell history and the process list, --secret-file KEY=PATH
which reads it from a file (one trailing newline is dropped). All changes are
applied together; a machine's changed params take effect in its next plan.`,
		Example: `  underlay param set --machine m-3fa9c0d2e1b4 hostname=db1 disk=/dev/sda
  underlay param set --global ntp_server=10.0.0.1 dns=10.0.0.53
  underlay param set --global --secret-file root_password=/root/pw.txt`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := target.check(); err != nil {
				return err
			}
			set, err := parseParams(args, secrets, secretFile)
			if err != nil {
				return err
			}
			if len(set) == 0 {
				return usagef("nothing to set: give KEY=VALUE, --secret KEY=VALUE or --secret-file KEY=PATH")
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Provision.SetParams(ctx, &underlayv1.SetParamsRequest{MachineId: target.machine, Set: set})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) {
					fmt.Fprintf(w, "Set %s on %s.\n", strings.Join(slices.Sorted(maps.Keys(set)), ", "), target.String())
				})
			})
		},
	}
	target.flags(cmd)
	cmd.Flags().StringArrayVar(&secrets, "secret", nil, "set a secret param KEY=VALUE (repeatable)")
	cmd.Flags().StringArrayVar(&secretFile, "secret-file", nil, "set a secret param KEY from the file PATH (repeatable)")
	return cmd
}

func (a *app) newParamUnsetCmd() *cobra.Command {
	var target paramTarget
	cmd := &cobra.Command{
		Use:   "unset (--machine ID | --global) KEY...",
		Short: "Remove params of a machine or global params",
		Long: `Remove params from one machine (--machine) or from the global params
(--global). Values from other sources (profiles, the role, task defaults) then
show through again; 'underlay param show' tells which.`,
		Example: `  underlay param unset --machine m-3fa9c0d2e1b4 disk
  underlay param unset --global ntp_server dns`,
		Args: rangeArgs(1, -1, "at least one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := target.check(); err != nil {
				return err
			}
			seen := map[string]bool{}
			for _, k := range args {
				if err := checkParamKey(k, k); err != nil {
					return usagef("%w", err)
				}
				if seen[k] {
					return usagef("%w %q: given twice", errBadParam, k)
				}
				seen[k] = true
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Provision.SetParams(ctx, &underlayv1.SetParamsRequest{MachineId: target.machine, Remove: args})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) {
					fmt.Fprintf(w, "Removed %s from %s.\n", strings.Join(args, ", "), target.String())
				})
			})
		},
	}
	target.flags(cmd)
	return cmd
}

// parseParams turns KEY=VALUE arguments, --secret KEY=VALUE and
// --secret-file KEY=PATH into the values to set. A key may appear once.
func parseParams(plain, secrets, secretFiles []string) (map[string]*underlayv1.ParamValue, error) {
	set := map[string]*underlayv1.ParamValue{}
	add := func(flag, arg string, secret, file bool) error {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			want := "KEY=VALUE"
			if file {
				want = "KEY=PATH"
			}
			return usagef("%s%w %q: want %s", flag, errBadParam, arg, want)
		}
		if err := checkParamKey(arg, k); err != nil {
			return usagef("%s%w", flag, err)
		}
		if _, dup := set[k]; dup {
			return usagef("%s%w %q: key %q given twice", flag, errBadParam, arg, k)
		}
		if file {
			b, err := os.ReadFile(v)
			if err != nil {
				return fmt.Errorf("--secret-file %s: %w", k, err)
			}
			v = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		}
		set[k] = &underlayv1.ParamValue{Value: v, Secret: secret}
		return nil
	}
	for _, arg := range plain {
		if err := add("", arg, false, false); err != nil {
			return nil, err
		}
	}
	for _, arg := range secrets {
		if err := add("--secret: ", arg, true, false); err != nil {
			return nil, err
		}
	}
	for _, arg := range secretFiles {
		if err := add("--secret-file: ", arg, true, true); err != nil {
			return nil, err
		}
	}
	return set, nil
}

func checkParamKey(arg, k string) error {
	if k == "" {
		return fmt.Errorf("%w %q: empty key", errBadParam, arg)
	}
	if strings.ContainsAny(k, " \t\n=") {
		return fmt.Errorf("%w %q: keys may not contain whitespace or '='", errBadParam, arg)
	}
	return nil
}

func (a *app) newMachineProfileCmd() *cobra.Command {
	var add, remove []string
	cmd := &cobra.Command{
		Use:   "profile ID [--add P]... [--remove Q]...",
		Short: "Add profiles to a machine or remove them",
		Long: `Add profiles to a machine or remove them. A machine's profiles come after its
role's (and override them); the machine's own params override both. The
change takes effect in the machine's next plan.`,
		Example: `  underlay machine profile m-3fa9c0d2e1b4 --add fast-disks
  underlay machine profile m-3fa9c0d2e1b4 --add gpu,ib --remove slow-net`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(add) == 0 && len(remove) == 0 {
				return usagef("nothing to change: give --add PROFILE or --remove PROFILE")
			}
			adding := map[string]bool{}
			for _, p := range add {
				if p == "" {
					return usagef("--add: empty profile name")
				}
				adding[p] = true
			}
			for _, p := range remove {
				if p == "" {
					return usagef("--remove: empty profile name")
				}
				if adding[p] {
					return usagef("profile %q is both in --add and --remove", p)
				}
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Provision.SetParams(ctx, &underlayv1.SetParamsRequest{
					MachineId: args[0], AddProfiles: add, RemoveProfiles: remove})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) {
					if len(add) > 0 {
						fmt.Fprintf(w, "Added profile(s) %s to machine %s.\n", strings.Join(add, ", "), args[0])
					}
					if len(remove) > 0 {
						fmt.Fprintf(w, "Removed profile(s) %s from machine %s.\n", strings.Join(remove, ", "), args[0])
					}
				})
			})
		},
	}
	cmd.Flags().StringSliceVar(&add, "add", nil, "profile(s) to add, comma-separated or repeated")
	cmd.Flags().StringSliceVar(&remove, "remove", nil, "profile(s) to remove, comma-separated or repeated")
	return cmd
}
