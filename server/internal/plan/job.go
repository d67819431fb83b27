package plan

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
)

// Opener opens a sealed secret.
type Opener func(sealed []byte, purpose string) (string, error)

// BMC params: read by the bios step (and the power API) from the
// machine's resolved params.
var BMCParams = []string{"bmc_address", "bmc_username", "bmc_password", "bmc_insecure", "bmc_ca"}

// Job renders step s of plan p into the job the agent runs. When the step
// cannot run yet it returns a nil job and the reason it waits (a link
// nobody has published, a required param nobody set, a template that does
// not render); the orchestrator shows that reason and tries again when the
// state changes.
func Job(st State, open Opener, m *underlayv1.Machine, inv *underlayv1.Inventory, p *underlayv1.Plan, s *underlayv1.Step) (*underlayv1.RunStep, string) {
	run := &underlayv1.RunStep{
		JobId:          s.GetJobId(),
		Step:           s.GetIndex(),
		Name:           s.GetName(),
		Kind:           s.GetKind(),
		SpecJson:       s.GetSpecJson(),
		TimeoutSeconds: s.GetTimeoutSeconds(),
		MachineId:      m.GetId(),
	}
	switch s.GetKind() {
	case KindWipe, KindRAID, KindNetwork:
		return run, ""
	case KindBIOS:
		vals, _ := Params(st, m, p, nil)
		for _, name := range BMCParams {
			v, ok := vals[name]
			if !ok {
				continue
			}
			val, err := valueOf(open, v)
			if err != nil {
				return nil, err.Error()
			}
			run.Params = append(run.Params, &underlayv1.Param{Name: name, Value: val, Secret: v.Secret})
		}
		return run, ""
	case KindTask:
	default:
		return nil, fmt.Sprintf("step kind %q is not known to this server", s.GetKind())
	}
	t, ok := st.Task(s.GetTask())
	if !ok {
		return nil, fmt.Sprintf("task %s does not exist any more (deleted?); apply it again or redeploy with another role", s.GetTask())
	}
	vals, missing := Params(st, m, p, t)
	if hold := linkHold(st, p, s, t, missing); hold != "" {
		return nil, hold
	}
	params := map[string]string{}
	for _, in := range t.GetInputs() {
		v, ok := vals[in.GetName()]
		if !ok {
			if in.GetRequired() {
				return nil, fmt.Sprintf("param %s is required by task %s and nothing sets it (set it with 'underlay param set --machine %s %s=...', or in a profile, the role or the global params)",
					in.GetName(), t.GetName(), m.GetId(), in.GetName())
			}
			params[in.GetName()] = ""
			run.Params = append(run.Params, &underlayv1.Param{Name: in.GetName(), Secret: in.GetSecret()})
			continue
		}
		val, err := valueOf(open, v)
		if err != nil {
			return nil, err.Error()
		}
		if err := CheckType(in, val); err != nil {
			return nil, fmt.Sprintf("param %s (from %s): %v", in.GetName(), v.Source, err)
		}
		params[in.GetName()] = val
		run.Params = append(run.Params, &underlayv1.Param{Name: in.GetName(), Value: val, Secret: v.Secret})
	}
	facts := Facts(m, inv, p.GetRole())
	if t.GetScript() != "" {
		script, err := catalog.Render(t.GetName(), t.GetScript(), params, facts)
		if err != nil {
			return nil, fmt.Sprintf("task %s: script does not render: %v", t.GetName(), err)
		}
		run.Kind, run.Script, run.Interpreter = "script", script, t.GetInterpreter()
	} else {
		run.Kind = t.GetAction().GetName()
		switch run.Kind {
		case KindRAID, KindNetwork, KindBIOS:
			// A hardware action in a task runs the role's resolved profile
			// of that kind again at this point of the plan.
			hw := hardwareStep(p, run.Kind)
			if hw == nil {
				return nil, fmt.Sprintf("task %s runs the %s action, but role %s has no %s profile", t.GetName(), run.Kind, p.GetRole(), run.Kind)
			}
			run.SpecJson = hw.GetSpecJson()
			if run.Kind == KindBIOS {
				bios, _ := Job(st, open, m, inv, p, hw)
				if bios != nil {
					run.Params = bios.GetParams()
				}
			}
		}
		run.Args = map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(t.GetAction().GetArgs())) {
			v, err := catalog.Render(t.GetName()+"."+k, t.GetAction().GetArgs()[k], params, facts)
			if err != nil {
				return nil, fmt.Sprintf("task %s: arg %s does not render: %v", t.GetName(), k, err)
			}
			run.Args[k] = v
		}
	}
	run.Outputs = t.GetOutputs()
	run.Reboot = t.GetReboot()
	return run, ""
}

