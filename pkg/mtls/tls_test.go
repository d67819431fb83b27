package mtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/mtls"
	"underlay.dev/pkg/mtls/mtlstest"
)

var (
	node1    = mtls.Identity{Kind: mtls.KindNode, Name: "n1"}
	operator = mtls.Identity{Kind: mtls.KindOperator, Name: "alice"}
	machine  = mtls.Identity{Kind: mtls.KindMachine, Name: "m1"}
)

func static(c *tls.Certificate) func() *tls.Certificate {
	return func() *tls.Certificate { return c }
}

func TestMutualTLS(t *testing.T) {
	now := time.Now()
	ca := mtlstest.NewCA(t, now)
	other := mtlstest.NewCA(t, now)
	serverCert := ca.KeyPair(t, leafFor(node1, now))

	tests := []struct {
		name          string
		serverCert    *tls.Certificate
		clientCert    *tls.Certificate
		clientRoots   *mtlstest.CA
		wantClientErr error // nil: handshake must succeed on the client
		wantServerErr bool
		wantID        mtls.Identity
		wantIDErr     error
	}{
		{name: "operator", serverCert: serverCert, clientCert: ca.KeyPair(t, leafFor(operator, now)), clientRoots: ca, wantID: operator},
		{name: "machine", serverCert: serverCert, clientCert: ca.KeyPair(t, leafFor(machine, now)), clientRoots: ca, wantID: machine},
		{name: "node to node", serverCert: serverCert, clientCert: ca.KeyPair(t, leafFor(mtls.Identity{Kind: mtls.KindNode, Name: "n2"}, now)), clientRoots: ca, wantID: mtls.Identity{Kind: mtls.KindNode, Name: "n2"}},
		{name: "no client cert", serverCert: serverCert, clientRoots: ca, wantIDErr: mtls.ErrNoIdentity},
		{name: "client cert from other ca", serverCert: serverCert, clientCert: other.KeyPair(t, leafFor(operator, now)), clientRoots: ca, wantClientErr: errAny, wantServerErr: true},
		{name: "server from other ca", serverCert: other.KeyPair(t, leafFor(node1, now)), clientRoots: ca, wantClientErr: errAny, wantServerErr: true},
		{name: "server is not a node", serverCert: ca.KeyPair(t, mtlstest.Leaf{ID: operator, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), EKU: serverAuth()}), clientRoots: ca, wantClientErr: mtls.ErrWrongKind, wantServerErr: true},
		{name: "server without server auth", serverCert: ca.KeyPair(t, mtlstest.Leaf{ID: node1, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), EKU: clientAuth()}), clientRoots: ca, wantClientErr: errAny, wantServerErr: true},
		{name: "server cert expired", serverCert: ca.KeyPair(t, mtlstest.Leaf{ID: node1, NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}), clientRoots: ca, wantClientErr: errAny, wantServerErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mtlstest.Handshake(t,
				mtls.ServerConfig(static(tt.serverCert), ca.Roots),
				mtls.ClientConfig(static(tt.clientCert), tt.clientRoots.Roots))
			checkErr(t, "client", r.ClientErr, tt.wantClientErr)
			if (r.ServerErr != nil) != tt.wantServerErr {
				t.Fatalf("server error = %v, want error: %v", r.ServerErr, tt.wantServerErr)
			}
			if tt.wantServerErr {
				return
			}
			if r.Server.Version != tls.VersionTLS13 {
				t.Errorf("version = %x, want TLS 1.3", r.Server.Version)
			}
			id, leaf, err := mtls.PeerIdentity(r.Server)
			if !errors.Is(err, tt.wantIDErr) {
				t.Fatalf("PeerIdentity error = %v, want %v", err, tt.wantIDErr)
			}
			if diff := cmp.Diff(tt.wantID, id); diff != "" {
				t.Errorf("PeerIdentity mismatch (-want +got):\n%s", diff)
			}
			if err == nil && leaf.Subject.CommonName != tt.wantID.Name {
				t.Errorf("PeerIdentity leaf CN = %q, want %q", leaf.Subject.CommonName, tt.wantID.Name)
			}
		})
	}
}

// errAny stands for "some error" in tables.
var errAny = errors.New("any error")

func checkErr(tb testing.TB, side string, got, want error) {
	tb.Helper()
	switch {
	case want == nil && got != nil:
		tb.Fatalf("%s error = %v, want none", side, got)
	case want == errAny && got == nil:
		tb.Fatalf("%s error = nil, want an error", side)
	case want != nil && want != errAny && !errors.Is(got, want):
		tb.Fatalf("%s error = %v, want %v", side, got, want)
	}
}

func serverAuth() []x509.ExtKeyUsage { return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }
func clientAuth() []x509.ExtKeyUsage { return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }

func TestPeerIdentityUnverified(t *testing.T) {
	now := time.Now()
	ca := mtlstest.NewCA(t, now)
	kp := ca.KeyPair(t, leafFor(operator, now))
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{kp.Leaf}}
	if _, _, err := mtls.PeerIdentity(cs); !errors.Is(err, mtls.ErrUnverified) {
		t.Errorf("PeerIdentity(unverified) error = %v, want %v", err, mtls.ErrUnverified)
	}
}

