// Package mtlstest provides a throwaway two-level certificate authority for
// tests of packages that use mtls but cannot reach the server's CA.
package mtlstest

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"go.step.sm/crypto/x509util"

	"underlay.dev/pkg/mtls"
)

// CA is a root and an intermediate, valid from now-1h to now+10y.
type CA struct {
	Root         *x509.Certificate
	Intermediate *x509.Certificate
	RootPEM      []byte
	Roots        *x509.CertPool

	interKey crypto.Signer
}

// NewCA creates a CA whose certificates are valid around now.
func NewCA(tb testing.TB, now time.Time) *CA {
	tb.Helper()
	rootKey, _, err := mtls.NewKey()
	if err != nil {
		tb.Fatalf("root key: %v", err)
	}
	rootTmpl := (&x509util.Certificate{
		Subject:          x509util.Subject{CommonName: "test root"},
		NotBefore:        now.Add(-time.Hour),
		NotAfter:         now.AddDate(10, 0, 0),
		KeyUsage:         x509util.KeyUsage(x509.KeyUsageCertSign | x509.KeyUsageCRLSign),
		BasicConstraints: &x509util.BasicConstraints{IsCA: true, MaxPathLen: 1},
	}).GetCertificate()
	root, err := x509util.CreateCertificate(rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		tb.Fatalf("root certificate: %v", err)
	}
	interKey, _, err := mtls.NewKey()
	if err != nil {
		tb.Fatalf("intermediate key: %v", err)
	}
	interTmpl := (&x509util.Certificate{
		Subject:          x509util.Subject{CommonName: "test intermediate"},
		NotBefore:        now.Add(-time.Hour),
		NotAfter:         now.AddDate(5, 0, 0),
		KeyUsage:         x509util.KeyUsage(x509.KeyUsageCertSign | x509.KeyUsageCRLSign),
		BasicConstraints: &x509util.BasicConstraints{IsCA: true, MaxPathLen: 0},
	}).GetCertificate()
	inter, err := x509util.CreateCertificate(interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		tb.Fatalf("intermediate certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &CA{Root: root, Intermediate: inter, RootPEM: mtls.EncodeCertsPEM(root), Roots: pool, interKey: interKey}
}

// Leaf describes a certificate to issue.
type Leaf struct {
	ID        mtls.Identity
	DNSNames  []string
	IPs       []net.IP
	NotBefore time.Time
	NotAfter  time.Time
	// EKU defaults to server+client auth for nodes and client auth otherwise.
	EKU []x509.ExtKeyUsage
}

// Issue returns the PEM of leaf + intermediate and the PEM of a new key.
func (c *CA) Issue(tb testing.TB, l Leaf) (certPEM, keyPEM []byte) {
	tb.Helper()
	key, keyPEM, err := mtls.NewKey()
	if err != nil {
		tb.Fatalf("leaf key: %v", err)
	}
	eku := l.EKU
	if eku == nil {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if l.ID.Kind == mtls.KindNode {
			eku = append(eku, x509.ExtKeyUsageServerAuth)
		}
	}
	tmpl := (&x509util.Certificate{
		Subject:          x509util.Subject{CommonName: l.ID.Name},
		DNSNames:         l.DNSNames,
		IPAddresses:      l.IPs,
		URIs:             x509util.MultiURL{l.ID.URI()},
		NotBefore:        l.NotBefore,
		NotAfter:         l.NotAfter,
		KeyUsage:         x509util.KeyUsage(x509.KeyUsageDigitalSignature),
		ExtKeyUsage:      eku,
		BasicConstraints: &x509util.BasicConstraints{},
	}).GetCertificate()
	leaf, err := x509util.CreateCertificate(tmpl, c.Intermediate, key.Public(), c.interKey)
	if err != nil {
		tb.Fatalf("leaf certificate: %v", err)
	}
	return mtls.EncodeCertsPEM(leaf, c.Intermediate), keyPEM
}

// KeyPair issues a leaf and returns it as a tls.Certificate whose chain is
// leaf + intermediate + root.
func (c *CA) KeyPair(tb testing.TB, l Leaf) *tls.Certificate {
	tb.Helper()
	certPEM, keyPEM := c.Issue(tb, l)
	kp, err := mtls.KeyPair(certPEM, keyPEM, c.RootPEM)
	if err != nil {
		tb.Fatalf("key pair: %v", err)
	}
	return kp
}
