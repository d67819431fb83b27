package machine

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

const (
	unspecified = underlayv1.MachineState_MACHINE_STATE_UNSPECIFIED
	discovered  = underlayv1.MachineState_MACHINE_STATE_DISCOVERED
	ready       = underlayv1.MachineState_MACHINE_STATE_READY
	configuring = underlayv1.MachineState_MACHINE_STATE_CONFIGURING
	deploying   = underlayv1.MachineState_MACHINE_STATE_DEPLOYING
	active      = underlayv1.MachineState_MACHINE_STATE_ACTIVE
	failed      = underlayv1.MachineState_MACHINE_STATE_FAILED
	redeploying = underlayv1.MachineState_MACHINE_STATE_REDEPLOYING
	retired     = underlayv1.MachineState_MACHINE_STATE_RETIRED
)

func TestTransitionEveryPair(t *testing.T) {
	legal := map[[2]underlayv1.MachineState]bool{
		{discovered, ready}:        true,
		{ready, configuring}:       true,
		{ready, redeploying}:       true,
		{configuring, deploying}:   true,
		{configuring, failed}:      true,
		{deploying, active}:        true,
		{deploying, failed}:        true,
		{active, redeploying}:      true,
		{redeploying, configuring}: true,
		{redeploying, failed}:      true,
		{failed, ready}:            true,
		{failed, configuring}:      true,
		{failed, redeploying}:      true,
		{discovered, retired}:      true,
		{ready, retired}:           true,
		{configuring, retired}:     true,
		{deploying, retired}:       true,
		{active, retired}:          true,
		{failed, retired}:          true,
		{redeploying, retired}:     true,
	}
	all := append([]underlayv1.MachineState{unspecified}, States()...)
	for _, from := range all {
		for _, to := range all {
			name := StateName(from) + "->" + StateName(to)
			t.Run(name, func(t *testing.T) {
				err := Transition(from, to)
				if got, want := err == nil, legal[[2]underlayv1.MachineState{from, to}]; got != want {
					t.Fatalf("Transition(%s, %s) allowed = %v, want %v (err %v)", StateName(from), StateName(to), got, want, err)
				}
				if err == nil {
					return
				}
				if !errors.Is(err, ErrIllegalTransition) {
					t.Errorf("error %v does not wrap ErrIllegalTransition", err)
				}
				want := fmt.Sprintf("machine state: cannot go from %s to %s", StateName(from), StateName(to))
				if diff := cmp.Diff(want, err.Error()); diff != "" {
					t.Errorf("message (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestTransitionMessage(t *testing.T) {
	err := Transition(discovered, active)
	if diff := cmp.Diff("machine state: cannot go from discovered to active", err.Error()); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
}

func TestStateNames(t *testing.T) {
	tests := []struct {
		state underlayv1.MachineState
		name  string
	}{
		{discovered, "discovered"},
		{ready, "ready"},
		{configuring, "configuring"},
		{deploying, "deploying"},
		{active, "active"},
		{failed, "failed"},
		{redeploying, "redeploying"},
		{retired, "retired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.name, StateName(tt.state)); diff != "" {
				t.Errorf("StateName (-want +got):\n%s", diff)
			}
			got, err := ParseState(tt.name)
			if err != nil {
				t.Fatalf("ParseState(%q): %v", tt.name, err)
			}
			if got != tt.state {
				t.Errorf("ParseState(%q) = %v, want %v", tt.name, got, tt.state)
			}
		})
	}
	if got := StateName(unspecified); got != "unspecified" {
		t.Errorf("StateName(unspecified) = %q", got)
	}
	if got := StateName(99); got != "state(99)" {
		t.Errorf("StateName(99) = %q", got)
	}
}

func TestParseState(t *testing.T) {
	tests := []struct {
		in      string
		want    underlayv1.MachineState
		wantErr bool
	}{
		{in: "Active", want: active},
		{in: " ready ", want: ready},
		{in: "MACHINE_STATE_FAILED", want: failed},
		{in: "unspecified", wantErr: true},
		{in: "MACHINE_STATE_UNSPECIFIED", wantErr: true},
		{in: "", wantErr: true},
		{in: "booting", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseState(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownState) {
					t.Fatalf("ParseState(%q) error = %v, want ErrUnknownState", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseState(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}
