package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Defaults for the global flags.
const (
	defaultServer   = "127.0.0.1:7443"
	defaultAdminDir = "/var/lib/underlay/admin"
	envServer       = "UNDERLAY_SERVER"
	envCreds        = "UNDERLAY_CREDS"
)

// app is one invocation of the CLI: its global options and its I/O.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	home           func() (string, error)
	now            func() time.Time
	adminDir       string

	root *cobra.Command

	servers  []string
	credsDir string
	output   string
	stale    bool
	timeout  time.Duration
}

// run executes the CLI with args and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	a := &app{
		stdout:   stdout,
		stderr:   stderr,
		getenv:   getenv,
		home:     os.UserHomeDir,
		now:      time.Now,
		adminDir: defaultAdminDir,
	}
	return a.execute(ctx, args)
}

func (a *app) execute(ctx context.Context, args []string) int {
	root := a.newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	servers, _ := a.serverList()
	fmt.Fprintf(a.stderr, "error: %s\n", describe(err, servers, a.timeout.String()))
	code := exitCode(err)
	if code == exitUsage {
		path := "underlay"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", path)
	}
	return code
}

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "underlay",
		Short: "Provision and operate fleets of machines",
		Long: `underlay is the Underlay management binary.

'underlay server' runs a management node. Every other command is the operator
CLI: it talks mTLS gRPC to the cluster's operator API, using the credentials in
--creds and any node in --server (writes are forwarded to the leader, and a
node that is down is skipped).

Output is a table for humans by default; -o json and -o yaml print every field.`,
		Example: `  underlay cluster status
  underlay --server 10.0.0.1:7443,10.0.0.2:7443 machine ls --state ready
  UNDERLAY_CREDS=~/ops-creds underlay token create --kind discovery --ttl 24h --uses 50`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRun,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringSliceVar(&a.servers, "server", []string{defaultServer},
		"server address(es) host:port, comma-separated or repeated (env "+envServer+")")
	pf.StringVar(&a.credsDir, "creds", "",
		"credentials directory with ca.pem, cert.pem, key.pem (env "+envCreds+
			"; default $HOME/.config/underlay/creds if it exists, else "+defaultAdminDir+")")
	pf.StringVarP(&a.output, "output", "o", formatTable, "output format: table, json or yaml")
	pf.BoolVar(&a.stale, "stale", false, "allow stale reads: the answering node's local state, without asking the leader")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "timeout for each request")

	root.AddCommand(
		newServerCmd(),
		a.newClusterCmd(),
		a.newTokenCmd(),
		a.newOperatorCmd(),
		a.newCertCmd(),
		a.newWhoAmICmd(),
		a.newMachineCmd(),
		a.newWatchCmd(),
		a.newSubnetCmd(),
		a.newLeaseCmd(),
		a.newReservationCmd(),
		a.newVersionCmd(),
		a.newApplyCmd(), a.newTaskCmd(), a.newRoleCmd(), a.newProfileCmd(), a.newRuleCmd(), a.newGlobalCmd(),
		a.newParamCmd(), a.newLogsCmd(),
	)
	a.root = root
	return root
}

// group makes cmd a command group: without arguments it shows its help,
// with an unknown sub-command it is a usage error.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = groupRun
	return cmd
}

func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// exactArgs requires exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("%q needs %d argument(s) (%s), got %d", cmd.CommandPath(), len(names),
				strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// rangeArgs requires between minN and maxN positional arguments.
func rangeArgs(minN, maxN int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < minN || (maxN >= 0 && len(args) > maxN) {
			return usagef("%q takes %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// flagChanged reports whether a global flag was given on the command line.
func (a *app) flagChanged(name string) bool {
	return a.root != nil && a.root.PersistentFlags().Changed(name)
}

// serverList resolves the servers: --server beats UNDERLAY_SERVER beats the
// default.
func (a *app) serverList() ([]string, error) {
	raw := []string{defaultServer}
	switch {
	case a.flagChanged("server"):
		raw = a.servers
	case a.getenv(envServer) != "":
		raw = []string{a.getenv(envServer)}
	}
	s, err := client.NormalizeServers(raw)
	if err != nil {
		return raw, usagef("--server: %w", err)
	}
	return s, nil
}

// credsDirectory resolves the credentials directory: --creds beats
// UNDERLAY_CREDS beats $HOME/.config/underlay/creds (if it exists) beats the
// local admin directory a bootstrapping server writes.
func (a *app) credsDirectory() string {
	if a.flagChanged("creds") && a.credsDir != "" {
		return a.credsDir
	}
	if d := a.getenv(envCreds); d != "" {
		return d
	}
	if h, err := a.home(); err == nil && h != "" {
		d := filepath.Join(h, ".config", "underlay", "creds")
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
	}
	return a.adminDir
}

// printer returns the printer for the -o format.
func (a *app) printer() (*printer, error) {
	return newPrinter(a.stdout, a.output, a.now)
}

// readOptions carries --stale.
func (a *app) readOptions() *underlayv1.ReadOptions {
	return &underlayv1.ReadOptions{Stale: a.stale}
}

// dial connects to the cluster with the resolved servers and credentials.
func (a *app) dial() (*client.Client, error) {
	servers, err := a.serverList()
	if err != nil {
		return nil, err
	}
	dir := a.credsDirectory()
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil, fmt.Errorf("%w: %s (set it with --creds or %s)", errNoCredsDir, dir, envCreds)
	}
	if err != nil {
		return nil, fmt.Errorf("credentials directory %s (set it with --creds or %s): %w", dir, envCreds, err)
	}
	c, err := client.New(client.Options{Servers: servers, CredsDir: dir})
	if err != nil {
		return nil, fmt.Errorf("credentials in %s (set the directory with --creds or %s): %w", dir, envCreds, err)
	}
	return c, nil
}

// call runs fn with a connected client and a context bounded by --timeout.
func (a *app) call(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client, p *printer) error) error {
	return a.session(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
		ctx, cancel := context.WithTimeout(ctx, a.timeout)
		defer cancel()
		return fn(ctx, c, p)
	})
}

// session runs fn with a connected client and the command's own context,
// which --timeout does not bound: for commands that follow a stream or a
// plan until it ends or Ctrl-C.
func (a *app) session(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client, p *printer) error) error {
	p, err := a.printer()
	if err != nil {
		return err
	}
	c, err := a.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(cmd.Context(), c, p)
}

// streamEnd says whether a stream's Recv error ends a follow loop, and with
// what: io.EOF and the cancel that Ctrl-C causes end it cleanly, any other
// error ends it with that error, nil does not end it.
func streamEnd(ctx context.Context, err error) (bool, error) {
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, io.EOF), ctx.Err() != nil && status.Code(err) == codes.Canceled:
		return true, nil
	}
	return true, err
}

// flagEnum validates a flag value against names and returns a usage error
// naming the flag and the choices.
func flagEnum(flag, value string, names []string) error {
	if value == "" {
		return usagef("--%s is required: use one of %s", flag, strings.Join(names, ", "))
	}
	return usagef("--%s %q is not valid: use one of %s", flag, value, strings.Join(names, ", "))
}
