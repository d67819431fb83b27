package loadgen

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Errors of the simulated agents.
var (
	// ErrProtocol means the server broke the session protocol.
	ErrProtocol = errors.New("protocol violation")
	// ErrPin means the server's CA bundle lacks the pinned root.
	ErrPin = errors.New("ca bundle lacks the pinned root")
	// ErrSilent means a session received nothing for three intervals.
	ErrSilent = errors.New("session silent")
	// ErrConfig means the fleet configuration is unusable.
	ErrConfig = errors.New("bad fleet configuration")
)

// Config describes the cluster the fleet talks to.
type Config struct {
	// Servers are the API addresses; agent i starts at Servers[i%len] and
	// moves on in order when a session ends.
	Servers []string
	// Fingerprint is the pinned cluster CA fingerprint.
	Fingerprint string
	// Token is an agent token with enough uses for the fleet.
	Token string
	// Seed makes the synthetic identities of one run distinct from another.
	Seed uint64
	// BackoffBase and BackoffMax bound the full-jitter reconnect backoff
	// (default 200ms and 15s, as the real agent).
	BackoffBase, BackoffMax time.Duration
	// Healthy is how long a session must last for the backoff to start
	// over (default 1 min, as the real agent).
	Healthy time.Duration
	// CallTimeout bounds enrollment calls and session setup (default 15s).
	CallTimeout time.Duration
	// Log receives per-agent warnings (default: discarded).
	Log *slog.Logger
	// TaskTime is how long a simulated job takes between its start and
	// its result (default 0: a short task).
	TaskTime time.Duration
}

// Fleet is a set of simulated agents and the figures they collect.
type Fleet struct {
	cfg    Config
	Agents []*Agent
	// RTT records heartbeat round trips while it is started.
	RTT Recorder
	// EnrollLatency records every successful Enroll call.
	EnrollLatency Recorder
	// Counters.
	EnrollRetries   atomic.Int64
	SessionsOpened  atomic.Int64
	SessionFailures atomic.Int64
	Heartbeats      atomic.Int64
	connected       atomic.Int64
	// Jobs.
	JobsStarted  atomic.Int64
	JobsAcked    atomic.Int64
	jobMu        sync.Mutex
	jobsReceived map[string]time.Time // job ID -> first RunStep

	errMu    sync.Mutex
	retryErr map[string]int // enrollment retry reasons
}

// RetryReasons counts enrollment errors that were retried, by gRPC code
// and the start of the message.
func (f *Fleet) RetryReasons() map[string]int {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return maps.Clone(f.retryErr)
}

func (f *Fleet) noteRetry(err error) {
	msg := status.Convert(errors.Unwrap(err)).Message()
	if len(msg) > 80 {
		msg = msg[:80]
	}
	f.errMu.Lock()
	if f.retryErr == nil {
		f.retryErr = map[string]int{}
	}
	f.retryErr[status.Code(errors.Unwrap(err)).String()+": "+msg]++
	f.errMu.Unlock()
}

// Agent is one simulated machine.
type Agent struct {
	Index    int
	Identity *underlayv1.MachineIdentity
	servers  []string
	next     int

	mu        sync.Mutex
	machineID string
	cert      *tls.Certificate
	node      string    // node of the live session, "" when down
	upSince   time.Time // when the live session got its welcome
}

// State is a snapshot of one agent's session.
type State struct {
	MachineID string
	Node      string
	Up        bool
	UpSince   time.Time
}