func valueOf(open Opener, v *Value) (string, error) {
	if len(v.Sealed) == 0 {
		return v.Value, nil
	}
	if open == nil {
		return "", fmt.Errorf("secret %s cannot be opened on this node", v.Name)
	}
	s, err := open(v.Sealed, v.Purpose)
	if err != nil {
		return "", fmt.Errorf("secret %s (from %s) cannot be opened: %v", v.Name, v.Source, err)
	}
	return s, nil
}

// linkHold returns why task step s waits for links: a link whose param t
// takes as input, or, on the first task step of the plan, a link no task
// of the role takes (it then gates the role's tasks as a whole).
func linkHold(st State, p *underlayv1.Plan, s *underlayv1.Step, t *underlayv1.Task, missing []Missing) string {
	if len(missing) == 0 {
		return ""
	}
	inputs := map[string]bool{}
	for _, in := range t.GetInputs() {
		inputs[in.GetName()] = true
	}
	first := true
	for _, x := range p.GetSteps() {
		if x.GetIndex() < s.GetIndex() && x.GetKind() == KindTask {
			first = false
		}
	}
	consumed := map[string]bool{}
	if first {
		for _, x := range p.GetSteps() {
			if tx, ok := st.Task(x.GetTask()); ok && x.GetKind() == KindTask {
				for _, in := range tx.GetInputs() {
					consumed[in.GetName()] = true
				}
			}
		}
	}
	var reasons []string
	for _, ms := range missing {
		param := LinkParam(ms.Link)
		if inputs[param] || (first && !consumed[param]) {
			reasons = append(reasons, ms.Reason)
		}
	}
	return strings.Join(reasons, "; ")
}

// Facts are the machine facts templates see as .machine.
func Facts(m *underlayv1.Machine, inv *underlayv1.Inventory, role string) map[string]any {
	if role == "" {
		role = m.GetRole()
	}
	labels := map[string]string{}
	for k, v := range m.GetLabels() {
		labels[k] = v
	}
	var macs []string
	ip := ""
	for _, n := range inv.GetNics() {
		if !n.GetVirtual() && n.GetKind() != "bond" && n.GetKind() != "vlan" {
			mac := n.GetPermanentMac()
			if mac == "" {
				mac = n.GetMac()
			}
			if mac != "" {
				macs = append(macs, strings.ToLower(mac))
			}
		}
	}
	ip = primaryIP(inv)
	sort.Strings(macs)
	return map[string]any{
		"id":        m.GetId(),
		"hostname":  m.GetHostname(),
		"role":      role,
		"arch":      inv.GetArch(),
		"boot_mode": inv.GetBootMode(),
		"ip":        ip,
		"macs":      macs,
		"labels":    labels,
		"vendor":    inv.GetDmi().GetSystemVendor(),
		"product":   inv.GetDmi().GetProductName(),
		"serial":    inv.GetDmi().GetProductSerial(),
		"uuid":      inv.GetDmi().GetProductUuid(),
	}
}

// primaryIP is the first global IPv4 address in the inventory, preferring
// bonds and VLANs (where a role's network config puts the host address).
func primaryIP(inv *underlayv1.Inventory) string {
	best, bestRank := "", 99
	for _, n := range inv.GetNics() {
		rank := 2
		switch n.GetKind() {
		case "vlan":
			rank = 0
		case "bond":
			rank = 1
		}
		if n.GetName() == "lo" {
			continue
		}
		for _, a := range n.GetAddresses() {
			pfx, err := netip.ParsePrefix(a)
			var addr netip.Addr
			if err == nil {
				addr = pfx.Addr()
			} else if addr, err = netip.ParseAddr(a); err != nil {
				continue
			}
			if !addr.Is4() || addr.IsLoopback() || addr.IsLinkLocalUnicast() {
				continue
			}
			if rank < bestRank {
				best, bestRank = addr.String(), rank
			}
			break
		}
	}
	return best
}

func hardwareStep(p *underlayv1.Plan, kind string) *underlayv1.Step {
	for _, s := range p.GetSteps() {
		if s.GetKind() == kind && s.GetSpecJson() != "" {
			return s
		}
	}
	return nil
}
