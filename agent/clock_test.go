package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/pkg/mtls"
)

func TestClockSync(t *testing.T) {
	base := time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC)
	server := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		sent, recv time.Duration // local readings after base
		later      time.Duration // local time of the Now call after base
		want       time.Time
	}{
		{"instant answer", 0, 0, 0, server},
		{"round trip centred", 0, 2 * time.Second, 2 * time.Second, server.Add(time.Second)},
		{"offset applies later", 0, 0, time.Hour, server.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := base.Add(tc.sent)
			c := &clock{local: func() time.Time { return local }}
			if _, ok := c.Offset(); ok {
				t.Fatal("fresh clock claims to be synced")
			}
			c.sync(base.Add(tc.sent), base.Add(tc.recv), server)
			local = base.Add(tc.later)
			if diff := cmp.Diff(tc.want, c.Now().UTC()); diff != "" {
				t.Errorf("Now() (-want +got):\n%s", diff)
			}
		})
	}
}

// Renewal decisions use the corrected clock, not the local one.
func TestRenewalUsesCorrectedClock(t *testing.T) {
	ca := newTestCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := ca.issue(t, key.Public(), mtls.Identity{Kind: mtls.KindMachine, Name: "m1"}, time.Hour, x509.ExtKeyUsageClientAuth)
	store := mtls.NewCertStore(&tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf})
	day := 24 * time.Hour
	for _, tc := range []struct {
		name                  string
		localSkew, serverSkew time.Duration // minus real time
		wantCorrected         bool
		wantLocal             bool
	}{
		{"all in sync", 0, 0, false, false},
		{"local clock a day ahead", day, 0, false, true},
		{"server 50 minutes ahead of local", 0, 50 * time.Minute, true, false},
		{"local clock years behind, server late in the lifetime", -3650 * day, 50 * time.Minute, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{local: func() time.Time { return time.Now().Add(tc.localSkew) }}
			l := c.local()
			c.sync(l, l, l.Add(tc.serverSkew-tc.localSkew))
			got := []bool{store.NeedsRenewal(c.Now()), store.NeedsRenewal(c.local())}
			want := []bool{tc.wantCorrected, tc.wantLocal}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("NeedsRenewal(corrected, local) (-want +got):\n%s", diff)
			}
		})
	}
}
