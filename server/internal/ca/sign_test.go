package ca_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/mtls"
	"underlay.dev/pkg/mtls/mtlstest"
	"underlay.dev/server/internal/ca"
)

func csrFor(tb testing.TB, id mtls.Identity, dns []string, ips []net.IP) []byte {
	tb.Helper()
	key, _, err := mtls.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	csr, err := mtls.NewCSR(key, id, dns, ips)
	if err != nil {
		tb.Fatal(err)
	}
	return csr
}

func parseLeaf(tb testing.TB, certPEM []byte) (leaf *x509.Certificate, chain []*x509.Certificate) {
	tb.Helper()
	certs, err := mtls.ParseCertsPEM(certPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return certs[0], certs[1:]
}

type leafSummary struct {
	CN        string
	URIs      []string
	DNS       []string
	IPs       []string
	EKU       []x509.ExtKeyUsage
	KeyUsage  x509.KeyUsage
	IsCA      bool
	NotBefore time.Time
	NotAfter  time.Time
	ChainLen  int
}

func summarize(leaf *x509.Certificate, chain []*x509.Certificate) leafSummary {
	s := leafSummary{CN: leaf.Subject.CommonName, DNS: leaf.DNSNames, EKU: leaf.ExtKeyUsage,
		KeyUsage: leaf.KeyUsage, IsCA: leaf.IsCA, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, ChainLen: len(chain)}
	for _, u := range leaf.URIs {
		s.URIs = append(s.URIs, u.String())
	}
	for _, ip := range leaf.IPAddresses {
		s.IPs = append(s.IPs, ip.String())
	}
	return s
}

func TestSign(t *testing.T) {
	_, c := newCA(t)
	now := t0.Add(time.Hour)
	attacker := mtls.Identity{Kind: mtls.KindNode, Name: "evil"}
	tests := []struct {
		name string
		req  ca.SignRequest
		want leafSummary
	}{
		{
			name: "node gets server and client auth and requested SANs",
			req: ca.SignRequest{
				CSRPEM:   csrFor(t, mtls.Identity{Kind: mtls.KindNode, Name: "n1"}, nil, nil),
				Identity: mtls.Identity{Kind: mtls.KindNode, Name: "n1"},
				DNSNames: []string{"n1.underlay.test"}, IPs: []net.IP{net.ParseIP("192.0.2.1")},
				TTL: 24 * time.Hour, Now: now,
			},
			want: leafSummary{CN: "n1", URIs: []string{"spiffe://underlay/node/n1"}, DNS: []string{"n1.underlay.test"}, IPs: []string{"192.0.2.1"},
				EKU:      []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
				KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour), ChainLen: 1},
		},
		{
			name: "operator gets client auth only",
			req: ca.SignRequest{
				CSRPEM:   csrFor(t, mtls.Identity{Kind: mtls.KindOperator, Name: "alice"}, nil, nil),
				Identity: mtls.Identity{Kind: mtls.KindOperator, Name: "alice"}, TTL: 8 * time.Hour, Now: now,
			},
			want: leafSummary{CN: "alice", URIs: []string{"spiffe://underlay/operator/alice"},
				EKU:      []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
				KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(8 * time.Hour), ChainLen: 1},
		},
		{
			name: "csr subject and SANs are ignored",
			req: ca.SignRequest{
				CSRPEM:   csrFor(t, attacker, []string{"evil.example", "n1.underlay.test"}, []net.IP{net.ParseIP("10.6.6.6")}),
				Identity: mtls.Identity{Kind: mtls.KindMachine, Name: "m1"}, TTL: time.Hour, Now: now,
			},
			want: leafSummary{CN: "m1", URIs: []string{"spiffe://underlay/machine/m1"},
				EKU:      []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
				KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), ChainLen: 1},
		},
		{
			name: "ttl capped at intermediate expiry",
			req: ca.SignRequest{
				CSRPEM:   csrFor(t, mtls.Identity{Kind: mtls.KindMachine, Name: "m2"}, nil, nil),
				Identity: mtls.Identity{Kind: mtls.KindMachine, Name: "m2"}, TTL: 20 * 365 * 24 * time.Hour, Now: now,
			},
			want: leafSummary{CN: "m2", URIs: []string{"spiffe://underlay/machine/m2"},
				EKU:      []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
				KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: now.Add(-time.Minute), NotAfter: t0.AddDate(5, 0, 0), ChainLen: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Sign(tt.req)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			leaf, chain := parseLeaf(t, s.CertPEM)
			if diff := cmp.Diff(tt.want, summarize(leaf, chain)); diff != "" {
				t.Errorf("leaf mismatch (-want +got):\n%s", diff)
			}
			if !chain[0].Equal(c.Intermediate()) {
				t.Errorf("chain[1] is not the intermediate")
			}
			gotSigned := ca.Signed{Serial: s.Serial, NotBefore: s.NotBefore, NotAfter: s.NotAfter, Subject: s.Subject}
			wantSigned := ca.Signed{Serial: leaf.SerialNumber.String(), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Subject: tt.req.Identity.String()}
			if diff := cmp.Diff(wantSigned, gotSigned); diff != "" {
				t.Errorf("Signed mismatch (-want +got):\n%s", diff)
			}
			if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %s is not a positive 128-bit number", leaf.SerialNumber)
			}
			inter := x509.NewCertPool()
			for _, ic := range chain {
				inter.AddCert(ic)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.Roots(), Intermediates: inter, CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("leaf does not verify against Roots(): %v", err)
			}
			// Outside [NotBefore, NotAfter] it must not verify: the TTL is real.
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.Roots(), Intermediates: inter, CurrentTime: leaf.NotAfter.Add(time.Second),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
				t.Errorf("leaf verifies after NotAfter")
			}
		})
	}
}

