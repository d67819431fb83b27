package main

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantSet    map[string]string
		wantRemove []string
		wantErr    error
	}{
		{name: "set", args: []string{"rack=r12", "gpu=a100"}, wantSet: map[string]string{"rack": "r12", "gpu": "a100"}},
		{name: "remove", args: []string{"rack-", "env-"}, wantRemove: []string{"env", "rack"}},
		{name: "mixed", args: []string{"rack=r12", "env-"}, wantSet: map[string]string{"rack": "r12"}, wantRemove: []string{"env"}},
		{name: "empty value is allowed", args: []string{"note="}, wantSet: map[string]string{"note": ""}},
		{name: "value may contain = and -", args: []string{"cmd=a=b-"}, wantSet: map[string]string{"cmd": "a=b-"}},
		{name: "key with dashes", args: []string{"team-name=x", "team-name2-"}, wantSet: map[string]string{"team-name": "x"}, wantRemove: []string{"team-name2"}},
		{name: "bare key", args: []string{"rack"}, wantErr: errBadLabel},
		{name: "empty key", args: []string{"=v"}, wantErr: errBadLabel},
		{name: "only dash", args: []string{"-"}, wantErr: errBadLabel},
		{name: "space in key", args: []string{"a b=c"}, wantErr: errBadLabel},
		{name: "set twice", args: []string{"a=1", "a=2"}, wantErr: errBadLabel},
		{name: "set and remove", args: []string{"a=1", "a-"}, wantErr: errBadLabel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, remove, err := parseLabels(tt.args)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseLabels(%q) error = %v, want %v", tt.args, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantSet, set, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("set mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRemove, remove, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("remove mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
