package ca_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/ca"
)

var t0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

func newCA(tb testing.TB) (*underlayv1.CAState, *ca.CA) {
	tb.Helper()
	st, err := ca.New("c-42", t0)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	c, err := ca.Load(st)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return st, c
}

func TestNewLoad(t *testing.T) {
	st, c := newCA(t)

	// The state survives the Raft log: marshal, unmarshal, load again.
	b, err := proto.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var st2 underlayv1.CAState
	if err := proto.Unmarshal(b, &st2); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, &st2, protocmp.Transform()); diff != "" {
		t.Fatalf("state round trip mismatch (-want +got):\n%s", diff)
	}
	c2, err := ca.Load(&st2)
	if err != nil {
		t.Fatalf("Load after round trip: %v", err)
	}

	root, err := mtls.ParseCertsPEM(st.RootCertPem)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := mtls.ParseCertsPEM(st.IntermediateCertPem)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(root[0].Raw)
	type summary struct {
		ClusterID, Fingerprint, LoadedFingerprint, ReloadedFingerprint string
		RootPEMEqual                                                   bool
		RootCN, InterCN                                                string
		RootNotAfter, InterNotAfter, RootNotBefore                     time.Time
		RootMaxPathLen, InterMaxPathLen                                int
		InterMaxPathLenZero                                            bool
	}
	got := summary{
		ClusterID:           c.ClusterID(),
		Fingerprint:         st.Fingerprint,
		LoadedFingerprint:   c.Fingerprint(),
		ReloadedFingerprint: c2.Fingerprint(),
		RootPEMEqual:        string(c.RootPEM()) == string(st.RootCertPem),
		RootCN:              root[0].Subject.CommonName,
		InterCN:             inter[0].Subject.CommonName,
		RootNotBefore:       root[0].NotBefore,
		RootNotAfter:        root[0].NotAfter,
		InterNotAfter:       inter[0].NotAfter,
		RootMaxPathLen:      root[0].MaxPathLen,
		InterMaxPathLen:     inter[0].MaxPathLen,
		InterMaxPathLenZero: inter[0].MaxPathLenZero,
	}
	fp := hex.EncodeToString(sum[:])
	want := summary{
		ClusterID:           "c-42",
		Fingerprint:         fp,
		LoadedFingerprint:   fp,
		ReloadedFingerprint: fp,
		RootPEMEqual:        true,
		RootCN:              "Underlay Root CA c-42",
		InterCN:             "Underlay Intermediate CA c-42",
		RootNotBefore:       t0.Add(-time.Minute),
		RootNotAfter:        t0.AddDate(10, 0, 0),
		InterNotAfter:       t0.AddDate(5, 0, 0),
		RootMaxPathLen:      1,
		InterMaxPathLen:     0,
		InterMaxPathLenZero: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CA mismatch (-want +got):\n%s", diff)
	}
	if _, err := inter[0].Verify(x509.VerifyOptions{Roots: c.Roots(), CurrentTime: t0}); err != nil {
		t.Errorf("intermediate does not verify against Roots(): %v", err)
	}
	if len(st.RootKeyPem) == 0 || len(st.IntermediateKeyPem) == 0 {
		t.Errorf("state lacks keys")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := ca.New("", t0); !errors.Is(err, ca.ErrBadRequest) {
		t.Errorf("New(\"\") error = %v, want %v", err, ca.ErrBadRequest)
	}
	if _, err := ca.New("c", time.Time{}); !errors.Is(err, ca.ErrBadRequest) {
		t.Errorf("New(zero time) error = %v, want %v", err, ca.ErrBadRequest)
	}
}

func TestLoadErrors(t *testing.T) {
	good, _ := newCA(t)
	other, err := ca.New("other", t0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(st *underlayv1.CAState)
	}{
		{"missing root", func(st *underlayv1.CAState) { st.RootCertPem = nil }},
		{"missing intermediate key", func(st *underlayv1.CAState) { st.IntermediateKeyPem = nil }},
		{"garbage root key", func(st *underlayv1.CAState) { st.RootKeyPem = []byte("garbage") }},
		{"swapped keys", func(st *underlayv1.CAState) {
			st.RootKeyPem, st.IntermediateKeyPem = st.IntermediateKeyPem, st.RootKeyPem
		}},
		{"intermediate of another cluster", func(st *underlayv1.CAState) {
			st.IntermediateCertPem, st.IntermediateKeyPem = other.IntermediateCertPem, other.IntermediateKeyPem
		}},
		{"wrong fingerprint", func(st *underlayv1.CAState) { st.Fingerprint = other.Fingerprint }},
		{"malformed fingerprint", func(st *underlayv1.CAState) { st.Fingerprint = "xyz" }},
		{"two roots", func(st *underlayv1.CAState) {
			st.RootCertPem = append(append([]byte{}, st.RootCertPem...), other.RootCertPem...)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := proto.Clone(good).(*underlayv1.CAState)
			tt.mutate(st)
			if _, err := ca.Load(st); !errors.Is(err, ca.ErrBadState) {
				t.Errorf("Load error = %v, want %v", err, ca.ErrBadState)
			}
		})
	}
	if _, err := ca.Load(nil); !errors.Is(err, ca.ErrBadState) {
		t.Errorf("Load(nil) error = %v, want %v", err, ca.ErrBadState)
	}
}

func TestLoadErrorsHideKeys(t *testing.T) {
	good, _ := newCA(t)
	st := proto.Clone(good).(*underlayv1.CAState)
	st.RootKeyPem, st.IntermediateKeyPem = st.IntermediateKeyPem, st.RootKeyPem
	_, err := ca.Load(st)
	if err == nil {
		t.Fatal("Load accepted swapped keys")
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("error leaks key material: %v", err)
	}
}