// New returns a fleet of n agents with distinct synthetic identities.
func New(cfg Config, n int) (*Fleet, error) {
	if len(cfg.Servers) == 0 || cfg.Fingerprint == "" || cfg.Token == "" {
		return nil, fmt.Errorf("servers, fingerprint and token are required: %w", ErrConfig)
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 200 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 15 * time.Second
	}
	if cfg.Healthy <= 0 {
		cfg.Healthy = time.Minute
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{cfg: cfg}
	f.EnrollLatency.Start()
	for i := range n {
		servers := make([]string, len(cfg.Servers))
		for j := range servers {
			servers[j] = cfg.Servers[(i+j)%len(cfg.Servers)]
		}
		f.Agents = append(f.Agents, &Agent{Index: i, Identity: Identity(cfg.Seed, i), servers: servers})
	}
	return f, nil
}

// Identity returns the synthetic hardware identity of agent i: a valid
// random-looking DMI UUID and two locally administered MACs, all derived
// from seed and i, so identities never collide within a run.
func Identity(seed uint64, i int) *underlayv1.MachineIdentity {
	h := sha256.Sum256(fmt.Appendf(nil, "underlay-loadgen/%d/%d", seed, i))
	h[6] = h[6]&0x0f | 0x40 // version 4
	h[8] = h[8]&0x3f | 0x80 // RFC 4122 variant
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
	mac := func(port byte) string {
		return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", byte(seed), byte(i>>16), byte(i>>8), byte(i), port)
	}
	return &underlayv1.MachineIdentity{Uuid: uuid, Macs: []string{mac(0), mac(1)}}
}

// Connected is the number of agents with a live session.
func (f *Fleet) Connected() int { return int(f.connected.Load()) }

// States returns the session state of every agent.
func (f *Fleet) States() []State {
	out := make([]State, len(f.Agents))
	for i, a := range f.Agents {
		a.mu.Lock()
		out[i] = State{MachineID: a.machineID, Node: a.node, Up: a.node != "", UpSince: a.upSince}
		a.mu.Unlock()
	}
	return out
}

func (a *Agent) nextServer() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.servers[a.next%len(a.servers)]
	a.next++
	return s
}

func (a *Agent) getCert() *tls.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cert
}

// MachineID is the ID the cluster gave the agent ("" before enrollment).
func (a *Agent) MachineID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.machineID
}

func (f *Fleet) setUp(a *Agent, node string) {
	a.mu.Lock()
	a.node, a.upSince = node, time.Now()
	a.mu.Unlock()
	f.connected.Add(1)
}

func (f *Fleet) setDown(a *Agent) {
	a.mu.Lock()
	a.node = ""
	a.mu.Unlock()
	f.connected.Add(-1)
}

// retryable reports whether an enrollment error may go away on retry.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument:
		return false
	}
	return !errors.Is(err, ErrPin)
}

// Enroll makes agent a's key and CSR and enrolls it with the token, trying
// its servers in turn with backoff until it succeeds or ctx ends.
func (f *Fleet) Enroll(ctx context.Context, a *Agent) error {
	_, keyPEM, csr, err := newCSR()
	if err != nil {
		return err
	}
	req := &underlayv1.EnrollRequest{
		Token:     f.cfg.Token,
		CsrPem:    csr,
		Identity:  a.Identity,
		Hostname:  fmt.Sprintf("sim-%05d", a.Index),
		Inventory: inventory(a.Index),
	}
	bo := newBackoff(f.cfg.BackoffBase, f.cfg.BackoffMax)
	for {
		start := time.Now()
		resp, caPEM, err := f.enrollOnce(ctx, a.nextServer(), req)
		if err == nil {
			f.EnrollLatency.Add(time.Since(start))
			cert, err := mtls.KeyPair(resp.GetCertPem(), keyPEM, caPEM)
			if err != nil {
				return fmt.Errorf("enroll agent %d: certificate: %w", a.Index, err)
			}
			a.mu.Lock()
			a.machineID, a.cert = resp.GetMachineId(), cert
			a.mu.Unlock()
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("enroll agent %d: %w", a.Index, err)
		}
		f.EnrollRetries.Add(1)
		f.noteRetry(err)
		f.cfg.Log.Warn("enroll retry", "agent", a.Index, "err", err)
		if err := sleep(ctx, bo.next()); err != nil {
			return err
		}
	}
}

