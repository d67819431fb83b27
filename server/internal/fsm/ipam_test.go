package fsm

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func subnetCmd() *underlayv1.Command {
	return &underlayv1.Command{Cmd: &underlayv1.Command_PutSubnet{PutSubnet: &underlayv1.PutSubnet{Subnet: &underlayv1.Subnet{
		Name: "prov", Cidr: "10.9.0.0/24", RangeStart: "10.9.0.10", RangeEnd: "10.9.0.12", Gateway: "10.9.0.1", LeaseSeconds: 600,
	}}}}
}

func allocCmd(mac, requested string) *underlayv1.Command {
	return &underlayv1.Command{Cmd: &underlayv1.Command_AllocateLease{AllocateLease: &underlayv1.AllocateLease{Subnet: "prov", Mac: mac, RequestedIp: requested}}}
}

func at(c *underlayv1.Command, d time.Duration) *underlayv1.Command {
	c.Time = timestamppb.New(t0.Add(d))
	return c
}

func TestAllocateLease(t *testing.T) {
	type step struct {
		cmd      *underlayv1.Command
		wantIP   string
		wantKind underlayv1.ErrorKind
		wantMsg  string
	}
	const a, b, c, d = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:0c", "52:54:00:00:00:0d"
	tests := []struct {
		name  string
		steps []step
	}{
		{"lowest free first, same MAC keeps its address", []step{
			{cmd: allocCmd(a, ""), wantIP: "10.9.0.10"},
			{cmd: allocCmd(b, ""), wantIP: "10.9.0.11"},
			{cmd: allocCmd(a, ""), wantIP: "10.9.0.10"},
			{cmd: allocCmd("52-54-00-00-00-0A", ""), wantIP: "10.9.0.10"},
		}},
		{"requested address honoured when free, refused when taken", []step{
			{cmd: allocCmd(a, "10.9.0.12"), wantIP: "10.9.0.12"},
			{cmd: allocCmd(b, "10.9.0.12"), wantIP: "10.9.0.10"},
			{cmd: allocCmd(c, "10.9.0.200"), wantIP: "10.9.0.11"},
		}},
		{"pool exhausted", []step{
			{cmd: allocCmd(a, ""), wantIP: "10.9.0.10"},
			{cmd: allocCmd(b, ""), wantIP: "10.9.0.11"},
			{cmd: allocCmd(c, ""), wantIP: "10.9.0.12"},
			{cmd: allocCmd(d, ""), wantKind: kindPrecondition, wantMsg: "no free address"},
		}},
		{"expired lease is reused by another MAC", []step{
			{cmd: at(allocCmd(a, ""), time.Minute), wantIP: "10.9.0.10"},
			{cmd: at(allocCmd(b, ""), 2*time.Minute), wantIP: "10.9.0.11"},
			{cmd: at(allocCmd(c, ""), 3*time.Minute), wantIP: "10.9.0.12"},
			{cmd: at(allocCmd(d, ""), 20*time.Minute), wantIP: "10.9.0.10"},
		}},
		{"reservation wins and is kept from others", []step{
			{cmd: &underlayv1.Command{Cmd: &underlayv1.Command_PutReservation{PutReservation: &underlayv1.PutReservation{Reservation: &underlayv1.Reservation{Subnet: "prov", Mac: b, Ip: "10.9.0.10"}}}}, wantIP: "10.9.0.10"},
			{cmd: allocCmd(a, "10.9.0.10"), wantIP: "10.9.0.11"},
			{cmd: allocCmd(b, ""), wantIP: "10.9.0.10"},
		}},
		{"released address goes back to the pool", []step{
			{cmd: allocCmd(a, ""), wantIP: "10.9.0.10"},
			{cmd: &underlayv1.Command{Cmd: &underlayv1.Command_ReleaseLease{ReleaseLease: &underlayv1.ReleaseLease{Subnet: "prov", Mac: a, Ip: "10.9.0.10"}}}, wantIP: "10.9.0.10"},
			{cmd: allocCmd(b, ""), wantIP: "10.9.0.10"},
		}},
		{"declined address is kept out", []step{
			{cmd: allocCmd(a, ""), wantIP: "10.9.0.10"},
			{cmd: &underlayv1.Command{Cmd: &underlayv1.Command_DeclineLease{DeclineLease: &underlayv1.DeclineLease{Subnet: "prov", Mac: a, Ip: "10.9.0.10"}}}, wantIP: "10.9.0.10"},
			{cmd: allocCmd(a, ""), wantIP: "10.9.0.11"},
			{cmd: allocCmd(b, ""), wantIP: "10.9.0.12"},
		}},
		{"bad MAC and unknown subnet", []step{
			{cmd: allocCmd("nope", ""), wantKind: kindInvalid, wantMsg: "not an Ethernet address"},
			{cmd: &underlayv1.Command{Cmd: &underlayv1.Command_AllocateLease{AllocateLease: &underlayv1.AllocateLease{Subnet: "none", Mac: a}}}, wantKind: kindNotFound},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustApply(t, bootstrapCmd(), subnetCmd())
			for i, s := range tt.steps {
				before := h.dump(t)
				res := h.apply(t, s.cmd)
				if res.GetErrorKind() != s.wantKind || !strings.Contains(res.GetErrorMessage(), s.wantMsg) {
					t.Fatalf("step %d: result %v %q; want %v containing %q", i, res.GetErrorKind(), res.GetErrorMessage(), s.wantKind, s.wantMsg)
				}
				if s.wantKind != kindNone {
					if !bytes.Equal(before, h.dump(t)) {
						t.Fatalf("step %d: failed command changed the state", i)
					}
					continue
				}
				if diff := cmp.Diff(s.wantIP, res.GetId()); diff != "" {
					t.Fatalf("step %d: address (-want +got):\n%s", i, diff)
				}
			}
			// No address is ever held by two MACs.
			seen := map[string]string{}
			for _, l := range h.store.Leases("prov") {
				if other, ok := seen[l.GetIp()]; ok {
					t.Fatalf("%s leased to %s and %s", l.GetIp(), other, l.GetMac())
				}
				seen[l.GetIp()] = l.GetMac()
			}
		})
	}
}

