package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"underlay.dev/pkg/version"
	"underlay.dev/server/node"
)

// serverOptions are the flags of 'underlay server'. Each can also come
// from the environment (UNDERLAY_ + the flag name in upper case with _ for
// -) or from the YAML config file (the flag name as key). Precedence:
// flag > environment > config file > default.
type serverOptions struct {
	config        string
	dataDir       string
	nodeID        string
	listen        string
	advertise     string
	raftListen    string
	raftAdvertise string
	metricsListen string
	httpsListen   string
	agentBinary   string
	boot          node.BootConfig
	join          []string
	token         string
	fingerprint   string
	logLevel      string
	logFormat     string
	heartbeat     time.Duration
	election      time.Duration
	commit        time.Duration
	snapThreshold uint64
	nodeCertTTL   time.Duration
}

func newServerCmd() *cobra.Command {
	o := &serverOptions{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a management node",
		Long: `Run an Underlay management node: Raft, the state store, the cluster CA and
the mTLS gRPC API.

With an empty data directory and no --join, the node bootstraps a new
single-node cluster: it creates the cluster CA (root + intermediate), its own
node certificate, and credentials for the local operator 'admin' in
<data-dir>/admin (point the CLI at them with --creds or UNDERLAY_CREDS).

With --join, --token and --ca-fingerprint, an empty data directory joins an
existing cluster instead: the cluster's CA is checked against the fingerprint
before anything is trusted, the one-time server token is spent, and the node
is added as a voter.

A data directory that already holds a node resumes it. A directory that is
damaged, or belongs to another cluster, is refused with a message that says
what is wrong; it is never re-bootstrapped silently.

Every flag can also be set in the config file (--config, YAML, keys are the
flag names) or the environment (UNDERLAY_DATA_DIR, UNDERLAY_LISTEN, ...).
Precedence: flag, environment, config file, default.`,
		Example: `  # first node
  underlay server --data-dir /var/lib/underlay --node-id n1
  # on the first node: a token for the second
  underlay token create --kind server --ttl 1h --uses 1
  # second node
  underlay server --node-id n2 --join 10.0.0.1:7443 --token <token> --ca-fingerprint <sha256>`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.resolve(cmd.Flags(), os.Getenv); err != nil {
				return usageError{err}
			}
			return o.run(cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "YAML config file whose keys are these flag names (env UNDERLAY_CONFIG)")
	f.StringVar(&o.dataDir, "data-dir", node.DefaultDataDir, "data directory")
	f.StringVar(&o.nodeID, "node-id", "", "node ID (default: the host name); fixed at bootstrap or join")
	f.StringVar(&o.listen, "listen", node.DefaultListen, "gRPC API listen address")
	f.StringVar(&o.advertise, "advertise", "", "API address other nodes, operators and agents dial (default: the listen address, or this host's first non-loopback IPv4)")
	f.StringVar(&o.raftListen, "raft-listen", node.DefaultRaftListen, "Raft (mTLS) listen address")
	f.StringVar(&o.raftAdvertise, "raft-advertise", "", "Raft address other nodes dial (default like --advertise)")
	f.StringVar(&o.metricsListen, "metrics-listen", node.DefaultMetricsListen, "Prometheus /metrics, /healthz and /readyz address, or \"off\"")
	f.StringVar(&o.httpsListen, "https-listen", node.DefaultHTTPSListen, "HTTPS address serving /join.sh, /ca.pem and /agent/linux-amd64 to machines that join, or \"off\"")
	f.StringVar(&o.agentBinary, "agent-binary", "", "agent binary served at /agent/linux-amd64 (default: underlay-agent next to this binary, else /usr/lib/underlay/underlay-agent)")
	f.StringVar(&o.boot.DHCPMode, "dhcp-mode", "off", "DHCP on the provisioning network: off, proxy (beside the site's DHCP: boot information only) or authoritative (addresses from --dhcp-subnet)")
	f.StringVar(&o.boot.DHCPInterface, "dhcp-interface", "", "provisioning interface DHCP listens on")
	f.StringVar(&o.boot.DHCPSubnet, "dhcp-subnet", "", "replicated subnet leased from in authoritative mode ('underlay subnet create')")
	f.StringVar(&o.boot.ServerIP, "boot-server-ip", "", "this node's address on the provisioning network (default: the first IPv4 of --dhcp-interface)")
	f.StringVar(&o.boot.HTTPListen, "boot-http-listen", "off", "plain-HTTP address serving /boot.ipxe and the discovery image to iPXE, e.g. 0.0.0.0:7447")
	f.StringVar(&o.boot.TFTPListen, "tftp-listen", "off", "TFTP address serving iPXE binaries to legacy PXE ROMs, e.g. 0.0.0.0:69")
	f.StringVar(&o.boot.TFTPRoot, "tftp-root", "/usr/lib/ipxe", "directory with undionly.kpxe and ipxe.efi (Debian package ipxe)")
	f.StringVar(&o.boot.ImageDir, "image-dir", "/usr/lib/underlay/discovery", "directory with the discovery image's vmlinuz and initramfs ('make image')")
	f.StringVar(&o.boot.KernelArgs, "kernel-args", "console=ttyS0", "extra kernel command line of the discovery image")
	f.BoolVar(&o.boot.NoRouterAdvert, "no-ipv6-ra", false, "do not answer IPv6 router solicitations on --dhcp-interface (the empty advertisement stops iPXE waiting ~16 s for an IPv6 router)")
	f.DurationVar(&o.boot.DiscoveryTokenTTL, "discovery-token-ttl", 24*time.Hour, "how often the leader rotates the discovery token (each stays valid for two periods)")
	f.StringSliceVar(&o.join, "join", nil, "address(es) of existing nodes to join (empty data directory only)")
	f.StringVar(&o.token, "token", "", "server join token from 'underlay token create --kind server'")
	f.StringVar(&o.fingerprint, "ca-fingerprint", "", "SHA-256 fingerprint of the cluster CA to trust when joining")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.DurationVar(&o.heartbeat, "raft-heartbeat-timeout", time.Second, "Raft heartbeat timeout")
	f.DurationVar(&o.election, "raft-election-timeout", time.Second, "Raft election timeout")
	f.DurationVar(&o.commit, "raft-commit-timeout", node.DefaultCommitTimeout, "how long an idle Raft leader waits before it repeats the commit index to followers (writes reach followers at once regardless)")
	f.Uint64Var(&o.snapThreshold, "raft-snapshot-threshold", 8192, "log entries between Raft snapshots")
	f.DurationVar(&o.nodeCertTTL, "node-cert-ttl", 7*24*time.Hour, "lifetime of node certificates (renewed at two thirds)")
	return cmd
}

// resolve fills flags that were not given from the environment and then
// from the config file.
func (o *serverOptions) resolve(fs *pflag.FlagSet, getenv func(string) string) error {
	envName := func(flag string) string {
		return "UNDERLAY_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
	}
	if !fs.Changed("config") {
		o.config = getenv("UNDERLAY_CONFIG")
	}
	file := map[string]any{}
	if o.config != "" {
		b, err := os.ReadFile(o.config)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config file %s: %w", o.config, err)
		}
		for k := range file {
			if fs.Lookup(k) == nil || k == "config" {
				return fmt.Errorf("config file %s: unknown key %q (keys are the flag names of 'underlay server')", o.config, k)
			}
		}
	}
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Changed || fl.Name == "config" || fl.Name == "help" {
			return
		}
		if v := getenv(envName(fl.Name)); v != "" {
			if e := fs.Set(fl.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(fl.Name), v, e)
			}
			return
		}
		if v, ok := file[fl.Name]; ok {
			s := fmt.Sprint(v)
			if l, isList := v.([]any); isList {
				parts := make([]string, len(l))
				for i, x := range l {
					parts[i] = fmt.Sprint(x)
				}
				s = strings.Join(parts, ",")
			}
			if e := fs.Set(fl.Name, s); e != nil {
				err = fmt.Errorf("config file %s: %s: %w", o.config, fl.Name, e)
			}
		}
	})
	return err
}

