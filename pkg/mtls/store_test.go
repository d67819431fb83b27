package mtls_test

import (
	"crypto/tls"
	"testing"
	"time"

	"underlay.dev/pkg/mtls"
	"underlay.dev/pkg/mtls/mtlstest"
)

func TestCertStore(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ca := mtlstest.NewCA(t, start)
	kp := ca.KeyPair(t, mtlstest.Leaf{
		ID:        mtls.Identity{Kind: mtls.KindMachine, Name: "m1"},
		NotBefore: start,
		NotAfter:  start.Add(90 * time.Hour),
	})
	// Drop Leaf to check that Set fills it in.
	noLeaf := &tls.Certificate{Certificate: kp.Certificate, PrivateKey: kp.PrivateKey}

	var empty mtls.CertStore
	if empty.Get() != nil || !empty.NeedsRenewal(start) {
		t.Errorf("zero CertStore: Get() = %v, NeedsRenewal = %v; want nil, true", empty.Get(), empty.NeedsRenewal(start))
	}
	s := mtls.NewCertStore(noLeaf)
	if s.Get() == nil || s.Get().Leaf == nil || s.Get().Leaf.Subject.CommonName != "m1" {
		t.Fatalf("Get() did not return the stored certificate with its leaf")
	}
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"fresh", start, false},
		{"just before two thirds", start.Add(60*time.Hour - time.Second), false},
		{"at two thirds", start.Add(60 * time.Hour), true},
		{"expired", start.Add(100 * time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.NeedsRenewal(tt.at); got != tt.want {
				t.Errorf("NeedsRenewal(%s) = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
	s.Set(nil)
	if s.Get() != nil {
		t.Errorf("Get() after Set(nil) = %v, want nil", s.Get())
	}
}