func TestSubnetValidation(t *testing.T) {
	tests := []struct {
		name string
		sn   *underlayv1.Subnet
		want string
	}{
		{"not a cidr", &underlayv1.Subnet{Name: "x", Cidr: "10.0.0.0", RangeStart: "10.0.0.10", RangeEnd: "10.0.0.20"}, "not an IPv4 network"},
		{"range outside", &underlayv1.Subnet{Name: "x", Cidr: "10.0.0.0/24", RangeStart: "10.0.1.10", RangeEnd: "10.0.0.20"}, "outside"},
		{"reversed range", &underlayv1.Subnet{Name: "x", Cidr: "10.0.0.0/24", RangeStart: "10.0.0.20", RangeEnd: "10.0.0.10"}, "before range start"},
		{"broadcast in range", &underlayv1.Subnet{Name: "x", Cidr: "10.0.0.0/24", RangeStart: "10.0.0.10", RangeEnd: "10.0.0.255"}, "broadcast"},
		{"gateway in range", &underlayv1.Subnet{Name: "x", Cidr: "10.0.0.0/24", RangeStart: "10.0.0.10", RangeEnd: "10.0.0.20", Gateway: "10.0.0.15"}, "inside the dynamic range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustApply(t, bootstrapCmd())
			res := h.apply(t, &underlayv1.Command{Cmd: &underlayv1.Command_PutSubnet{PutSubnet: &underlayv1.PutSubnet{Subnet: tt.sn}}})
			if res.GetErrorKind() != kindInvalid || !strings.Contains(res.GetErrorMessage(), tt.want) {
				t.Fatalf("got %v %q; want INVALID with %q", res.GetErrorKind(), res.GetErrorMessage(), tt.want)
			}
		})
	}
}

func TestIPAMSnapshotRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.mustApply(t, bootstrapCmd(), subnetCmd(), allocCmd("52:54:00:00:00:01", ""),
		&underlayv1.Command{Cmd: &underlayv1.Command_PutReservation{PutReservation: &underlayv1.PutReservation{Reservation: &underlayv1.Reservation{Subnet: "prov", Mac: "52:54:00:00:00:02", Ip: "10.9.0.50"}}}},
		&underlayv1.Command{Cmd: &underlayv1.Command_SetBootSettings{SetBootSettings: &underlayv1.SetBootSettings{Settings: &underlayv1.BootSettings{DiscoveryToken: "abc.def", DiscoveryTokenId: "abc"}}}},
	)
	want := h.dump(t)
	other := newHarness(t)
	if err := other.store.Load(bytes.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if got := other.dump(t); !bytes.Equal(got, want) {
		t.Fatal("dump after load differs")
	}
	if len(other.store.Leases("prov")) != 1 || len(other.store.Reservations("prov")) != 1 || other.store.BootSettings().GetDiscoveryToken() != "abc.def" {
		t.Fatalf("restored ipam state incomplete: %v %v %v", other.store.Leases(""), other.store.Reservations(""), other.store.BootSettings())
	}
}
