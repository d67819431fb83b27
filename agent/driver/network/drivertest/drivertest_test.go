package drivertest

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"underlay.dev/agent/driver/network"
	"underlay.dev/pkg/netconf"
)

func TestDriver(t *testing.T) {
	d := &netconf.Data{Links: []netconf.Link{{ID: "a", Type: "phy", EthernetMACAddress: "52:54:00:76:00:01", Name: "eth0"}}}
	f := &Driver{RunCheck: true}
	for _, tc := range []struct {
		name        string
		check       error
		wantChanged bool
		wantErr     error
	}{
		{name: "first apply changes", wantChanged: true},
		{name: "second is a no-op"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := f.Apply(context.Background(), d, func(context.Context) error { return tc.check }, nil)
			if !errors.Is(err, tc.wantErr) || rep.Changed != tc.wantChanged {
				t.Errorf("Apply = %+v, %v; want changed %v, error %v", rep, err, tc.wantChanged, tc.wantErr)
			}
		})
	}
	d2 := &netconf.Data{Links: []netconf.Link{{ID: "b", Type: "phy", EthernetMACAddress: "52:54:00:76:00:02"}}}
	_, err := f.Apply(context.Background(), d2, func(context.Context) error { return errors.New("no server") }, nil)
	if !errors.Is(err, network.ErrRolledBack) {
		t.Errorf("failing check: err = %v, want ErrRolledBack", err)
	}
	if diff := cmp.Diff([]*netconf.Data{d, d, d2}, f.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}
