// Package node assembles a management node: the data directory, Raft, the
// state store, the CA, the gRPC API with mutual TLS, metrics, and the
// bootstrap and join procedures.
package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"underlay.dev/pkg/mtls"
	"underlay.dev/server/internal/cluster"
	"underlay.dev/server/internal/fsm"
	"underlay.dev/server/internal/metrics"
	"underlay.dev/server/internal/orchestrate"
	"underlay.dev/server/internal/plan"
	"underlay.dev/server/internal/rpc"
	"underlay.dev/server/internal/seal"
	"underlay.dev/server/internal/store"
)

// Defaults.
const (
	DefaultDataDir       = "/var/lib/underlay"
	DefaultListen        = "0.0.0.0:7443"
	DefaultRaftListen    = "0.0.0.0:7444"
	DefaultMetricsListen = "127.0.0.1:7445"
)

// Config configures a node. Zero values take the defaults above.
type Config struct {
	DataDir string
	// NodeID defaults to the host name at bootstrap or join; afterwards it
	// is read from the data directory.
	NodeID        string
	Listen        string
	Advertise     string
	RaftListen    string
	RaftAdvertise string
	// MetricsListen is the Prometheus address; "off" disables it.
	MetricsListen string
	// HTTPSListen serves the join script, CA and agent binary; "off"
	// disables it. AgentBinary is the agent served there.
	HTTPSListen string
	AgentBinary string
	// Boot configures DHCP, TFTP and the HTTP boot endpoint.
	Boot BootConfig
	// Join lists addresses of existing nodes; with Token and CAFingerprint
	// it makes an empty data directory join instead of bootstrapping.
	Join          []string
	Token         string
	CAFingerprint string

	// Raft timeouts; zero takes hashicorp/raft's defaults (1s, 1s, 500ms).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// CommitTimeout bounds how long a follower waits to learn the commit
	// index when no new entries flow (zero: DefaultCommitTimeout).
	CommitTimeout     time.Duration
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	NodeCertTTL       time.Duration
	// OfflineGrace is how long a machine may be without an agent session
	// before it is shown offline (zero: the rpc default, 15s).
	OfflineGrace time.Duration
	Version      string
	Log          *slog.Logger
}

// Node is a running management node.
type Node struct {
	cfg       Config
	log       *slog.Logger
	id        string
	state     *state
	store     *store.Store
	fsm       *fsm.FSM
	cluster   *cluster.Cluster
	certs     *mtls.CertStore
	roots     *x509.CertPool
	caPEM     []byte
	rpc       *rpc.Server
	peers     *rpc.Peers
	metrics   *metrics.Metrics
	grpc      *grpc.Server
	apiLn     net.Listener
	raftLn    net.Listener
	httpSrv   *http.Server
	httpsSrv  *http.Server
	httpsAddr string
	bootSrv   *http.Server
	bootURL   string
	apiAddr   string
	sealKey   []byte
	orch      *orchestrate.Orchestrator

	stop    context.CancelFunc
	done    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Mutex
	closed  bool
	fatal   chan error
}

// ID is the node ID.
func (n *Node) ID() string { return n.id }

// APIAddr is the advertised gRPC address.
func (n *Node) APIAddr() string { return n.apiAddr }

// RaftAddr is the advertised Raft address.
func (n *Node) RaftAddr() string { return n.cluster.Addr() }

// ClusterID is the ID of the cluster this node belongs to.
func (n *Node) ClusterID() string { return n.state.ClusterID }

// Fingerprint is the cluster CA fingerprint.
func (n *Node) Fingerprint() string { return n.state.Fingerprint }

// AdminCredsDir is where bootstrap wrote the local admin's credentials.
func (n *Node) AdminCredsDir() string { return filepath.Join(n.cfg.DataDir, adminDir) }

// Cluster exposes Raft (tests and benchmarks).
func (n *Node) Cluster() *cluster.Cluster { return n.cluster }

// Store exposes the local state store (tests).
func (n *Node) Store() *store.Store { return n.store }

// MetricsHandler serves this node's metrics (tests).
func (n *Node) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(n.metrics.Registry, promhttp.HandlerOpts{})
}

// Fatal delivers an error when the node stops itself (e.g. its data turned
// out to belong to another cluster).
func (n *Node) Fatal() <-chan error { return n.fatal }

func (c *Config) defaults() error {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.RaftListen == "" {
		c.RaftListen = DefaultRaftListen
	}
	if c.MetricsListen == "" {
		c.MetricsListen = DefaultMetricsListen
	}
	if c.HTTPSListen == "" {
		c.HTTPSListen = DefaultHTTPSListen
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if len(c.Join) > 0 && (c.Token == "" || c.CAFingerprint == "") {
		return errors.New("--join needs --token and --ca-fingerprint")
	}
	if c.CAFingerprint != "" {
		fp, err := mtls.NormalizeFingerprint(c.CAFingerprint)
		if err != nil {
			return fmt.Errorf("--ca-fingerprint: %w", err)
		}
		c.CAFingerprint = fp
	}
	return nil
}

// Run starts a node and runs it until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	n, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return n.Close()
	case err := <-n.fatal:
		n.Close()
		return err
	}
}

