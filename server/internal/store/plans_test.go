package store

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
)

// populateProvisioning fills the provisioning tables (for round trips).
func populateProvisioning(tx *Tx) error {
	task := &underlayv1.Definition{Def: &underlayv1.Definition_Task{Task: &underlayv1.Task{
		Name: "t", Script: "true", Meta: &underlayv1.DefinitionMeta{Version: 1, Source: "f.yaml:1"},
	}}}
	if err := tx.PutDefinition(task); err != nil {
		return err
	}
	role := &underlayv1.Definition{Def: &underlayv1.Definition_Role{Role: &underlayv1.Role{
		Name: "r", Tasks: []string{"t"}, Meta: &underlayv1.DefinitionMeta{Version: 1},
	}}}
	if err := tx.PutDefinition(role); err != nil {
		return err
	}
	if err := tx.PutPlan(&underlayv1.Plan{MachineId: "m-1", Role: "r", Generation: 1, State: underlayv1.PlanState_PLAN_STATE_RUNNING,
		Steps: []*underlayv1.Step{{Name: "t", Kind: "task", Task: "t", JobId: "m-1.g1.s0.a1", State: underlayv1.StepState_STEP_STATE_RUNNING}}}); err != nil {
		return err
	}
	if err := tx.PutJob(&underlayv1.Job{Id: "m-1.g1.s0.a1", MachineId: "m-1", Generation: 1, State: underlayv1.StepState_STEP_STATE_RUNNING}); err != nil {
		return err
	}
	if _, err := tx.AppendLog(&underlayv1.LogChunk{JobId: "m-1.g1.s0.a1", Data: []byte("hello\n"), Stream: "stdout"}); err != nil {
		return err
	}
	return tx.PutRoleStatus(&underlayv1.RoleStatus{Role: "r", Failures: 1, FailedMachines: []string{"m-9"}})
}

func TestAppendLog(t *testing.T) {
	s := newStore(t)
	write(t, s, func(tx *Tx) error {
		return tx.PutJob(&underlayv1.Job{Id: "j", MachineId: "m"})
	})
	chunks := []*underlayv1.LogChunk{
		{JobId: "j", Offset: 0, Data: []byte("abc")},
		{JobId: "j", Offset: 0, Data: []byte("abc")},  // resent: stored once
		{JobId: "j", Offset: 2, Data: []byte("cdef")}, // overlaps: only "def" is new
		{JobId: "j", Offset: 6, Data: []byte("gh")},
	}
	for _, c := range chunks {
		write(t, s, func(tx *Tx) error { _, err := tx.AppendLog(c); return err })
	}
	var got bytes.Buffer
	for _, c := range s.Logs("j", 0) {
		got.Write(c.GetData())
	}
	if got.String() != "abcdefgh" {
		t.Errorf("stored output %q, want %q", got.String(), "abcdefgh")
	}
	j, _ := s.Job("j")
	if j.GetLogBytes() != 8 || j.GetLogTruncated() {
		t.Errorf("job log_bytes %d truncated %v, want 8 false", j.GetLogBytes(), j.GetLogTruncated())
	}
	// Past the cap the rest is dropped and the job marked truncated.
	big := bytes.Repeat([]byte("x"), MaxJobLogBytes)
	write(t, s, func(tx *Tx) error {
		_, err := tx.AppendLog(&underlayv1.LogChunk{JobId: "j", Offset: 8, Data: big})
		return err
	})
	j, _ = s.Job("j")
	if j.GetLogBytes() != MaxJobLogBytes || !j.GetLogTruncated() {
		t.Errorf("after the cap: log_bytes %d truncated %v, want %d true", j.GetLogBytes(), j.GetLogTruncated(), MaxJobLogBytes)
	}
	if got := s.Logs("j", 7); len(got) == 0 || got[0].GetOffset() > 7 {
		t.Errorf("Logs from offset 7 = %v", got)
	}
}

func TestJobRetention(t *testing.T) {
	s := newStore(t)
	for i := 0; i < MaxMachineJobs+5; i++ {
		write(t, s, func(tx *Tx) error {
			id := "m.j" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			if err := tx.PutJob(&underlayv1.Job{Id: id, MachineId: "m"}); err != nil {
				return err
			}
			_, err := tx.AppendLog(&underlayv1.LogChunk{JobId: id, Data: []byte("out")})
			return err
		})
	}
	jobs := s.Jobs("m")
	if len(jobs) != MaxMachineJobs {
		t.Fatalf("%d jobs kept, want %d", len(jobs), MaxMachineJobs)
	}
	if first := jobs[0].GetId(); first != "m.jfa" {
		t.Errorf("oldest job kept is %s, want the 6th (m.jfa)", first)
	}
	if l := s.Logs("m.jaa", 0); len(l) != 0 {
		t.Errorf("logs of a dropped job are still there: %v", l)
	}
}

func TestDefinitionHistory(t *testing.T) {
	s := newStore(t)
	for v := uint64(1); v <= MaxDefinitionVersions+3; v++ {
		write(t, s, func(tx *Tx) error {
			return tx.PutDefinition(&underlayv1.Definition{Def: &underlayv1.Definition_Profile{Profile: &underlayv1.Profile{
				Name: "p", Description: "v", Meta: &underlayv1.DefinitionMeta{Version: v},
			}}})
		})
	}
	cur, err := s.Definition(KindProfile, "p")
	if err != nil || catalog.Meta(cur).GetVersion() != MaxDefinitionVersions+3 {
		t.Fatalf("current = %v, %v", cur, err)
	}
	var kept []uint64
	for v := uint64(1); v <= MaxDefinitionVersions+3; v++ {
		if _, err := s.DefinitionVersion(KindProfile, "p", v); err == nil {
			kept = append(kept, v)
		}
	}
	if len(kept) != MaxDefinitionVersions || kept[0] != 4 {
		t.Errorf("versions kept %v, want the last %d", kept, MaxDefinitionVersions)
	}
	write(t, s, func(tx *Tx) error { return tx.DeleteDefinition(KindProfile, "p") })
	if _, err := s.DefinitionVersion(KindProfile, "p", 10); err == nil {
		t.Error("history survives the delete")
	}
	if diff := cmp.Diff([]string(nil), names(s.Definitions(""))); diff != "" {
		t.Errorf("definitions after delete (-want +got):\n%s", diff)
	}
}

func names(defs []*underlayv1.Definition) []string {
	var out []string
	for _, d := range defs {
		out = append(out, catalog.Kind(d)+"/"+catalog.Name(d))
	}
	return out
}
