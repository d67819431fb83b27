package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	neturl "net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// testCA is a throwaway root CA that issues leaf certificates.
type testCA struct {
	cert  *x509.Certificate
	key   any
	certP []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, _, err := mtls.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certP: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf for id and returns its cert and key PEM.
func (ca *testCA) issue(t testing.TB, id mtls.Identity, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, keyPEM, err := mtls.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: id.Name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*neturl.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM
}

// writeOperator writes a credentials directory for operator name.
func (ca *testCA) writeOperator(t testing.TB, name string, serial int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	certPEM, keyPEM := ca.issue(t, mtls.Identity{Kind: mtls.KindOperator, Name: name}, serial)
	if err := mtls.WriteCreds(dir, ca.certP, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fakeAPI is a tiny in-memory operator API: tokens and whoami.
type fakeAPI struct {
	underlayv1.UnimplementedTokenServiceServer
	underlayv1.UnimplementedAccessServiceServer

	ca     *testCA
	mu     sync.Mutex
	tokens []*underlayv1.Token
}

// CreateOperator signs the CSR's public key for the requested name, as the
// real CA does (the CSR's own SANs are ignored).
func (f *fakeAPI) CreateOperator(ctx context.Context, r *underlayv1.CreateOperatorRequest) (*underlayv1.CreateOperatorResponse, error) {
	blk, _ := pem.Decode(r.GetCsrPem())
	if blk == nil {
		return nil, status.Error(codes.InvalidArgument, "no csr")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		return nil, status.Error(codes.InvalidArgument, "bad csr")
	}
	id := mtls.Identity{Kind: mtls.KindOperator, Name: r.GetName()}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: id.Name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs: []*neturl.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca.cert, csr.PublicKey, f.ca.key)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &underlayv1.CreateOperatorResponse{
		Operator: &underlayv1.Operator{Name: r.GetName(), Role: r.GetRole()},
		CertPem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		CaPem:    f.ca.certP,
	}, nil
}

// fakeMachines serves MachineService.Watch from a fixed list of events.
type fakeMachines struct {
	underlayv1.UnimplementedMachineServiceServer
	events []*underlayv1.Event
}

// caller returns the verified operator identity of the RPC's client.
func caller(ctx context.Context) (mtls.Identity, *x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return mtls.Identity{}, nil, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return mtls.Identity{}, nil, status.Error(codes.Unauthenticated, "not tls")
	}
	id, cert, err := mtls.PeerIdentity(ti.State)
	if err != nil {
		return mtls.Identity{}, nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return id, cert, nil
}

func (f *fakeAPI) WhoAmI(ctx context.Context, _ *underlayv1.WhoAmIRequest) (*underlayv1.WhoAmIResponse, error) {
	id, cert, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	role := underlayv1.OperatorRole_OPERATOR_ROLE_ADMIN
	if id.Name == "ro" {
		role = underlayv1.OperatorRole_OPERATOR_ROLE_READONLY
	}
	return &underlayv1.WhoAmIResponse{Identity: id.String(), Kind: id.Kind, Name: id.Name, Role: role,
		Serial: cert.SerialNumber.String()}, nil
}

func (f *fakeAPI) Create(ctx context.Context, r *underlayv1.CreateTokenRequest) (*underlayv1.CreateTokenResponse, error) {
	id, _, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if id.Name == "ro" {
		return nil, status.Errorf(codes.PermissionDenied, "operator %q is read-only", id.Name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &underlayv1.Token{Id: fmt.Sprintf("t-%d", len(f.tokens)+1), Kind: r.GetKind(), UsesAllowed: r.GetUses(),
		Description: r.GetDescription(), CreatedBy: id.String()}
	if r.GetTtlSeconds() > 0 {
		t.Expires = timestamppb.New(time.Now().Add(time.Duration(r.GetTtlSeconds()) * time.Second))
	}
	f.tokens = append(f.tokens, t)
	return &underlayv1.CreateTokenResponse{Token: t, Secret: "secret-" + t.GetId()}, nil
}

func (f *fakeAPI) List(ctx context.Context, _ *underlayv1.ListTokensRequest) (*underlayv1.ListTokensResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &underlayv1.ListTokensResponse{Tokens: f.tokens}, nil
}

func (f *fakeMachines) Watch(r *underlayv1.WatchRequest, s grpc.ServerStreamingServer[underlayv1.Event]) error {
	for _, e := range f.events {
		if r.GetMachineId() != "" && e.GetMachineId() != r.GetMachineId() {
			continue
		}
		if err := s.Send(e); err != nil {
			return err
		}
	}
	return nil // the stream ends; a real server would keep it open
}

// startFake serves api with real mTLS on 127.0.0.1:0 and returns its address.
func startFake(t testing.TB, ca *testCA, api *fakeAPI, machines *fakeMachines) string {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, mtls.Identity{Kind: mtls.KindNode, Name: "n1"}, 100)
	cert, err := mtls.KeyPair(certPEM, keyPEM, ca.certP)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(mtls.ServerConfig(func() *tls.Certificate { return cert }, roots))))
	underlayv1.RegisterTokenServiceServer(srv, api)
	underlayv1.RegisterAccessServiceServer(srv, api)
	underlayv1.RegisterMachineServiceServer(srv, machines)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func TestEndToEnd(t *testing.T) {
	ca := newTestCA(t)
	machines := &fakeMachines{events: []*underlayv1.Event{
		{Index: 1, Kind: "machine.enrolled", MachineId: "m-1"},
		{Index: 2, Kind: "machine.enrolled", MachineId: "m-2"},
		{Index: 3, Kind: "machine.state", MachineId: "m-1", Message: "discovered -> ready"},
	}}
	live := startFake(t, ca, &fakeAPI{ca: ca}, machines)
	dead := deadAddr(t)
	admin := ca.writeOperator(t, "alice", 7)
	ro := ca.writeOperator(t, "ro", 8)
	otherCA := newTestCA(t).writeOperator(t, "mallory", 9)
	bobDir := filepath.Join(t.TempDir(), "bob-creds")

	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStdout string // exact, unless wantIn is set
		wantIn     []string
		wantStderr string // a prefix of stderr
		stderrIn   string // a substring of stderr
	}{
		{
			name: "whoami fails over from a dead server", env: map[string]string{envServer: dead + "," + live},
			args: []string{"--creds", admin, "whoami", "-o", "json"}, wantCode: exitOK,
			wantStdout: "{\n  \"identity\": \"spiffe://underlay/operator/alice\",\n  \"kind\": \"operator\",\n  \"name\": \"alice\",\n  \"role\": \"OPERATOR_ROLE_ADMIN\",\n  \"serial\": \"7\"\n}\n",
		},
		{
			name: "token create prints the secret once with usage", env: map[string]string{envServer: live, envCreds: admin},
			args:     []string{"token", "create", "--kind", "discovery", "--uses", "5", "--ttl", "0"},
			wantCode: exitOK,
			wantIn: []string{"Created discovery token t-1 (5 uses, never expires).", "secret-t-1",
				"underlay.servers=" + live + " underlay.fp=" + mtls.Fingerprint(ca.cert) + " underlay.token=secret-t-1"},
		},
		{
			name: "token ls shows the token", env: map[string]string{envServer: live, envCreds: admin},
			args: []string{"token", "ls"}, wantCode: exitOK,
			wantIn: []string{"t-1  discovery  active  0/5   -", "spiffe://underlay/operator/alice"},
		},
		{
			name: "read-only operator is refused", env: map[string]string{envServer: live},
			args: []string{"--creds", ro, "token", "create", "--kind", "agent"}, wantCode: exitError,
			wantStderr: "error: permission denied: operator \"ro\" is read-only\n",
		},
		{
			name: "flag server beats env", env: map[string]string{envServer: dead, envCreds: admin},
			args: []string{"--server", live, "whoami"}, wantCode: exitOK,
			wantIn: []string{"Identity:  spiffe://underlay/operator/alice", "Role:      admin", "Serial:    7"},
		},
		{
			name: "unavailable names the address", env: map[string]string{envServer: dead, envCreds: admin},
			args: []string{"whoami"}, wantCode: exitError,
			wantStderr: "error: unavailable: no server answered (tried " + dead + "; set the servers with --server or UNDERLAY_SERVER)",
		},
		{
			name: "a server from another CA is refused", env: map[string]string{envServer: live, envCreds: otherCA},
			args: []string{"whoami"}, wantCode: exitError,
			wantStderr: "error: unavailable: no server answered (tried " + live,
			stderrIn:   "verify server",
		},
		{
			name: "operator create writes working credentials", env: map[string]string{envServer: live, envCreds: admin},
			args: []string{"operator", "create", "bob", "--role", "readonly", "--out", bobDir}, wantCode: exitOK,
			wantIn: []string{"Operator bob (readonly) created.", "Credentials written to " + bobDir},
		},
		{
			name: "the new operator's credentials work", env: map[string]string{envServer: live, envCreds: bobDir},
			args: []string{"whoami"}, wantCode: exitOK,
			wantIn: []string{"Identity:  spiffe://underlay/operator/bob", "Serial:    42"},
		},
		{
			name: "operator create never overwrites a key", env: map[string]string{envServer: live, envCreds: admin},
			args: []string{"operator", "create", "bob", "--role", "admin", "--out", bobDir}, wantCode: exitError,
			wantStderr: "error: credentials already exist in " + bobDir,
		},
		{
			name: "watch prints one json object per event", env: map[string]string{envServer: live, envCreds: admin},
			args: []string{"watch", "--machine", "m-1", "-o", "json"}, wantCode: exitOK,
			wantStdout: `{"index":"1","kind":"machine.enrolled","machine_id":"m-1"}` + "\n" +
				`{"index":"3","kind":"machine.state","machine_id":"m-1","message":"discovered -> ready"}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, stdout, stderr := testApp(t, tt.env, t.TempDir())
			code := a.execute(context.Background(), tt.args)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr: %s", code, tt.wantCode, stderr)
			}
			if tt.wantIn == nil && tt.wantStderr == "" {
				if diff := cmp.Diff(tt.wantStdout, stdout.String()); diff != "" {
					t.Errorf("stdout mismatch (-want +got):\n%s", diff)
				}
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout does not contain %q:\n%s", s, stdout)
				}
			}
			if !strings.Contains(stderr.String(), tt.stderrIn) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.stderrIn)
			}
			if !strings.HasPrefix(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want prefix %q", stderr, tt.wantStderr)
			}
		})
	}
}
