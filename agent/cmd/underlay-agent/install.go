package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"underlay.dev/agent"
	"underlay.dev/packaging"
	"underlay.dev/pkg/mtls"
)

// Installed paths, relative to the install root.
const (
	binPath  = "/usr/local/bin/underlay-agent"
	confPath = DefaultConfigFile
	unitPath = "/etc/systemd/system/underlay-agent.service"
	unitName = "underlay-agent.service"
)

// installer puts the agent on a (possibly mounted, not running) root.
type installer struct {
	root string
	// live is true when root is the running system, where systemd can be
	// told to start things.
	live bool
	self string // the running binary, copied to binPath
	// systemctl runs systemctl with args.
	systemctl func(args ...string) error
	out       io.Writer
}

func (in *installer) path(p string) string { return filepath.Join(in.root, p) }

// install writes the binary, config and unit, and unless noStart enables
// and starts the service. It is idempotent: unchanged files are left alone,
// and a running service is restarted only when something changed.
func (in *installer) install(s settings, noStart bool) error {
	if len(s.Servers) == 0 {
		return fmt.Errorf("--server is required: %w", errMissingSetting)
	}
	if _, err := agent.NormalizeServers(s.Servers); err != nil {
		return err
	}
	if s.Fingerprint == "" {
		return fmt.Errorf("--ca-fingerprint is required: %w", errMissingSetting)
	}
	fp, err := mtls.NormalizeFingerprint(s.Fingerprint)
	if err != nil {
		return fmt.Errorf("--ca-fingerprint: %w", err)
	}
	s.Fingerprint = fp
	if s.Token == "" {
		return fmt.Errorf("--token is required: %w", errMissingSetting)
	}
	bin, err := os.ReadFile(in.self)
	if err != nil {
		return fmt.Errorf("read own binary: %w", err)
	}
	conf, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	conf = append([]byte("# Written by underlay-agent install; holds the enrollment token.\n"), conf...)
	changed := false
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{binPath, bin, 0o755},
		{confPath, conf, 0o600},
		{unitPath, packaging.AgentUnit(), 0o644},
	} {
		c, err := writeIfChanged(in.path(f.path), f.data, f.mode)
		if err != nil {
			return err
		}
		if c {
			fmt.Fprintf(in.out, "wrote %s\n", in.path(f.path))
		}
		changed = changed || c
	}
	if noStart {
		return nil
	}
	if !in.live {
		fmt.Fprintf(in.out, "root %s is not the running system: enabling without starting\n", in.root)
		return in.systemctl("--root="+in.root, "enable", unitName)
	}
	if err := in.systemctl("daemon-reload"); err != nil {
		return err
	}
	if !changed {
		return in.systemctl("enable", "--now", unitName)
	}
	if err := in.systemctl("enable", unitName); err != nil {
		return err
	}
	return in.systemctl("restart", unitName)
}

// uninstall stops and removes what install wrote; purge also removes the
// agent's state (its key and certificate).
func (in *installer) uninstall(noStop, purge bool) error {
	stateDir := agent.DefaultStateDir
	if b, err := os.ReadFile(in.path(confPath)); err == nil {
		if s, err := parseConfigFile(confPath, b); err == nil && s.StateDir != "" {
			stateDir = s.StateDir
		}
	}
	if !noStop {
		args := []string{"disable", "--now", unitName}
		if !in.live {
			args = []string{"--root=" + in.root, "disable", unitName}
		}
		if err := in.systemctl(args...); err != nil {
			fmt.Fprintf(in.out, "systemctl %s: %v (continuing)\n", strings.Join(args, " "), err)
		}
	}
	remove := []string{unitPath, confPath, binPath}
	if purge {
		remove = append(remove, stateDir)
	}
	for _, p := range remove {
		full := in.path(p)
		if _, err := os.Lstat(full); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := os.RemoveAll(full); err != nil {
			return fmt.Errorf("uninstall: %w", err)
		}
		fmt.Fprintf(in.out, "removed %s\n", full)
	}
	if !noStop && in.live {
		return in.systemctl("daemon-reload")
	}
	return nil
}

// writeIfChanged writes data with mode to path through a temporary file
// (so a running binary can be replaced), unless it is already there.
func writeIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		st, err := os.Stat(path)
		if err == nil && st.Mode().Perm() == mode {
			return false, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, fmt.Errorf("install: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("install: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	return true, nil
}

func runSystemctl(out io.Writer) func(args ...string) error {
	return func(args ...string) error {
		fmt.Fprintf(out, "systemctl %s\n", strings.Join(args, " "))
		cmd := exec.Command("systemctl", args...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
		}
		return nil
	}
}

func newInstaller(cmd *cobra.Command, root string) (*installer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	if r, err := filepath.EvalSymlinks(self); err == nil {
		self = r
	}
	return &installer{root: root, live: filepath.Clean(root) == "/", self: self, systemctl: runSystemctl(cmd.OutOrStdout()), out: cmd.OutOrStdout()}, nil
}

func newInstallCmd() *cobra.Command {
	var s settings
	var root string
	var noStart bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the agent as a systemd service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := newInstaller(cmd, root)
			if err != nil {
				return err
			}
			return in.install(s, noStart)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&s.Servers, "server", nil, "management servers, host:port (comma-separated or repeated)")
	fl.StringVar(&s.Fingerprint, "ca-fingerprint", "", "SHA-256 fingerprint of the cluster root CA")
	fl.StringVar(&s.Token, "token", "", "enrollment token")
	fl.StringVar(&s.StateDir, "state-dir", "", "state directory (default "+agent.DefaultStateDir+")")
	fl.StringVar(&root, "root", "/", "install into this root directory")
	fl.BoolVar(&noStart, "no-start", false, "do not enable or start the service")
	return cmd
}

func newUninstallCmd() *cobra.Command {
	var root string
	var noStop, purge bool
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop and remove the agent service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := newInstaller(cmd, root)
			if err != nil {
				return err
			}
			return in.uninstall(noStop, purge)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&root, "root", "/", "uninstall from this root directory")
	fl.BoolVar(&noStop, "no-stop", false, "do not stop or disable the service")
	fl.BoolVar(&purge, "purge", false, "also remove the agent state (key and certificate)")
	return cmd
}
