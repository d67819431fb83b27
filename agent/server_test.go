package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// testCA is a throwaway root CA.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
	fp   string
}

func newTestCA(tb testing.TB) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: mtls.EncodeCertsPEM(cert), fp: mtls.Fingerprint(cert)}
}

var serials = struct {
	sync.Mutex
	n int64
}{n: 100}

// issue signs a leaf for pub with the given identity and lifetime.
func (ca *testCA) issue(tb testing.TB, pub crypto.PublicKey, id mtls.Identity, life time.Duration, usage x509.ExtKeyUsage) *x509.Certificate {
	tb.Helper()
	serials.Lock()
	serials.n++
	sn := big.NewInt(serials.n)
	serials.Unlock()
	u, err := url.Parse(id.String())
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: id.Name},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(life),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		URIs:         []*url.URL{u},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// session is what the test cluster saw of one agent session.
type session struct {
	node   string
	serial string
	hello  *underlayv1.Hello
}

// testCluster is an in-process stand-in for the management nodes: real TLS,
// real gRPC, AgentService and NodeService with scripted answers.
type testCluster struct {
	tb        testing.TB
	ca        *testCA
	life      time.Duration
	machineID string

	mu          sync.Mutex
	enrollErr   error
	enrolls     []*underlayv1.EnrollRequest
	infos       int
	renews      int
	revoked     map[string]bool
	sessions    []session
	heartbeats  int
	inventories []*underlayv1.Inventory
	kick        chan struct{}
	nodes       map[string]*testNode
}

type testNode struct {
	id   string
	addr string
	srv  *grpc.Server
}

func newTestCluster(tb testing.TB, ids ...string) *testCluster {
	tb.Helper()
	c := &testCluster{
		tb:        tb,
		ca:        newTestCA(tb),
		life:      time.Hour,
		machineID: "m-0123456789ab",
		revoked:   map[string]bool{},
		kick:      make(chan struct{}),
		nodes:     map[string]*testNode{},
	}
	for _, id := range ids {
		c.start(tb, id)
	}
	return c
}

func (c *testCluster) start(tb testing.TB, id string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	leaf := c.ca.issue(tb, key.Public(), mtls.Identity{Kind: mtls.KindNode, Name: id}, 24*time.Hour, x509.ExtKeyUsageServerAuth)
	cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw, c.ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
	roots := x509.NewCertPool()
	roots.AddCert(c.ca.cert)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(mtls.ServerConfig(func() *tls.Certificate { return cert }, roots))))
	underlayv1.RegisterNodeServiceServer(srv, &nodeSvc{c: c, id: id})
	underlayv1.RegisterAgentServiceServer(srv, &agentSvc{c: c, id: id})
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	c.mu.Lock()
	c.nodes[id] = &testNode{id: id, addr: lis.Addr().String(), srv: srv}
	c.mu.Unlock()
}

// addrs returns the node addresses in the order of ids.
func (c *testCluster) addrs(ids ...string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range ids {
		out = append(out, c.nodes[id].addr)
	}
	return out
}

// stop kills a node: listener and connections.
func (c *testCluster) stop(id string) {
	c.mu.Lock()
	n := c.nodes[id]
	c.mu.Unlock()
	n.srv.Stop()
}

// kickAll ends every open session.
func (c *testCluster) kickAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.kick)
	c.kick = make(chan struct{})
}

func (c *testCluster) revoke(serial string) {
	c.mu.Lock()
	c.revoked[serial] = true
	c.mu.Unlock()
	c.kickAll()
}

func (c *testCluster) snapshot() (enrolls, renews, heartbeats int, sessions []session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.enrolls), c.renews, c.heartbeats, append([]session(nil), c.sessions...)
}

func (c *testCluster) sign(tb testing.TB, csrPEM []byte) ([]byte, error) {
	block, rest := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" || len(strings.TrimSpace(string(rest))) > 0 {
		return nil, status.Error(codes.InvalidArgument, "bad csr")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		return nil, status.Error(codes.InvalidArgument, "bad csr")
	}
	leaf := c.ca.issue(tb, csr.PublicKey, mtls.Identity{Kind: mtls.KindMachine, Name: c.machineID}, c.life, x509.ExtKeyUsageClientAuth)
	return mtls.EncodeCertsPEM(leaf), nil
}

// peerSerial returns the serial of the verified client certificate.
func peerSerial(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", fmt.Errorf("no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", fmt.Errorf("no tls")
	}
	id, leaf, err := mtls.PeerIdentity(ti.State)
	if err != nil {
		return "", err
	}
	if id.Kind != mtls.KindMachine {
		return "", mtls.ErrWrongKind
	}
	return leaf.SerialNumber.String(), nil
}

type nodeSvc struct {
	underlayv1.UnimplementedNodeServiceServer
	c  *testCluster
	id string
}

func (s *nodeSvc) Info(context.Context, *underlayv1.InfoRequest) (*underlayv1.InfoResponse, error) {
	s.c.mu.Lock()
	s.c.infos++
	s.c.mu.Unlock()
	return &underlayv1.InfoResponse{
		ClusterId:   "c-test",
		CaPem:       s.c.ca.pem,
		Fingerprint: s.c.ca.fp,
		Time:        timestamppb.Now(),
		NodeId:      s.id,
	}, nil
}