func TestSignSerialsDiffer(t *testing.T) {
	_, c := newCA(t)
	id := mtls.Identity{Kind: mtls.KindMachine, Name: "m1"}
	seen := map[string]bool{}
	for range 5 {
		s, err := c.Sign(ca.SignRequest{CSRPEM: csrFor(t, id, nil, nil), Identity: id, TTL: time.Hour, Now: t0})
		if err != nil {
			t.Fatal(err)
		}
		if seen[s.Serial] {
			t.Fatalf("serial %s issued twice", s.Serial)
		}
		seen[s.Serial] = true
	}
}

func badSignatureCSR(tb testing.TB) []byte {
	tb.Helper()
	good := csrFor(tb, mtls.Identity{Kind: mtls.KindMachine, Name: "m1"}, nil, nil)
	block, _ := pem.Decode(good)
	der := append([]byte{}, block.Bytes...)
	// The signature is the last element; flipping its last byte breaks it
	// while the DER stays parseable.
	der[len(der)-1] ^= 0xff
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func smallCurveCSR(tb testing.TB) []byte {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestSignErrors(t *testing.T) {
	st, c := newCA(t)
	id := mtls.Identity{Kind: mtls.KindMachine, Name: "m1"}
	good := csrFor(t, id, nil, nil)
	ok := func(r ca.SignRequest) ca.SignRequest {
		if r.CSRPEM == nil {
			r.CSRPEM = good
		}
		if r.Identity == (mtls.Identity{}) {
			r.Identity = id
		}
		if r.TTL == 0 {
			r.TTL = time.Hour
		}
		if r.Now.IsZero() {
			r.Now = t0
		}
		return r
	}
	tests := []struct {
		name    string
		req     ca.SignRequest
		wantErr error
	}{
		{"garbage", ok(ca.SignRequest{CSRPEM: []byte("garbage")}), ca.ErrBadCSR},
		{"garbage der", ok(ca.SignRequest{CSRPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0x03, 1, 2, 3}})}), ca.ErrBadCSR},
		{"bad signature", ok(ca.SignRequest{CSRPEM: badSignatureCSR(t)}), ca.ErrBadCSR},
		{"certificate instead of csr", ok(ca.SignRequest{CSRPEM: st.RootCertPem}), ca.ErrBadCSR},
		{"trailing data", ok(ca.SignRequest{CSRPEM: append(append([]byte{}, good...), "x"...)}), ca.ErrBadCSR},
		{"weak curve", ok(ca.SignRequest{CSRPEM: smallCurveCSR(t)}), ca.ErrBadCSR},
		{"bad identity kind", ok(ca.SignRequest{Identity: mtls.Identity{Kind: "admin", Name: "x"}}), ca.ErrBadRequest},
		{"bad identity name", ok(ca.SignRequest{Identity: mtls.Identity{Kind: mtls.KindNode, Name: "a/b"}}), ca.ErrBadRequest},
		{"negative ttl", ok(ca.SignRequest{TTL: -time.Hour}), ca.ErrBadRequest},
		{"before the ca existed", ok(ca.SignRequest{Now: t0.AddDate(-1, 0, 0)}), ca.ErrBadRequest},
		{"ip dns name", ok(ca.SignRequest{DNSNames: []string{"10.0.0.1"}}), ca.ErrBadRequest},
		{"empty dns name", ok(ca.SignRequest{DNSNames: []string{""}}), ca.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Sign(tt.req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Sign error = %v, want %v", err, tt.wantErr)
			}
			if s != nil {
				t.Errorf("Sign returned a certificate with an error")
			}
		})
	}
	// Zero TTL too (ok() would have filled it in).
	if _, err := c.Sign(ca.SignRequest{CSRPEM: good, Identity: id, Now: t0}); !errors.Is(err, ca.ErrBadRequest) {
		t.Errorf("Sign(zero ttl) error = %v, want %v", err, ca.ErrBadRequest)
	}
}

