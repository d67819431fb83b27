package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

var errNoServerCert = errors.New("no server certificate loaded")

// ServerConfig returns a TLS 1.3 server configuration. Client certificates
// are optional but, when given, must verify against roots (for client auth);
// use PeerIdentity to read who the client is. getCert is called on every
// handshake, so certificates can rotate without a restart; it should return a
// chain of leaf + intermediate + root (see KeyPair and LoadCreds) so that a
// client pinning the root fingerprint can see the root.
func ServerConfig(getCert func() *tls.Certificate, roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  roots,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c := getCert()
			if c == nil {
				return nil, errNoServerCert
			}
			return c, nil
		},
	}
}

// ClientConfig returns a TLS 1.3 client configuration that presents the
// certificate from getCert (which may be nil or return nil for none) and
// verifies the server SPIFFE-style: its chain must verify against roots for
// server auth and its leaf must carry a node identity. Host names and IPs are
// not checked, so one configuration can dial any node.
func ClientConfig(getCert func() *tls.Certificate, roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		InsecureSkipVerify:   true, // verification is done in VerifyConnection
		GetClientCertificate: clientCert(getCert),
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs.PeerCertificates, roots, time.Now())
		},
	}
}

// PinnedConfig returns a TLS 1.3 client configuration for a client that has
// no CA yet (node join, agent enrollment). The server is accepted only if its
// presented chain contains a CA certificate whose Fingerprint equals
// fingerprint (any form NormalizeFingerprint accepts), the leaf verifies up to
// that CA for server auth, and the leaf carries a node identity. now is the
// clock for validity checks; if now is nil validity periods are not checked,
// since the pin is the trust anchor. getCert may be nil.
func PinnedConfig(fingerprint string, getCert func() *tls.Certificate, now func() time.Time) *tls.Config {
	fp, fpErr := NormalizeFingerprint(fingerprint)
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		InsecureSkipVerify:   true, // verification is done in VerifyConnection
		GetClientCertificate: clientCert(getCert),
		VerifyConnection: func(cs tls.ConnectionState) error {
			if fpErr != nil {
				return fpErr
			}
			return verifyPinned(cs.PeerCertificates, fp, now)
		},
	}
}

func clientCert(getCert func() *tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if getCert != nil {
			if c := getCert(); c != nil {
				return c, nil
			}
		}
		return &tls.Certificate{}, nil // no certificate
	}
}

func verifyServer(certs []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	if len(certs) == 0 {
		return fmt.Errorf("verify server: no certificate: %w", ErrNoIdentity)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	return verifyNodeLeaf(certs[0], roots, inter, now)
}

func verifyNodeLeaf(leaf *x509.Certificate, roots, inter *x509.CertPool, now time.Time) error {
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		CurrentTime:   now,
	})
	if err != nil {
		return fmt.Errorf("verify server: %w", err)
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return fmt.Errorf("verify server: %w", err)
	}
	if id.Kind != KindNode {
		return fmt.Errorf("verify server: %s is not a node: %w", id, ErrWrongKind)
	}
	return nil
}

func verifyPinned(certs []*x509.Certificate, fp string, now func() time.Time) error {
	if len(certs) == 0 {
		return fmt.Errorf("verify server: no certificate: %w", ErrNoIdentity)
	}
	var pinned *x509.Certificate
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		if pinned == nil && c.IsCA && Fingerprint(c) == fp {
			pinned = c
			continue
		}
		inter.AddCert(c)
	}
	if pinned == nil {
		return fmt.Errorf("verify server: no ca with fingerprint %s in chain: %w", fp, ErrFingerprint)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pinned)
	at := overlapTime(certs)
	if now != nil {
		at = now()
	}
	return verifyNodeLeaf(certs[0], roots, inter, at)
}

// PeerIdentity returns the verified client identity of a server-side
// connection (VerifiedChains[0][0]). It returns ErrNoIdentity if the peer
// sent no certificate and ErrUnverified if the certificate was not verified.
func PeerIdentity(cs tls.ConnectionState) (Identity, *x509.Certificate, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, nil, ErrNoIdentity
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, nil, ErrUnverified
	}
	leaf := cs.VerifiedChains[0][0]
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return Identity{}, nil, fmt.Errorf("peer identity: %w", err)
	}
	return id, leaf, nil
}
