// Command underlay-agent is the Underlay node agent. `run` runs it in the
// foreground (as a systemd service, or as the uinit of the PXE discovery
// image with its settings on the kernel command line); `install` and
// `uninstall` set it up as a systemd service; `inventory` prints what it
// would report.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"

	"underlay.dev/agent"
	"underlay.dev/agent/driver/inventory"
	"underlay.dev/pkg/version"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

func main() {
	if err := newRoot().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "underlay-agent:", err)
		os.Exit(1)
	}
}

// hardware is the real inventory driver behind agent.Inventory.
type hardware struct {
	opts inventory.Options
}

func (h hardware) Collect(ctx context.Context) (*underlayv1.Inventory, error) {
	return inventory.Collect(ctx, h.opts)
}

func (hardware) Identity(inv *underlayv1.Inventory) *underlayv1.MachineIdentity {
	return inventory.Identity(inv)
}

func (hardware) Hash(inv *underlayv1.Inventory) string { return inventory.Hash(inv) }

func newLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "underlay-agent",
		Short:         "Underlay node agent",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// As the uinit of the discovery image (parent is init, no
			// arguments) the agent runs with its defaults.
			if os.Getppid() == 1 {
				stopLease := prepareBoot(cmd.Context(), cmd.ErrOrStderr())
				return runAgent(cmd.Context(), runFlags{stopBootLease: stopLease}, cmd.ErrOrStderr())
			}
			return cmd.Help()
		},
	}
	root.AddCommand(newRunCmd(), newInstallCmd(), newUninstallCmd(), newInventoryCmd(), newVersionCmd())
	return root
}

type runFlags struct {
	// stopBootLease stops renewing the discovery image's boot lease.
	stopBootLease func()
	s             settings
	configPath    string
	debug         bool
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.s.Servers, "server", nil, "management servers, host:port (comma-separated or repeated)")
	fl.StringVar(&f.s.Fingerprint, "ca-fingerprint", "", "SHA-256 fingerprint of the cluster root CA")
	fl.StringVar(&f.s.Token, "token", "", "enrollment token")
	fl.StringVar(&f.s.StateDir, "state-dir", "", "state directory (default "+agent.DefaultStateDir+")")
	fl.StringVar(&f.configPath, "config", "", "config file (default "+DefaultConfigFile+")")
	fl.BoolVar(&f.debug, "debug", false, "debug logging")
	return cmd
}

func runAgent(ctx context.Context, f runFlags, logTo io.Writer) error {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	cfg, err := resolve(sources{
		flags:      f.s,
		configPath: f.configPath,
		getenv:     os.Getenv,
		readFile:   os.ReadFile,
		cmdline:    string(cmdline),
	})
	if err != nil {
		return err
	}
	log := newLogger(logTo, f.debug)
	cfg.Hardware = drivers(ctx, log, f.stopBootLease)
	cfg.Reboot = reboot
	a, err := agent.New(cfg, hardware{opts: inventory.Options{Log: log}}, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("agent starting", "version", version.String(), "servers", cfg.Servers, "state_dir", cfg.StateDir)
	return a.Run(ctx)
}

func newInventoryCmd() *cobra.Command {
	var output, root string
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Print the hardware inventory this machine would report",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(cmd.ErrOrStderr(), false)
			inv, err := inventory.Collect(cmd.Context(), inventory.Options{Root: root, Log: log})
			if err != nil {
				return err
			}
			var b []byte
			switch output {
			case "json":
				b, err = protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(inv)
			case "text":
				b, err = prototext.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(inv)
			default:
				return fmt.Errorf("output %q: want json or text: %w", output, errBadSetting)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&root, "root", "", "read /sys, /proc, /dev from this snapshot root")
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "underlay-agent", version.String())
			return err
		},
	}
}
