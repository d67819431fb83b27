package provision_test

import (
	"strings"
	"testing"
	"time"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/test/harness"
)

// TestClassificationAssignsRole applies a rule before machines enroll: a
// machine whose inventory matches gets the rule's labels and profile and
// its role, whose plan then runs by itself; a machine that does not match
// is left alone. A rule applied later classifies the machine without a
// role again, and leaves the one with a role alone.
func TestClassificationAssignsRole(t *testing.T) {
	l := newLab(t)
	cl := l.c.Client()
	l.cl.mustApplyYAML(t, `
kind: Profile
name: storage-site
params: {greeting: "hello from the rules"}
---
kind: Task
name: greet
inputs: [{name: greeting, required: true}]
outputs: [{name: said}]
script: |
  echo "said=$UNDERLAY_PARAM_GREETING" >> "$UNDERLAY_OUTPUTS"
---
kind: Role
name: storage
tasks: [greet]
profiles: [storage-site]
---
kind: Rule
name: many-disks
match: 'disks >= 3 && memory_gib >= 32 && vendor == "Underlay Test Systems"'
labels: {tier: storage}
profiles: [storage-site]
role: storage
`)
	big := harness.NewSimMachine(t, "big")
	big.Disks = 4
	small := harness.NewSimMachine(t, "small")
	var ids []string
	for _, m := range []*harness.SimMachine{big, small} {
		a := harness.StartAgent(t, harness.AgentSpec{
			Servers: l.c.Addrs(), Fingerprint: l.c.Fingerprint,
			Token:   l.c.Token(underlayv1.TokenKind_TOKEN_KIND_AGENT, time.Hour, 1),
			Machine: m,
		})
		ids = append(ids, a.WaitEnrolled(t, waitLong))
	}
	p := waitPlan(t, cl, ids[0], "the rule's role to run", succeeded)
	if p.GetRole() != "storage" || outputs(p)["said"] != "hello from the rules" {
		t.Errorf("plan of the matching machine: role %q outputs %v", p.GetRole(), outputs(p))
	}
	m, err := cl.Machines.Get(ctxT(t), &underlayv1.GetMachineRequest{Id: ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetLabels()["tier"] != "storage" || strings.Join(m.GetClassifiedBy(), ",") != "many-disks" {
		t.Errorf("matching machine: labels %v classified by %v", m.GetLabels(), m.GetClassifiedBy())
	}
	harness.Eventually(t, waitLong, "the small machine to be classified", func() bool {
		m, err := cl.Machines.Get(ctxT(t), &underlayv1.GetMachineRequest{Id: ids[1]})
		return err == nil && m.GetClassifiedVersion() == m.GetInventoryVersion()
	})
	m, _ = cl.Machines.Get(ctxT(t), &underlayv1.GetMachineRequest{Id: ids[1]})
	if m.GetRole() != "" || len(m.GetClassifiedBy()) != 0 || m.GetLabels()["tier"] != "" {
		t.Errorf("non-matching machine: role %q, rules %v, labels %v", m.GetRole(), m.GetClassifiedBy(), m.GetLabels())
	}

	l.cl.mustApplyYAML(t, `
kind: Rule
name: any-disk
match: 'disks >= 1'
labels: {tier: general}
priority: 20
`)
	harness.Eventually(t, waitLong, "the small machine to be classified by the new rule", func() bool {
		m, err := cl.Machines.Get(ctxT(t), &underlayv1.GetMachineRequest{Id: ids[1]})
		return err == nil && m.GetLabels()["tier"] == "general"
	})
	m, _ = cl.Machines.Get(ctxT(t), &underlayv1.GetMachineRequest{Id: ids[1]})
	if m.GetRole() != "" || strings.Join(m.GetClassifiedBy(), ",") != "any-disk" {
		t.Errorf("small machine after the new rule: role %q, classified by %v", m.GetRole(), m.GetClassifiedBy())
	}
	m, _ = cl.Machines.Get(ctxT(t), &underlayv1.GetMachineRequest{Id: ids[0]})
	if m.GetLabels()["tier"] != "storage" || strings.Join(m.GetClassifiedBy(), ",") != "many-disks" {
		t.Errorf("machine with a role was classified again: labels %v, classified by %v", m.GetLabels(), m.GetClassifiedBy())
	}
}