// Start brings a node up: bootstrap an empty data directory, join an
// existing cluster, or resume from the data directory.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	kind, st, err := inspect(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Log, metrics: metrics.New(), fatal: make(chan error, 1), done: make(chan struct{})}
	if err := n.listen(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	switch {
	case kind == dirEmpty && len(cfg.Join) == 0:
		err = n.bootstrap(ctx)
	case kind == dirEmpty:
		err = n.join(ctx)
	default:
		err = n.resume(ctx, st)
	}
	if err != nil {
		return nil, err
	}
	ok = true
	return n, nil
}

// listen opens the API and Raft sockets first, so that the advertised
// addresses (and the ports, when :0 was asked for) are known.
func (n *Node) listen() error {
	if err := os.MkdirAll(n.cfg.DataDir, dirMode); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	var err error
	n.apiLn, err = net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (--listen): %w", n.cfg.Listen, err)
	}
	n.raftLn, err = net.Listen("tcp", n.cfg.RaftListen)
	if err != nil {
		return fmt.Errorf("listen on %s (--raft-listen): %w", n.cfg.RaftListen, err)
	}
	if n.apiAddr, err = advertise(n.cfg.Advertise, n.apiLn.Addr()); err != nil {
		return fmt.Errorf("--advertise: %w", err)
	}
	raftAdv, err := advertise(n.cfg.RaftAdvertise, n.raftLn.Addr())
	if err != nil {
		return fmt.Errorf("--raft-advertise: %w", err)
	}
	n.cfg.RaftAdvertise = raftAdv
	return nil
}

// advertise picks the address other parties dial: the explicit one, or the
// listener's own, with an unspecified IP replaced by this host's first
// non-loopback address.
func advertise(explicit string, ln net.Addr) (string, error) {
	tcp := ln.(*net.TCPAddr)
	if explicit != "" {
		host, port, err := net.SplitHostPort(explicit)
		if err != nil {
			// A bare host takes the listener's port.
			host, port = explicit, fmt.Sprint(tcp.Port)
		}
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			return "", fmt.Errorf("%q: need an IP address others can reach", explicit)
		}
		return net.JoinHostPort(host, port), nil
	}
	if !tcp.IP.IsUnspecified() {
		return tcp.String(), nil
	}
	ip := hostIP()
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port)), nil
}

func hostIP() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP
			}
		}
	}
	return net.IPv4(127, 0, 0, 1)
}

func defaultNodeID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "node"
	}
	h = strings.ToLower(strings.SplitN(h, ".", 2)[0])
	return h
}

