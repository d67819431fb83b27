package main

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"underlay.dev/pkg/mtls"
	"underlay.dev/pkg/mtls/mtlstest"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// fakeCall is one request the fake cluster received.
type fakeCall struct {
	Method string
	Req    proto.Message
}

// fakeReply is what the fake answers to one call.
type fakeReply struct {
	msg proto.Message
	err error
}

// replyOK answers with m; replyErr with a status error.
func replyOK(m ...proto.Message) []fakeReply {
	rs := make([]fakeReply, 0, len(m))
	for _, x := range m {
		rs = append(rs, fakeReply{msg: x})
	}
	return rs
}

func replyErr(c codes.Code, msg string) []fakeReply {
	return []fakeReply{{err: status.Error(c, msg)}}
}

// fakeCluster serves fake ProvisionService and PowerService over real mTLS
// on loopback, records every request and answers with canned replies. It
// writes operator credentials the CLI can use.
type fakeCluster struct {
	addr  string
	creds string

	mu      sync.Mutex
	calls   []fakeCall
	replies map[string][]fakeReply
	// chunks are what Logs sends; with follow it then blocks until the
	// client goes away.
	chunks []*underlayv1.LogChunk
}

func newFakeCluster(t testing.TB) *fakeCluster {
	t.Helper()
	now := time.Now()
	ca := mtlstest.NewCA(t, now)
	srvCert := ca.KeyPair(t, mtlstest.Leaf{
		ID:        mtls.Identity{Kind: mtls.KindNode, Name: "n1"},
		IPs:       []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
	})
	certPEM, keyPEM := ca.Issue(t, mtlstest.Leaf{
		ID:        mtls.Identity{Kind: mtls.KindOperator, Name: "admin"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
	})
	f := &fakeCluster{creds: t.TempDir()}
	if err := mtls.WriteCreds(f.creds, ca.RootPEM, certPEM, keyPEM); err != nil {
		t.Fatalf("write creds: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f.addr = lis.Addr().String()
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(
		mtls.ServerConfig(func() *tls.Certificate { return srvCert }, ca.Roots))))
	underlayv1.RegisterProvisionServiceServer(gs, &fakeProvision{f: f})
	underlayv1.RegisterPowerServiceServer(gs, &fakePower{f: f})
	go gs.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)
	return f
}

// reset forgets the calls and sets the replies for the next command.
func (f *fakeCluster) reset(replies map[string][]fakeReply, chunks []*underlayv1.LogChunk) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
	f.replies = replies
	f.chunks = chunks
}

func (f *fakeCluster) record(method string, req proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fakeCall{Method: method, Req: req})
}

func (f *fakeCluster) recorded() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