type agentSvc struct {
	underlayv1.UnimplementedAgentServiceServer
	c  *testCluster
	id string
}

func (s *agentSvc) Enroll(_ context.Context, req *underlayv1.EnrollRequest) (*underlayv1.EnrollResponse, error) {
	s.c.mu.Lock()
	s.c.enrolls = append(s.c.enrolls, proto.Clone(req).(*underlayv1.EnrollRequest))
	refuse := s.c.enrollErr
	s.c.mu.Unlock()
	if refuse != nil {
		return nil, refuse
	}
	cert, err := s.c.sign(s.c.tb, req.GetCsrPem())
	if err != nil {
		return nil, err
	}
	return &underlayv1.EnrollResponse{MachineId: s.c.machineID, CertPem: cert, CaPem: s.c.ca.pem}, nil
}

func (s *agentSvc) Renew(ctx context.Context, req *underlayv1.RenewRequest) (*underlayv1.RenewResponse, error) {
	if _, err := peerSerial(ctx); err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	cert, err := s.c.sign(s.c.tb, req.GetCsrPem())
	if err != nil {
		return nil, err
	}
	s.c.mu.Lock()
	s.c.renews++
	s.c.mu.Unlock()
	return &underlayv1.RenewResponse{CertPem: cert}, nil
}

func (s *agentSvc) Session(stream underlayv1.AgentService_SessionServer) error {
	serial, err := peerSerial(stream.Context())
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	s.c.mu.Lock()
	revoked := s.c.revoked[serial]
	kick := s.c.kick
	s.c.mu.Unlock()
	if revoked {
		return status.Error(codes.Unauthenticated, "certificate revoked")
	}
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	if m.GetHello() == nil {
		return status.Error(codes.InvalidArgument, "want hello")
	}
	err = stream.Send(&underlayv1.ServerMessage{Msg: &underlayv1.ServerMessage_Welcome{Welcome: &underlayv1.Welcome{
		NodeId: s.id, HeartbeatSeconds: 1, Time: timestamppb.Now(),
	}}})
	if err != nil {
		return err
	}
	s.c.mu.Lock()
	s.c.sessions = append(s.c.sessions, session{node: s.id, serial: serial, hello: m.GetHello()})
	s.c.mu.Unlock()
	msgs := make(chan *underlayv1.AgentMessage)
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
			case <-stream.Context().Done():
				return
			}
		}
	}()
	asked := false
	for {
		select {
		case <-kick:
			s.c.mu.Lock()
			revoked := s.c.revoked[serial]
			s.c.mu.Unlock()
			if revoked {
				return status.Error(codes.Unauthenticated, "certificate revoked")
			}
			return status.Error(codes.Unavailable, "node going away")
		case err := <-errc:
			return err
		case m := <-msgs:
			var reply *underlayv1.ServerMessage
			switch {
			case m.GetHeartbeat() != nil:
				s.c.mu.Lock()
				s.c.heartbeats++
				s.c.mu.Unlock()
				reply = &underlayv1.ServerMessage{Msg: &underlayv1.ServerMessage_HeartbeatAck{HeartbeatAck: &underlayv1.HeartbeatAck{
					Seq: m.GetHeartbeat().GetSeq(), Sent: m.GetHeartbeat().GetSent(),
				}}}
			case m.GetInventory() != nil:
				s.c.mu.Lock()
				s.c.inventories = append(s.c.inventories, m.GetInventory())
				s.c.mu.Unlock()
			}
			if reply != nil {
				if err := stream.Send(reply); err != nil {
					return err
				}
			}
			if !asked {
				asked = true
				err := stream.Send(&underlayv1.ServerMessage{Msg: &underlayv1.ServerMessage_InventoryRequest{InventoryRequest: &underlayv1.InventoryRequest{}}})
				if err != nil {
					return err
				}
			}
		}
	}
}

// fakeInventory returns a fixed inventory.
type fakeInventory struct {
	inv *underlayv1.Inventory
}

func (f *fakeInventory) Collect(context.Context) (*underlayv1.Inventory, error) {
	return proto.Clone(f.inv).(*underlayv1.Inventory), nil
}

func (f *fakeInventory) Identity(inv *underlayv1.Inventory) *underlayv1.MachineIdentity {
	return &underlayv1.MachineIdentity{Uuid: "uuid-of-" + inv.GetHostname()}
}

func (f *fakeInventory) Hash(inv *underlayv1.Inventory) string {
	return "hash-of-" + inv.GetHostname()
}

// logRecord is one captured log line.
type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// logSink captures log records for assertions.
type logSink struct {
	mu      sync.Mutex
	records []logRecord
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *logSink) WithGroup(string) slog.Handler            { return s }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
	s.mu.Lock()
	s.records = append(s.records, rec)
	s.mu.Unlock()
	return nil
}

// find returns the records with the message.
func (s *logSink) find(msg string) []logRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logRecord
	for _, r := range s.records {
		if r.Msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls cond until it holds; the deadline only bounds a hang.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
