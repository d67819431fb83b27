// Package mtls holds the mutual-TLS pieces shared by the server, the CLI and
// the agent: SPIFFE-style identities carried in certificates, key and CSR
// generation, certificate fingerprints, credential directories, and TLS 1.3
// configurations for servers, clients and fingerprint-pinned bootstrap
// clients.
//
// It must not import anything from underlay.dev/server.
package mtls

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these where it
// applies, so callers can test with errors.Is.
var (
	// ErrNoIdentity means a certificate or connection carries no identity.
	ErrNoIdentity = errors.New("no identity")
	// ErrBadIdentity means an identity string or URI SAN is malformed.
	ErrBadIdentity = errors.New("bad identity")
	// ErrFingerprint means a fingerprint is malformed or does not match.
	ErrFingerprint = errors.New("fingerprint mismatch")
	// ErrUnverified means a peer certificate was presented but not verified.
	ErrUnverified = errors.New("peer certificate not verified")
	// ErrBadPEM means PEM data could not be decoded as expected.
	ErrBadPEM = errors.New("bad pem")
	// ErrBadCreds means a credentials directory is incomplete or inconsistent.
	ErrBadCreds = errors.New("bad credentials")
	// ErrWrongKind means a peer identity is of a kind not allowed here.
	ErrWrongKind = errors.New("wrong identity kind")
)