// next records the call and returns its reply: replies are used in order
// and the last one repeats.
func (f *fakeCluster) next(method string, req proto.Message) fakeReply {
	f.record(method, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.replies[method]
	if len(rs) == 0 {
		return fakeReply{err: status.Errorf(codes.Unimplemented, "fake: no reply for %s", method)}
	}
	r := rs[0]
	if len(rs) > 1 {
		f.replies[method] = rs[1:]
	}
	return r
}

func answer[T proto.Message](f *fakeCluster, method string, req proto.Message) (T, error) {
	var zero T
	r := f.next(method, req)
	if r.err != nil {
		return zero, r.err
	}
	return r.msg.(T), nil
}

// run executes the CLI against the fake and returns its exit code and
// output.
func (f *fakeCluster) run(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	a, stdout, stderr := testApp(t, map[string]string{envServer: f.addr, envCreds: f.creds}, t.TempDir())
	code := a.execute(context.Background(), args)
	return code, stdout.String(), stderr.String()
}

// checkCalls compares the requests the fake received with want.
func (f *fakeCluster) checkCalls(t testing.TB, want []fakeCall) {
	t.Helper()
	if diff := cmp.Diff(want, f.recorded(), protocmp.Transform()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

type fakeProvision struct {
	underlayv1.UnimplementedProvisionServiceServer
	f *fakeCluster
}

func (p *fakeProvision) Apply(_ context.Context, r *underlayv1.ApplyDefinitionsRequest) (*underlayv1.ApplyDefinitionsResponse, error) {
	return answer[*underlayv1.ApplyDefinitionsResponse](p.f, "Apply", r)
}

func (p *fakeProvision) ListDefinitions(_ context.Context, r *underlayv1.ListDefinitionsRequest) (*underlayv1.ListDefinitionsResponse, error) {
	return answer[*underlayv1.ListDefinitionsResponse](p.f, "ListDefinitions", r)
}

func (p *fakeProvision) GetDefinition(_ context.Context, r *underlayv1.GetDefinitionRequest) (*underlayv1.Definition, error) {
	return answer[*underlayv1.Definition](p.f, "GetDefinition", r)
}

func (p *fakeProvision) DeleteDefinition(_ context.Context, r *underlayv1.DeleteDefinitionRequest) (*underlayv1.DeleteDefinitionResponse, error) {
	return answer[*underlayv1.DeleteDefinitionResponse](p.f, "DeleteDefinition", r)
}

func (p *fakeProvision) SetParams(_ context.Context, r *underlayv1.SetParamsRequest) (*underlayv1.SetParamsResponse, error) {
	return answer[*underlayv1.SetParamsResponse](p.f, "SetParams", r)
}

func (p *fakeProvision) ShowParams(_ context.Context, r *underlayv1.ShowParamsRequest) (*underlayv1.ShowParamsResponse, error) {
	return answer[*underlayv1.ShowParamsResponse](p.f, "ShowParams", r)
}

func (p *fakeProvision) Assign(_ context.Context, r *underlayv1.AssignRequest) (*underlayv1.Plan, error) {
	return answer[*underlayv1.Plan](p.f, "Assign", r)
}

func (p *fakeProvision) GetPlan(_ context.Context, r *underlayv1.GetPlanRequest) (*underlayv1.Plan, error) {
	return answer[*underlayv1.Plan](p.f, "GetPlan", r)
}

func (p *fakeProvision) Retry(_ context.Context, r *underlayv1.MachinePlanRequest) (*underlayv1.Plan, error) {
	return answer[*underlayv1.Plan](p.f, "Retry", r)
}

func (p *fakeProvision) Cancel(_ context.Context, r *underlayv1.MachinePlanRequest) (*underlayv1.Plan, error) {
	return answer[*underlayv1.Plan](p.f, "Cancel", r)
}

func (p *fakeProvision) Redeploy(_ context.Context, r *underlayv1.MachinePlanRequest) (*underlayv1.Plan, error) {
	return answer[*underlayv1.Plan](p.f, "Redeploy", r)
}

func (p *fakeProvision) ListJobs(_ context.Context, r *underlayv1.ListJobsRequest) (*underlayv1.ListJobsResponse, error) {
	return answer[*underlayv1.ListJobsResponse](p.f, "ListJobs", r)
}

func (p *fakeProvision) ListRoleStatus(_ context.Context, r *underlayv1.ListRoleStatusRequest) (*underlayv1.ListRoleStatusResponse, error) {
	return answer[*underlayv1.ListRoleStatusResponse](p.f, "ListRoleStatus", r)
}

func (p *fakeProvision) ResumeRole(_ context.Context, r *underlayv1.ResumeRoleRequest) (*underlayv1.RoleStatus, error) {
	return answer[*underlayv1.RoleStatus](p.f, "ResumeRole", r)
}

// Logs answers with the error reply if there is one, else sends the
// chunks; with follow it then waits for the client to go away.
func (p *fakeProvision) Logs(r *underlayv1.LogsRequest, stream underlayv1.ProvisionService_LogsServer) error {
	p.f.record("Logs", r)
	p.f.mu.Lock()
	chunks := p.f.chunks
	var err error
	if rs := p.f.replies["Logs"]; len(rs) > 0 {
		err = rs[0].err
	}
	p.f.mu.Unlock()
	if err != nil {
		return err
	}
	for _, ch := range chunks {
		if err := stream.Send(ch); err != nil {
			return err
		}
	}
	if r.GetFollow() {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return nil
}

type fakePower struct {
	underlayv1.UnimplementedPowerServiceServer
	f *fakeCluster
}

func (p *fakePower) Power(_ context.Context, r *underlayv1.PowerRequest) (*underlayv1.PowerResponse, error) {
	return answer[*underlayv1.PowerResponse](p.f, "Power", r)
}

func (p *fakePower) PowerStatus(_ context.Context, r *underlayv1.PowerStatusRequest) (*underlayv1.PowerResponse, error) {
	return answer[*underlayv1.PowerResponse](p.f, "PowerStatus", r)
}

func (p *fakePower) Boot(_ context.Context, r *underlayv1.BootRequest) (*underlayv1.PowerResponse, error) {
	return answer[*underlayv1.PowerResponse](p.f, "Boot", r)
}

// cliCase is one CLI invocation against the fake cluster.
type cliCase struct {
	name       string
	args       []string
	replies    map[string][]fakeReply
	chunks     []*underlayv1.LogChunk
	wantCode   int
	wantCalls  []fakeCall
	wantStdout string // exact
	wantStderr string // a substring; empty means stderr must be empty
}

// runCases runs each case against f and checks the requests, exit code,
// stdout and stderr.
func runCases(t *testing.T, f *fakeCluster, tests []cliCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.reset(tt.replies, tt.chunks)
			code, stdout, stderr := f.run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			f.checkCalls(t, tt.wantCalls)
			if diff := cmp.Diff(tt.wantStdout, stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantStderr == "" && stderr != "":
				t.Errorf("stderr = %q, want empty", stderr)
			case !strings.Contains(stderr, tt.wantStderr):
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

// call builds an expected request.
func call(method string, req proto.Message) fakeCall { return fakeCall{Method: method, Req: req} }

// readOpts is the ReadOptions the CLI sends without --stale.
func readOpts() *underlayv1.ReadOptions { return &underlayv1.ReadOptions{} }