func newCSR() (key any, keyPEM, csr []byte, err error) {
	k, keyPEM, err := mtls.NewKey()
	if err != nil {
		return nil, nil, nil, err
	}
	csr, err = mtls.NewCSR(k, mtls.Identity{Kind: mtls.KindMachine, Name: "pending"}, nil, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	return k, keyPEM, csr, nil
}

func inventory(i int) *underlayv1.Inventory {
	return &underlayv1.Inventory{Hostname: fmt.Sprintf("sim-%05d", i), Os: "linux", Arch: "amd64", BootMode: "uefi"}
}

// EnrollAndRun enrolls every agent of the fleet, concurrency at a time,
// with enrollCtx, and starts each agent's session (bound to runCtx and
// counted in running) as soon as it has its certificate, as a booting fleet
// would. failed is called, from several goroutines, with each enrollment's
// error. It returns when every enrollment has ended.
func (f *Fleet) EnrollAndRun(enrollCtx, runCtx context.Context, concurrency int, running *sync.WaitGroup, failed func(error)) {
	work := make(chan *Agent)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				if err := f.Enroll(enrollCtx, a); err != nil {
					failed(err)
					continue
				}
				running.Add(1)
				go func() { defer running.Done(); f.Run(runCtx, a) }()
			}
		}()
	}
	for _, a := range f.Agents {
		work <- a
	}
	close(work)
	wg.Wait()
}

// enrollOnce fetches the CA from addr (checking the pin, as the real agent
// does with NodeService.Info) and enrolls over the same connection.
func (f *Fleet) enrollOnce(ctx context.Context, addr string, req *underlayv1.EnrollRequest) (*underlayv1.EnrollResponse, []byte, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(mtls.PinnedConfig(f.cfg.Fingerprint, nil, nil))))
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, f.cfg.CallTimeout)
	defer cancel()
	info, err := underlayv1.NewNodeServiceClient(conn).Info(ctx, &underlayv1.InfoRequest{})
	if err != nil {
		return nil, nil, fmt.Errorf("info %s: %w", addr, err)
	}
	if err := checkPin(info.GetCaPem(), f.cfg.Fingerprint); err != nil {
		return nil, nil, err
	}
	resp, err := underlayv1.NewAgentServiceClient(conn).Enroll(ctx, req)
	if err != nil {
		return nil, nil, fmt.Errorf("enroll at %s: %w", addr, err)
	}
	return resp, info.GetCaPem(), nil
}

func checkPin(caPEM []byte, fingerprint string) error {
	fp, err := mtls.NormalizeFingerprint(fingerprint)
	if err != nil {
		return err
	}
	certs, err := mtls.ParseCertsPEM(caPEM)
	if err != nil {
		return fmt.Errorf("ca bundle: %w", err)
	}
	for _, c := range certs {
		if c.IsCA && mtls.Fingerprint(c) == fp {
			return nil
		}
	}
	return fmt.Errorf("pin %s: %w", fp, ErrPin)
}

// Run keeps a session open for agent a until ctx ends, moving to the next
// server with full-jitter backoff whenever a session ends.
func (f *Fleet) Run(ctx context.Context, a *Agent) {
	bo := newBackoff(f.cfg.BackoffBase, f.cfg.BackoffMax)
	for ctx.Err() == nil {
		addr := a.nextServer()
		start := time.Now()
		err := f.session(ctx, a, addr)
		if ctx.Err() != nil {
			return
		}
		f.SessionFailures.Add(1)
		if time.Since(start) >= f.cfg.Healthy {
			bo.reset()
		}
		wait := bo.next()
		f.cfg.Log.Debug("session ended", "agent", a.Index, "server", addr, "err", err, "retry_in", wait)
		if sleep(ctx, wait) != nil {
			return
		}
	}
}

type sessionStream = grpc.BidiStreamingClient[underlayv1.AgentMessage, underlayv1.ServerMessage]

// session runs one session with addr until it fails or ctx ends.
func (f *Fleet) session(ctx context.Context, a *Agent, addr string) error {
	tlsCfg := mtls.PinnedConfig(f.cfg.Fingerprint, a.getCert, time.Now)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	setup := time.AfterFunc(f.cfg.CallTimeout, cancel)
	stream, err := underlayv1.NewAgentServiceClient(conn).Session(ctx)
	if err != nil {
		setup.Stop()
		return fmt.Errorf("open session: %w", err)
	}
	err = stream.Send(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_Hello{Hello: &underlayv1.Hello{
		AgentVersion: "loadgen", InventoryHash: fmt.Sprintf("sim-%d", a.Index),
	}}})
	if err != nil && !errors.Is(err, io.EOF) {
		setup.Stop()
		return fmt.Errorf("send hello: %w", err)
	}
	first, err := stream.Recv()
	if !setup.Stop() {
		return fmt.Errorf("no welcome within %s: %w", f.cfg.CallTimeout, ErrProtocol)
	}
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	w := first.GetWelcome()
	if w == nil {
		return fmt.Errorf("first server message is not a welcome: %w", ErrProtocol)
	}
	interval := time.Duration(w.GetHeartbeatSeconds()) * time.Second
	if interval <= 0 {
		interval = 10 * time.Second
	}
	f.SessionsOpened.Add(1)
	f.setUp(a, w.GetNodeId())
	defer f.setDown(a)
	return f.loop(ctx, a, stream, interval)
}