// start opens Raft and serves the API. The node's certificate must be in
// n.certs and the roots in n.roots already.
func (n *Node) start(bootstrap bool) error {
	n.store = mustStore()
	f := fsm.New(n.store, n.log.With("component", "fsm"))
	n.fsm = f
	roots := n.roots
	n.peers = rpc.NewPeers(n.store, func() *tls.Config { return mtls.ClientConfig(n.certs.Get, roots) })
	raftServer := mtls.ServerConfig(n.certs.Get, roots)
	raftServer.ClientAuth = tls.RequireAndVerifyClientCert
	raftServer.VerifyConnection = requireNodePeer
	cl, err := cluster.Open(cluster.Config{
		NodeID:            n.id,
		Dir:               filepath.Join(n.cfg.DataDir, raftDir),
		Listener:          n.raftLn,
		Advertise:         n.cfg.RaftAdvertise,
		TLS:               cluster.TLSConfigs{Server: raftServer, Client: mtls.ClientConfig(n.certs.Get, roots)},
		FSM:               f,
		Peers:             n.peers,
		Log:               n.log,
		Bootstrap:         bootstrap,
		Timing:            cluster.Timing{Heartbeat: n.cfg.HeartbeatTimeout, Election: n.cfg.ElectionTimeout, LeaderLease: n.cfg.LeaderLeaseTimeout, Commit: n.commitTimeout()},
		SnapshotThreshold: n.cfg.SnapshotThreshold,
		SnapshotInterval:  n.cfg.SnapshotInterval,
		TrailingLogs:      n.cfg.TrailingLogs,
		ObserveApply:      func(d time.Duration) { n.metrics.ApplyDuration.Observe(d.Seconds()) },
		FSMApplied:        f.Applied,
	})
	if err != nil {
		return err
	}
	n.raftLn = nil // owned by Raft now
	n.cluster = cl
	n.metrics.WatchRaft(cl)
	n.rpc = rpc.New(rpc.Config{
		Cluster:      cl,
		Store:        n.store,
		Peers:        n.peers,
		Log:          n.log.With("component", "rpc"),
		Metrics:      n.metrics,
		Version:      n.cfg.Version,
		NodeCertTTL:  n.cfg.NodeCertTTL,
		OfflineGrace: n.cfg.OfflineGrace,
		SealKey:      n.sealKey,
		DryRun:       f.DryRun,
	})
	var open plan.Opener
	if sl, err := seal.New(n.sealKey); err == nil {
		open = func(b []byte, purpose string) (string, error) {
			pt, err := sl.Open(b, purpose)
			return string(pt), err
		}
	}
	n.orch = orchestrate.New(orchestrate.Config{
		Cluster: cl,
		Store:   n.store,
		Log:     n.log.With("component", "orchestrate"),
		Metrics: n.metrics,
		Open:    open,
	})
	n.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(mtls.ServerConfig(n.certs.Get, roots))),
		grpc.ChainUnaryInterceptor(n.rpc.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(n.rpc.StreamInterceptor()),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Thousands of mostly idle agent streams: small per-connection
		// buffers, and write buffers shared instead of held per connection.
		grpc.ReadBufferSize(8<<10),
		grpc.WriteBufferSize(8<<10),
		grpc.SharedWriteBuffer(true),
	)
	n.rpc.Register(n.grpc)
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(n.apiLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("grpc server stopped", "err", err)
		}
	}()
	if err := n.serveMetrics(); err != nil {
		return err
	}
	if err := n.serveHTTPS(); err != nil {
		return err
	}
	if err := n.startBoot(ctx); err != nil {
		return err
	}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		n.renewLoop(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.orch.Run(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.rpc.Run(ctx)
	}()
	n.log.Info("node serving", "node_id", n.id, "api_addr", n.apiAddr, "raft_addr", cl.Addr(), "metrics_addr", n.cfg.MetricsListen)
	return nil
}

func requireNodePeer(cs tls.ConnectionState) error {
	id, _, err := mtls.PeerIdentity(cs)
	if err != nil {
		return err
	}
	if id.Kind != mtls.KindNode {
		return fmt.Errorf("raft peer %s is not a node", id)
	}
	return nil
}

func mustStore() *store.Store {
	s, err := store.New()
	if err != nil {
		// The schema is static; failing here is a programming error.
		panic(fmt.Sprintf("state store schema: %v", err))
	}
	return s
}

func (n *Node) serveMetrics() error {
	if n.cfg.MetricsListen == "off" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("listen on %s (--metrics-listen): %w", n.cfg.MetricsListen, err)
	}
	n.cfg.MetricsListen = ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/metrics", n.MetricsHandler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "ok %s %s\n", n.id, n.cluster.State())
	})
	// Profiles, for looking into memory per agent session and the like.
	// The metrics address is loopback by default; keep it off public networks.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if id, _ := n.cluster.Leader(); id == "" {
			http.Error(w, "no leader", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	n.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}

// MetricsAddr is where metrics are served, empty when off.
func (n *Node) MetricsAddr() string {
	if n.httpSrv == nil {
		return ""
	}
	return n.cfg.MetricsListen
}

// Close stops the node. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	close(n.done)
	if n.stop != nil {
		n.stop()
	}
	if n.rpc != nil {
		n.rpc.Close()
	}
	if n.grpc != nil {
		done := make(chan struct{})
		go func() { n.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			n.grpc.Stop()
		}
	} else if n.apiLn != nil {
		n.apiLn.Close()
	}
	if n.httpSrv != nil {
		n.httpSrv.Close()
	}
	if n.httpsSrv != nil {
		n.httpsSrv.Close()
	}
	if n.bootSrv != nil {
		n.bootSrv.Close()
	}
	var err error
	if n.cluster != nil {
		err = n.cluster.Close()
	}
	if n.raftLn != nil {
		n.raftLn.Close()
	}
	if n.peers != nil {
		n.peers.Close()
	}
	n.wg.Wait()
	return err
}

func (n *Node) stopped() <-chan struct{} { return n.done }

// DefaultCommitTimeout is how long an idle leader waits before it sends the
// commit index to followers again (hashicorp/raft waits a random time
// between this and twice this; 50ms is its own default). Followers do not
// depend on it to see writes promptly: the cluster nudges them with a barrier
// after each apply (server/internal/cluster/nudge.go).
const DefaultCommitTimeout = 50 * time.Millisecond

func (n *Node) commitTimeout() time.Duration {
	if n.cfg.CommitTimeout > 0 {
		return n.cfg.CommitTimeout
	}
	return DefaultCommitTimeout
}