// TestServerRotation checks that the server picks up a new certificate from
// its CertStore without a new tls.Config.
func TestServerRotation(t *testing.T) {
	now := time.Now()
	ca := mtlstest.NewCA(t, now)
	first := ca.KeyPair(t, leafFor(node1, now))
	second := ca.KeyPair(t, leafFor(node1, now))
	store := mtls.NewCertStore(first)
	serverCfg := mtls.ServerConfig(store.Get, ca.Roots)
	clientCfg := mtls.ClientConfig(nil, ca.Roots)

	var got []string
	for _, next := range []*tls.Certificate{second, nil} {
		r := mtlstest.Handshake(t, serverCfg, clientCfg)
		if r.ClientErr != nil || r.ServerErr != nil {
			t.Fatalf("handshake: client %v, server %v", r.ClientErr, r.ServerErr)
		}
		got = append(got, r.Client.PeerCertificates[0].SerialNumber.String())
		if next != nil {
			store.Set(next)
		}
	}
	want := []string{first.Leaf.SerialNumber.String(), second.Leaf.SerialNumber.String()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("served serials mismatch (-want +got):\n%s", diff)
	}
}

func TestPinnedConfig(t *testing.T) {
	now := time.Now()
	ca := mtlstest.NewCA(t, now)
	other := mtlstest.NewCA(t, now)
	full := ca.KeyPair(t, leafFor(node1, now))
	// A chain without the root: a pinning client cannot find its anchor.
	noRoot := &tls.Certificate{Certificate: full.Certificate[:2], PrivateKey: full.PrivateKey, Leaf: full.Leaf}
	y2000 := func() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }
	fp := mtls.Fingerprint(ca.Root)
	interFP := mtls.Fingerprint(ca.Intermediate)

	tests := []struct {
		name        string
		serverCert  *tls.Certificate
		fingerprint string
		clientCert  *tls.Certificate
		now         func() time.Time
		clientTime  func() time.Time
		wantErr     error
		wantID      *mtls.Identity
	}{
		{name: "right fingerprint", serverCert: full, fingerprint: fp, now: time.Now},
		{name: "fingerprint in another form", serverCert: full, fingerprint: "SHA256:" + upperColons(fp), now: time.Now},
		{name: "wrong fingerprint", serverCert: full, fingerprint: mtls.Fingerprint(other.Root), now: time.Now, wantErr: mtls.ErrFingerprint},
		{name: "malformed fingerprint", serverCert: full, fingerprint: "abc", now: time.Now, wantErr: mtls.ErrFingerprint},
		{name: "leaf fingerprint is not a ca", serverCert: full, fingerprint: mtls.Fingerprint(full.Leaf), now: time.Now, wantErr: mtls.ErrFingerprint},
		{name: "intermediate pin also anchors", serverCert: full, fingerprint: interFP, now: time.Now},
		{name: "root not served", serverCert: noRoot, fingerprint: fp, now: time.Now, wantErr: mtls.ErrFingerprint},
		{name: "server from other ca with our root appended", serverCert: withExtra(other.KeyPair(t, leafFor(node1, now)), ca.Root.Raw), fingerprint: fp, now: time.Now, wantErr: errAny},
		{name: "client clock in 2000 checked", serverCert: full, fingerprint: fp, now: y2000, clientTime: y2000, wantErr: errAny},
		{name: "client clock in 2000 ignored", serverCert: full, fingerprint: fp, now: nil, clientTime: y2000},
		{name: "with client cert", serverCert: full, fingerprint: fp, clientCert: ca.KeyPair(t, leafFor(machine, now)), wantID: &machine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientCfg := mtls.PinnedConfig(tt.fingerprint, static(tt.clientCert), tt.now)
			clientCfg.Time = tt.clientTime
			r := mtlstest.Handshake(t, mtls.ServerConfig(static(tt.serverCert), ca.Roots), clientCfg)
			checkErr(t, "client", r.ClientErr, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			if r.ServerErr != nil {
				t.Fatalf("server error = %v", r.ServerErr)
			}
			if r.Client.Version != tls.VersionTLS13 {
				t.Errorf("version = %x, want TLS 1.3", r.Client.Version)
			}
			id, _, err := mtls.PeerIdentity(r.Server)
			if tt.wantID == nil {
				if !errors.Is(err, mtls.ErrNoIdentity) {
					t.Errorf("PeerIdentity error = %v, want %v", err, mtls.ErrNoIdentity)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(*tt.wantID, id); diff != "" {
				t.Errorf("PeerIdentity mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func withExtra(c *tls.Certificate, der ...[]byte) *tls.Certificate {
	cp := *c
	cp.Certificate = append(append([][]byte{}, c.Certificate...), der...)
	return &cp
}

func upperColons(fp string) string {
	var parts []string
	for i := 0; i < len(fp); i += 2 {
		parts = append(parts, strings.ToUpper(fp[i:i+2]))
	}
	return strings.Join(parts, ":")
}