// loop heartbeats every interval and records the round trip of each ack.
func (f *Fleet) loop(ctx context.Context, a *Agent, stream sessionStream, interval time.Duration) error {
	msgs := make(chan *underlayv1.ServerMessage)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	// The first heartbeat goes out at a random point of the first
	// interval, so that a fleet started at once does not beat in step.
	hb := time.NewTimer(time.Duration(rand.Int64N(int64(interval))))
	defer hb.Stop()
	sent := map[uint64]time.Time{}
	lastRecv := time.Now()
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return fmt.Errorf("session: %w", err)
		case m := <-msgs:
			lastRecv = time.Now()
			switch {
			case m.GetHeartbeatAck() != nil:
				s := m.GetHeartbeatAck().GetSeq()
				if t, ok := sent[s]; ok {
					f.RTT.Add(lastRecv.Sub(t))
					delete(sent, s)
				}
			case m.GetInventoryRequest() != nil:
				if err := stream.Send(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_Inventory{Inventory: inventory(a.Index)}}); err != nil {
					return fmt.Errorf("send inventory: %w", err)
				}
			case m.GetRunStep() != nil:
				if err := f.runStep(ctx, stream, m.GetRunStep(), lastRecv); err != nil {
					return err
				}
			case m.GetJobAck() != nil:
				f.JobsAcked.Add(1)
			}
		case <-hb.C:
			hb.Reset(interval)
			if silent := time.Since(lastRecv); silent > 3*interval {
				return fmt.Errorf("nothing received for %s: %w", silent.Round(time.Millisecond), ErrSilent)
			}
			seq++
			now := time.Now()
			sent[seq] = now // the session ends before this map grows past 3 beats
			f.Heartbeats.Add(1)
			err := stream.Send(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_Heartbeat{Heartbeat: &underlayv1.Heartbeat{
				Seq: seq, Sent: timestamppb.New(now),
			}}})
			if err != nil {
				return fmt.Errorf("send heartbeat: %w", err)
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// runStep answers a job like a real agent running a short task: started,
// then (after TaskTime) a successful result. The first receipt of each job
// ID is kept for the dispatch latency.
func (f *Fleet) runStep(ctx context.Context, stream sessionStream, run *underlayv1.RunStep, at time.Time) error {
	f.jobMu.Lock()
	if f.jobsReceived == nil {
		f.jobsReceived = map[string]time.Time{}
	}
	if _, seen := f.jobsReceived[run.GetJobId()]; !seen {
		f.jobsReceived[run.GetJobId()] = at
	}
	f.jobMu.Unlock()
	f.JobsStarted.Add(1)
	if err := stream.Send(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_JobStarted{JobStarted: &underlayv1.JobStartedEvent{
		JobId: run.GetJobId(), At: timestamppb.New(at),
	}}}); err != nil {
		return fmt.Errorf("send job started: %w", err)
	}
	if f.cfg.TaskTime > 0 {
		if err := sleep(ctx, f.cfg.TaskTime); err != nil {
			return err
		}
	}
	if err := stream.Send(&underlayv1.AgentMessage{Msg: &underlayv1.AgentMessage_JobResult{JobResult: &underlayv1.JobResult{
		JobId: run.GetJobId(), Success: true, Finished: timestamppb.Now(),
	}}}); err != nil {
		return fmt.Errorf("send job result: %w", err)
	}
	return nil
}

// JobsReceived returns when each job was first received.
func (f *Fleet) JobsReceived() map[string]time.Time {
	f.jobMu.Lock()
	defer f.jobMu.Unlock()
	return maps.Clone(f.jobsReceived)
}
