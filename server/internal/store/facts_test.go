package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestMachinesSharing(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	put := func(idx uint64, id string, ident *underlayv1.MachineIdentity) {
		t.Helper()
		if err := s.Update(idx, time.Unix(0, 0), "test", func(tx *Tx) error {
			return tx.PutMachine(&underlayv1.Machine{Id: id, Identity: ident})
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(1, "a", &underlayv1.MachineIdentity{Uuid: "4C2D1E0A-9B8F-4E7D-A6C5-B4A392817060", Macs: []string{"52:54:00:00:00:01"}})
	put(2, "b", &underlayv1.MachineIdentity{Serials: []string{"SN1"}, Macs: []string{"52:54:00:00:00:02"}})
	put(3, "c", &underlayv1.MachineIdentity{Macs: []string{"52:54:00:00:00:03"}})
	ids := func(ms []*underlayv1.Machine) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.GetId())
		}
		return out
	}
	tests := []struct {
		name  string
		ident *underlayv1.MachineIdentity
		want  []string
	}{
		{"uuid in another case", &underlayv1.MachineIdentity{Uuid: "4c2d1e0a-9b8f-4e7d-a6c5-b4a392817060"}, []string{"a"}},
		{"mac in upper case", &underlayv1.MachineIdentity{Macs: []string{"52:54:00:00:00:0B", "52:54:00:00:00:02"}}, []string{"b"}},
		{"serial and mac of two machines", &underlayv1.MachineIdentity{Serials: []string{"SN1"}, Macs: []string{"52:54:00:00:00:03"}}, []string{"b", "c"}},
		{"nothing shared", &underlayv1.MachineIdentity{Macs: []string{"52:54:00:00:00:09"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ids(s.MachinesSharing(tt.ident))); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
	// Changing a machine's facts moves it in the index.
	put(4, "c", &underlayv1.MachineIdentity{Macs: []string{"52:54:00:00:00:04"}})
	if got := ids(s.MachinesSharing(&underlayv1.MachineIdentity{Macs: []string{"52:54:00:00:00:03"}})); len(got) != 0 {
		t.Fatalf("old fact still indexed: %v", got)
	}
}
