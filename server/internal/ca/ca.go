// Package ca is the cluster certificate authority. A root (10 years) and an
// intermediate (5 years) are created at bootstrap and replicated through Raft
// as a CAState, so that any node can sign after a failover. Leaf certificates
// are signed by the intermediate and carry a SPIFFE identity
// (spiffe://underlay/<kind>/<name>) as their only URI SAN.
//
// Signing trusts the caller, not the CSR: the CSR proves possession of a key,
// and the caller decides the identity and names that go into the certificate.
package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/x509util"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Sentinel errors.
var (
	// ErrBadCSR means the CSR is not valid PEM/DER, its signature does not
	// verify, or its key is not acceptable.
	ErrBadCSR = errors.New("bad certificate request")
	// ErrBadRequest means a sign request is incomplete or invalid.
	ErrBadRequest = errors.New("bad sign request")
	// ErrBadState means a CAState is incomplete or inconsistent.
	ErrBadState = errors.New("bad ca state")
)

const (
	rootLifetimeYears         = 10
	intermediateLifetimeYears = 5
	// clockSkew is how far NotBefore is backdated.
	clockSkew = time.Minute
)

// CA signs leaf certificates with the cluster intermediate.
type CA struct {
	clusterID   string
	root        *x509.Certificate
	rootPEM     []byte
	inter       *x509.Certificate
	interPEM    []byte
	interKey    crypto.Signer
	fingerprint string
	roots       *x509.CertPool
}

// New creates the root and intermediate CA of a new cluster. The certificate
// names include clusterID. All CAState fields are filled, including the root
// fingerprint.
func New(clusterID string, now time.Time) (*underlayv1.CAState, error) {
	if clusterID == "" {
		return nil, fmt.Errorf("new ca: empty cluster id: %w", ErrBadRequest)
	}
	if now.IsZero() {
		return nil, fmt.Errorf("new ca: zero time: %w", ErrBadRequest)
	}
	rootKey, rootKeyPEM, err := mtls.NewKey()
	if err != nil {
		return nil, fmt.Errorf("new ca: root key: %w", err)
	}
	rootName := x509util.Name{Organization: []string{"Underlay"}, CommonName: "Underlay Root CA " + clusterID}
	rootTmpl := (&x509util.Certificate{
		Subject:          x509util.Subject(rootName),
		NotBefore:        now.Add(-clockSkew).UTC(),
		NotAfter:         now.AddDate(rootLifetimeYears, 0, 0).UTC(),
		KeyUsage:         x509util.KeyUsage(x509.KeyUsageCertSign | x509.KeyUsageCRLSign),
		BasicConstraints: &x509util.BasicConstraints{IsCA: true, MaxPathLen: 1},
		PublicKey:        rootKey.Public(),
	}).GetCertificate()
	root, err := x509util.CreateCertificate(rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("new ca: root certificate: %w", err)
	}

	interKey, interKeyPEM, err := mtls.NewKey()
	if err != nil {
		return nil, fmt.Errorf("new ca: intermediate key: %w", err)
	}
	interName := x509util.Name{Organization: []string{"Underlay"}, CommonName: "Underlay Intermediate CA " + clusterID}
	interTmpl := (&x509util.Certificate{
		Subject:          x509util.Subject(interName),
		NotBefore:        now.Add(-clockSkew).UTC(),
		NotAfter:         now.AddDate(intermediateLifetimeYears, 0, 0).UTC(),
		KeyUsage:         x509util.KeyUsage(x509.KeyUsageCertSign | x509.KeyUsageCRLSign),
		BasicConstraints: &x509util.BasicConstraints{IsCA: true, MaxPathLen: 0},
		PublicKey:        interKey.Public(),
	}).GetCertificate()
	inter, err := x509util.CreateCertificate(interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("new ca: intermediate certificate: %w", err)
	}
	return &underlayv1.CAState{
		ClusterId:           clusterID,
		RootCertPem:         mtls.EncodeCertsPEM(root),
		RootKeyPem:          rootKeyPEM,
		IntermediateCertPem: mtls.EncodeCertsPEM(inter),
		IntermediateKeyPem:  interKeyPEM,
		Fingerprint:         mtls.Fingerprint(root),
	}, nil
}

// Load parses and checks a CAState: both certificates are CAs, the root is
// self-signed, the intermediate is signed by the root, each key matches its
// certificate, and the fingerprint (if set) is the root's.
func Load(st *underlayv1.CAState) (*CA, error) {
	if st == nil {
		return nil, fmt.Errorf("load ca: nil state: %w", ErrBadState)
	}
	root, rootKey, err := parsePair("root", st.GetRootCertPem(), st.GetRootKeyPem())
	if err != nil {
		return nil, err
	}
	inter, interKey, err := parsePair("intermediate", st.GetIntermediateCertPem(), st.GetIntermediateKeyPem())
	if err != nil {
		return nil, err
	}
	_ = rootKey // checked against the root certificate; only the intermediate signs leaves
	if err := root.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("load ca: root is not self-signed: %w: %w", err, ErrBadState)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("load ca: intermediate not signed by root: %w: %w", err, ErrBadState)
	}
	fp := mtls.Fingerprint(root)
	if st.GetFingerprint() != "" {
		want, err := mtls.NormalizeFingerprint(st.GetFingerprint())
		if err != nil || want != fp {
			return nil, fmt.Errorf("load ca: state fingerprint %q is not the root's %s: %w", st.GetFingerprint(), fp, ErrBadState)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	return &CA{
		clusterID:   st.GetClusterId(),
		root:        root,
		rootPEM:     mtls.EncodeCertsPEM(root),
		inter:       inter,
		interPEM:    mtls.EncodeCertsPEM(inter),
		interKey:    interKey,
		fingerprint: fp,
		roots:       roots,
	}, nil
}

func parsePair(what string, certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	certs, err := mtls.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("load ca: %s certificate: %w: %w", what, err, ErrBadState)
	}
	if len(certs) != 1 {
		return nil, nil, fmt.Errorf("load ca: %s: want 1 certificate, got %d: %w", what, len(certs), ErrBadState)
	}
	c := certs[0]
	if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("load ca: %s certificate is not a ca: %w", what, ErrBadState)
	}
	key, err := mtls.ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("load ca: %s key: %w: %w", what, err, ErrBadState)
	}
	if err := keyutil.VerifyPair(c.PublicKey, key); err != nil {
		return nil, nil, fmt.Errorf("load ca: %s key does not match its certificate: %w", what, ErrBadState)
	}
	return c, key, nil
}

// ClusterID returns the cluster the CA was created for.
func (c *CA) ClusterID() string { return c.clusterID }

// RootPEM returns the root certificate as PEM (the ca.pem of clients).
func (c *CA) RootPEM() []byte { return append([]byte(nil), c.rootPEM...) }

// Fingerprint returns the lowercase hex SHA-256 of the root certificate.
func (c *CA) Fingerprint() string { return c.fingerprint }

// Roots returns a pool holding the root certificate.
func (c *CA) Roots() *x509.CertPool { return c.roots.Clone() }

// Root returns the root certificate.
func (c *CA) Root() *x509.Certificate { return c.root }

// Intermediate returns the intermediate certificate that signs leaves.
func (c *CA) Intermediate() *x509.Certificate { return c.inter }
