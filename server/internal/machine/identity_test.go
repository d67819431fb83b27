package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const (
	uuidA = "4C2D1E0A-9B8F-4E7D-A6C5-B4A392817060"
	uuidB = "0b9a8c7d-6e5f-4a3b-9c2d-1e0f00aabbcc"
)

func ident(uuid string, serials []string, macs ...string) *underlayv1.MachineIdentity {
	return &underlayv1.MachineIdentity{Uuid: uuid, Serials: serials, Macs: macs}
}

func mach(id string, identity *underlayv1.MachineIdentity) *underlayv1.Machine {
	return &underlayv1.Machine{Id: id, Identity: identity}
}

func TestMatch(t *testing.T) {
	web1 := mach("m-web1", ident(uuidA, []string{"SN-WEB1", "BB-WEB1"}, "52:54:00:00:00:01", "52:54:00:00:00:02"))
	web2 := mach("m-web2", ident(uuidB, []string{"SN-WEB2"}, "52:54:00:00:00:03"))
	vmOrig := mach("m-vm1", ident(uuidA, nil, "52:54:00:00:01:01"))
	noMACs := mach("m-nomac", ident(uuidB, nil))
	placeholder := mach("m-ph", ident("03000200-0400-0500-0006-000700080009", []string{"To Be Filled By O.E.M."}, "52:54:00:00:02:01"))

	tests := []struct {
		name       string
		id         *underlayv1.MachineIdentity
		candidates []*underlayv1.Machine
		want       MatchResult
		ambiguous  bool
	}{
		{
			name:       "no candidates is a new machine",
			id:         ident(uuidA, []string{"SN-WEB1"}, "52:54:00:00:00:01"),
			candidates: nil,
			want:       MatchResult{},
		},
		{
			name:       "reboot reports the same facts",
			id:         ident(uuidA, []string{"SN-WEB1", "BB-WEB1"}, "52:54:00:00:00:01", "52:54:00:00:00:02"),
			candidates: []*underlayv1.Machine{web2, web1},
			want:       MatchResult{MachineID: "m-web1", Score: 100 + 2*40 + 2*30},
		},
		{
			name:       "UUID compares case-insensitively",
			id:         ident("4c2d1e0a-9b8f-4e7d-a6c5-b4a392817060", nil),
			candidates: []*underlayv1.Machine{web1},
			want:       MatchResult{MachineID: "m-web1", Score: 100},
		},
		{
			name:       "NIC replaced: UUID and serials still match",
			id:         ident(uuidA, []string{"SN-WEB1", "BB-WEB1"}, "52:54:00:00:0f:01", "52:54:00:00:0f:02"),
			candidates: []*underlayv1.Machine{web1, web2},
			want:       MatchResult{MachineID: "m-web1", Score: 100 + 2*40},
		},
		{
			name:       "NIC replaced on a machine that reported no MACs",
			id:         ident(uuidB, nil, "52:54:00:00:0f:03"),
			candidates: []*underlayv1.Machine{noMACs},
			want:       MatchResult{MachineID: "m-nomac", Score: 100},
		},
		{
			name:       "UUID reset by firmware: serial plus MAC",
			id:         ident("", []string{"SN-WEB1"}, "52:54:00:00:00:01"),
			candidates: []*underlayv1.Machine{web1},
			want:       MatchResult{MachineID: "m-web1", Score: 40 + 30},
		},
		{
			name:       "two serials match",
			id:         ident("", []string{"SN-WEB1", "BB-WEB1"}),
			candidates: []*underlayv1.Machine{web1},
			want:       MatchResult{MachineID: "m-web1", Score: 80},
		},
		{
			name:       "two MACs match, case-insensitively",
			id:         ident("", nil, "52:54:00:00:00:01", "52:54:00:00:00:02"),
			candidates: []*underlayv1.Machine{web1},
			want:       MatchResult{MachineID: "m-web1", Score: 60},
		},
		{
			name:       "one MAC alone is not a match",
			id:         ident("", nil, "52:54:00:00:00:01", "52:54:00:00:aa:aa"),
			candidates: []*underlayv1.Machine{web1},
			want:       MatchResult{Score: 30},
		},
		{
			name:       "one serial alone is not a match",
			id:         ident("", []string{"SN-WEB1"}, "52:54:00:00:aa:aa"),
			candidates: []*underlayv1.Machine{web1},
			want:       MatchResult{Score: 40},
		},
		{
			name:       "duplicated facts count once",
			id:         ident("", []string{"SN-WEB1", " SN-WEB1 "}),
			candidates: []*underlayv1.Machine{web1},
			want:       MatchResult{Score: 40},
		},
		{
			name:       "cloned UUID: different serials and MACs",
			id:         ident(uuidA, []string{"SN-OTHER"}, "52:54:00:00:0e:01"),
			candidates: []*underlayv1.Machine{web1, web2},
			want:       MatchResult{Conflicts: []string{"m-web1"}},
		},
		{
			name:       "cloned VM: same UUID, no serials, different MAC",
			id:         ident(uuidA, nil, "52:54:00:00:01:99"),
			candidates: []*underlayv1.Machine{vmOrig},
			want:       MatchResult{Conflicts: []string{"m-vm1"}},
		},
		{
			name:       "cloned UUID told apart when the clone also exists",
			id:         ident(uuidA, []string{"SN-WEB1", "BB-WEB1"}, "52:54:00:00:00:01"),
			candidates: []*underlayv1.Machine{vmOrig, web1},
			want:       MatchResult{MachineID: "m-web1", Score: 100 + 80 + 30, Conflicts: []string{"m-vm1"}},
		},
		{
			name:       "placeholder UUID and serial never match",
			id:         ident("03000200-0400-0500-0006-000700080009", []string{"To Be Filled By O.E.M."}, "52:54:00:00:09:01"),
			candidates: []*underlayv1.Machine{placeholder},
			want:       MatchResult{},
		},
		{
			name: "ambiguous: facts of two machines",
			id:   ident("", []string{"SN-WEB1", "BB-WEB1", "SN-WEB2"}, "52:54:00:00:00:03"),
			candidates: []*underlayv1.Machine{
				web1, web2,
			},
			want:      MatchResult{Score: 80, Conflicts: []string{"m-web1", "m-web2"}},
			ambiguous: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Match(tt.id, tt.candidates)
			if tt.ambiguous {
				if !errors.Is(err, ErrAmbiguous) {
					t.Fatalf("Match error = %v, want ErrAmbiguous", err)
				}
			} else if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Match (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMatchAmbiguousMessageListsIDs(t *testing.T) {
	a := mach("m-a", ident(uuidA, nil))
	b := mach("m-b", ident("", []string{"S1", "S2"}))
	_, err := Match(ident(uuidA, []string{"S1", "S2"}), []*underlayv1.Machine{b, a})
	want := "match identity: machines m-a, m-b: identity matches more than one machine"
	if err == nil {
		t.Fatal("Match: no error")
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
}

func sum12(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:12]
}

func TestNewID(t *testing.T) {
	tests := []struct {
		name string
		id   *underlayv1.MachineIdentity
		want string
	}{
		{"uuid", ident(uuidA, []string{"S1"}, "52:54:00:00:00:01"), "m-" + sum12("uuid:4c2d1e0a-9b8f-4e7d-a6c5-b4a392817060")},
		{"uuid ignores other facts", ident(uuidA, nil), "m-" + sum12("uuid:4c2d1e0a-9b8f-4e7d-a6c5-b4a392817060")},
		{"no uuid: sorted macs and serials", ident("", []string{"S2", "S1"}, "52:54:00:00:00:02", "52:54:00:00:00:01"),
			"m-" + sum12("mac:52:54:00:00:00:01\nmac:52:54:00:00:00:02\nserial:S1\nserial:S2")},
		{"order does not matter", ident("", []string{"S1", "S2"}, "52:54:00:00:00:01", "52:54:00:00:00:02"),
			"m-" + sum12("mac:52:54:00:00:00:01\nmac:52:54:00:00:00:02\nserial:S1\nserial:S2")},
		{"placeholder uuid falls back", ident("03000200-0400-0500-0006-000700080009", nil, "52:54:00:00:00:01"),
			"m-" + sum12("mac:52:54:00:00:00:01")},
		{"nothing usable", ident("Not Settable", []string{"Default string"}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, NewID(tt.id)); diff != "" {
				t.Errorf("NewID (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChooseID(t *testing.T) {
	id := ident(uuidA, []string{"S1"}, "52:54:00:00:00:01")
	base := NewID(id)
	tests := []struct {
		name  string
		res   MatchResult
		taken map[string]bool
		want  string
	}{
		{"matched machine keeps its id", MatchResult{MachineID: "m-old"}, map[string]bool{"m-old": true}, "m-old"},
		{"new machine gets NewID", MatchResult{}, nil, base},
		{"collision gets a fact suffix", MatchResult{}, map[string]bool{base: true},
			base + "-" + sum12("mac:52:54:00:00:00:01\nserial:S1#0")[:6]},
		{"second collision", MatchResult{}, map[string]bool{base: true, base + "-" + sum12("mac:52:54:00:00:00:01\nserial:S1#0")[:6]: true},
			base + "-" + sum12("mac:52:54:00:00:00:01\nserial:S1#1")[:6]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ChooseID(id, tt.res, func(s string) bool { return tt.taken[s] })
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ChooseID (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidUUID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{uuidA, true},
		{"4c2d1e0a9b8f4e7da6c5b4a392817060", true},
		{"{4c2d1e0a-9b8f-4e7d-a6c5-b4a392817060}", true},
		{"", false},
		{"00000000-0000-0000-0000-000000000000", false},
		{"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", false},
		{"ffffffff-ffff-ffff-ffff-ffffffffffff", false},
		{"03000200-0400-0500-0006-000700080009", false},
		{"00020003-0004-0005-0006-000700080009", false},
		{"Not Settable", false},
		{"Not Present", false},
		{"4c2d1e0a-9b8f-4e7d-a6c5-b4a39281706", false},
		{"4c2d1e0a-9b8f-4e7d-a6c5-b4a39281706g", false},
		{"4c2d1e0a9b8f-4e7d-a6c5-b4a392817060", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ValidUUID(tt.in); got != tt.want {
				t.Errorf("ValidUUID(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidSerial(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"CZJ1234ABC", true},
		{"", false},
		{"   ", false},
		{"To Be Filled By O.E.M.", false},
		{"Default string", false},
		{"0123456789", false},
		{"00000000", false},
		{"XXXXXXXX", false},
		{"Not Specified", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ValidSerial(tt.in); got != tt.want {
				t.Errorf("ValidSerial(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