func (o *serverOptions) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
}

func (o *serverOptions) run(cmd *cobra.Command) error {
	log, err := o.logger()
	if err != nil {
		return usageError{err}
	}
	n, err := node.Start(cmd.Context(), node.Config{
		DataDir:           o.dataDir,
		NodeID:            o.nodeID,
		Listen:            o.listen,
		Advertise:         o.advertise,
		RaftListen:        o.raftListen,
		RaftAdvertise:     o.raftAdvertise,
		MetricsListen:     o.metricsListen,
		HTTPSListen:       o.httpsListen,
		AgentBinary:       o.agentBinary,
		Boot:              o.boot,
		Join:              o.join,
		Token:             o.token,
		CAFingerprint:     o.fingerprint,
		HeartbeatTimeout:  o.heartbeat,
		ElectionTimeout:   o.election,
		CommitTimeout:     o.commit,
		SnapshotThreshold: o.snapThreshold,
		NodeCertTTL:       o.nodeCertTTL,
		Version:           version.Version,
		Log:               log,
	})
	if err != nil {
		return err
	}
	w := cmd.ErrOrStderr()
	fmt.Fprintf(w, "underlay node %s serving the API on %s (cluster %s)\n", n.ID(), n.APIAddr(), n.ClusterID())
	fmt.Fprintf(w, "  CA fingerprint: %s\n", n.Fingerprint())
	if a := n.MetricsAddr(); a != "" {
		fmt.Fprintf(w, "  metrics:        http://%s/metrics\n", a)
	}
	if u := n.BootURL(); u != "" {
		fmt.Fprintf(w, "  boot endpoint:  %s/boot.ipxe\n", u)
	}
	if u := n.JoinURL(); u != "" {
		fmt.Fprintf(w, "  join endpoint:  %s/join.sh\n", u)
	}
	if _, err := os.Stat(n.AdminCredsDir()); err == nil {
		fmt.Fprintf(w, "  admin creds:    %s (export UNDERLAY_CREDS=%s UNDERLAY_SERVER=%s)\n", n.AdminCredsDir(), n.AdminCredsDir(), n.APIAddr())
	}
	select {
	case <-cmd.Context().Done():
		fmt.Fprintf(w, "shutting down node %s\n", n.ID())
		return n.Close()
	case err := <-n.Fatal():
		n.Close()
		return err
	}
}
