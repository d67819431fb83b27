package redfish

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	gfredfish "github.com/stmcginnis/gofish/redfish"
)

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct {
		addr, want string
		bad        bool
	}{
		{addr: "https://10.0.0.5", want: "https://10.0.0.5"},
		{addr: "https://10.0.0.5/", want: "https://10.0.0.5"},
		{addr: "https://10.0.0.5/redfish/v1/", want: "https://10.0.0.5"},
		{addr: "10.0.0.5:8443", want: "https://10.0.0.5:8443"},
		{addr: " bmc.example.net ", want: "https://bmc.example.net"},
		{addr: "[fd00::5]:443", want: "https://[fd00::5]:443"},
		{addr: "", bad: true},
		{addr: "http://10.0.0.5", bad: true},
		{addr: "ftp://10.0.0.5", bad: true},
		{addr: "https://10.0.0.5/ui/login", bad: true},
		{addr: "https://root:calvin@10.0.0.5", bad: true},
		{addr: "10.0.0.5:99999", bad: true},
		{addr: "https://", bad: true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			got, err := Endpoint{Address: tc.addr}.baseURL()
			if tc.bad {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("baseURL = %q, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("baseURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestResetType(t *testing.T) {
	all := []gfredfish.ResetType{"On", "ForceOff", "ForceRestart", "PowerCycle"}
	noCycle := []gfredfish.ResetType{"On", "ForceOff", "ForceRestart"}
	type out struct {
		RT gfredfish.ResetType
		Do bool
	}
	for _, tc := range []struct {
		name    string
		action  string
		on      bool
		allowed []gfredfish.ResetType
		want    out
	}{
		{"on when off", PowerOn, false, all, out{"On", true}},
		{"on when on is a no-op", PowerOn, true, all, out{"On", false}},
		{"off when on", PowerOff, true, all, out{"ForceOff", true}},
		{"off when off is a no-op", PowerOff, false, all, out{"ForceOff", false}},
		{"graceful off", PowerGracefulOff, true, all, out{"GracefulShutdown", true}},
		{"cycle", PowerCycle, true, all, out{"PowerCycle", true}},
		{"cycle without allowable values", PowerCycle, true, nil, out{"PowerCycle", true}},
		{"cycle where PowerCycle is not offered", PowerCycle, true, noCycle, out{"ForceRestart", true}},
		{"cycle when off powers on", PowerCycle, false, all, out{"On", true}},
		{"reset", PowerReset, true, all, out{"ForceRestart", true}},
		{"reset when off powers on", PowerReset, false, all, out{"On", true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, do := resetType(tc.action, tc.on, tc.allowed)
			if diff := cmp.Diff(tc.want, out{rt, do}); diff != "" {
				t.Errorf("resetType (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	b := BIOS{kinds: map[string]kind{"Cores": kindInteger, "Secure": kindBool, "Mode": kindString, "Ratio": kindNumber}}
	for _, tc := range []struct {
		name    string
		want    map[string]string
		out     map[string]string
		wantErr error
	}{
		{"rendered like the bmc", map[string]string{"Cores": " 08 ", "Secure": "True", "Mode": " Uefi", "Ratio": "1.50"},
			map[string]string{"Cores": "8", "Secure": "true", "Mode": " Uefi", "Ratio": "1.5"}, nil},
		{"unknown names", map[string]string{"Cores": "1", "Nope": "x", "Also": "y"}, nil, ErrUnknownAttribute},
		{"not an integer", map[string]string{"Cores": "many"}, nil, ErrInvalid},
		{"not a boolean", map[string]string{"Secure": "yes"}, nil, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.Canonical(tc.want)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.out, got); diff != "" {
				t.Errorf("Canonical (-want +got):\n%s", diff)
			}
		})
	}
	_, err := b.Canonical(map[string]string{"Nope": "x", "Also": "y"})
	if want := "attributes Also, Nope: unknown bios attribute"; err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}