func TestIssueLocal(t *testing.T) {
	_, c := newCA(t)
	id := mtls.Identity{Kind: mtls.KindNode, Name: "n1"}
	certPEM, keyPEM, s, err := c.IssueLocal(id, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, 24*time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	// mtls.KeyPair checks that the key matches and that the chain verifies.
	kp, err := mtls.KeyPair(certPEM, keyPEM, c.RootPEM())
	if err != nil {
		t.Fatalf("KeyPair: %v", err)
	}
	want := leafSummary{CN: "n1", URIs: []string{"spiffe://underlay/node/n1"}, DNS: []string{"localhost"}, IPs: []string{"127.0.0.1"},
		EKU:      []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(24 * time.Hour), ChainLen: 1}
	leaf, chain := parseLeaf(t, certPEM)
	if diff := cmp.Diff(want, summarize(leaf, chain)); diff != "" {
		t.Errorf("leaf mismatch (-want +got):\n%s", diff)
	}
	if !kp.Leaf.Equal(leaf) || s.Serial != leaf.SerialNumber.String() {
		t.Errorf("IssueLocal results disagree: serial %s, leaf serial %s", s.Serial, leaf.SerialNumber)
	}
	if _, _, _, err := c.IssueLocal(mtls.Identity{Kind: "x", Name: "y"}, nil, nil, time.Hour, t0); !errors.Is(err, ca.ErrBadRequest) {
		t.Errorf("IssueLocal(bad identity) error = %v, want %v", err, ca.ErrBadRequest)
	}
}

// TestHandshake runs TLS 1.3 between a node certificate and an operator
// certificate issued by the CA, with the shared mtls configurations.
func TestHandshake(t *testing.T) {
	now := time.Now()
	st, err := ca.New("hs", now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Load(st)
	if err != nil {
		t.Fatal(err)
	}
	keyPair := func(id mtls.Identity, dns []string, ips []net.IP) *tls.Certificate {
		t.Helper()
		certPEM, keyPEM, _, err := c.IssueLocal(id, dns, ips, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := mtls.KeyPair(certPEM, keyPEM, c.RootPEM())
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	node := keyPair(mtls.Identity{Kind: mtls.KindNode, Name: "n1"}, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	op := keyPair(mtls.Identity{Kind: mtls.KindOperator, Name: "admin"}, nil, nil)
	nodeGet := func() *tls.Certificate { return node }
	opGet := func() *tls.Certificate { return op }

	tests := []struct {
		name   string
		client *tls.Config
	}{
		{"roots", mtls.ClientConfig(opGet, c.Roots())},
		{"pinned", mtls.PinnedConfig(c.Fingerprint(), opGet, time.Now)},
		{"pinned wrong clock", mtls.PinnedConfig("sha256:"+c.Fingerprint(), opGet, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mtlstest.Handshake(t, mtls.ServerConfig(nodeGet, c.Roots()), tt.client)
			if r.ClientErr != nil || r.ServerErr != nil {
				t.Fatalf("handshake: client %v, server %v", r.ClientErr, r.ServerErr)
			}
			if r.Server.Version != tls.VersionTLS13 {
				t.Errorf("version = %x, want TLS 1.3", r.Server.Version)
			}
			id, _, err := mtls.PeerIdentity(r.Server)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(mtls.Identity{Kind: mtls.KindOperator, Name: "admin"}, id); diff != "" {
				t.Errorf("server saw identity mismatch (-want +got):\n%s", diff)
			}
			serverID, err := mtls.IdentityFromCert(r.Client.PeerCertificates[0])
			if err != nil || serverID.Kind != mtls.KindNode {
				t.Errorf("client saw server identity %v, %v; want a node", serverID, err)
			}
			if n := len(r.Client.PeerCertificates); n != 3 {
				t.Errorf("server sent %d certificates, want leaf + intermediate + root", n)
			}
		})
	}
}
