package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// Human renderings of the provisioning messages.

// secretText stands in for a secret value in every table.
const secretText = "<secret>"

func stepStateName(s underlayv1.StepState) string { return enumName(s, "STEP_STATE_") }
func planStateName(s underlayv1.PlanState) string { return enumName(s, "PLAN_STATE_") }

// cell makes s safe for one table cell: control characters that would break
// the layout are escaped, and an empty value is "-".
var cellEscaper = strings.NewReplacer("\n", `\n`, "\t", `\t`, "\r", `\r`)

func cell(s string) string { return orDash(cellEscaper.Replace(s)) }

// list joins names with commas, or "-".
func list(names []string) string { return orDash(strings.Join(names, ",")) }

// seconds renders a duration in whole seconds compactly (90 -> 1m30s), or
// "-" for none.
func seconds(n int64) string {
	if n <= 0 {
		return "-"
	}
	s := (time.Duration(n) * time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// defVersion renders a definition version, "-" when unset.
func defVersion(m *underlayv1.DefinitionMeta) string {
	if m.GetVersion() == 0 {
		return "-"
	}
	return fmt.Sprint(m.GetVersion())
}

// took is how long something ran: from started to finished, or to now when
// it is still running; "-" when it has not started.
func (p *printer) took(started, finished *timestamppb.Timestamp) string {
	if started == nil || (started.GetSeconds() == 0 && started.GetNanos() == 0) {
		return "-"
	}
	end := p.now()
	if finished != nil && (finished.GetSeconds() != 0 || finished.GetNanos() != 0) {
		end = finished.AsTime()
	}
	d := end.Sub(started.AsTime())
	if d < 0 {
		d = 0
	}
	return humanDuration(d)
}

func applyTable(w io.Writer, r *underlayv1.ApplyDefinitionsResponse, dryRun bool) {
	row(w, "KIND", "NAME", "VERSION", "CHANGE", "SOURCE")
	counts := map[string]int{}
	for _, c := range r.GetResults() {
		v := "-"
		if c.GetVersion() > 0 {
			v = fmt.Sprint(c.GetVersion())
		}
		row(w, c.GetKind(), cell(c.GetName()), v, cell(c.GetChange()), cell(c.GetSource()))
		counts[c.GetChange()]++
	}
	fmt.Fprintln(w)
	var parts []string
	for _, ch := range []string{"created", "updated", "unchanged"} {
		parts = append(parts, fmt.Sprintf("%d %s", counts[ch], ch))
	}
	if dryRun {
		fmt.Fprintf(w, "Dry run, nothing was applied: %s.\n", strings.Join(parts, ", "))
		return
	}
	fmt.Fprintf(w, "Applied at index %d: %s.\n", r.GetIndex(), strings.Join(parts, ", "))
}

func taskKindText(t *underlayv1.Task) string {
	if t.GetAction() != nil {
		return "action " + t.GetAction().GetName()
	}
	return "script"
}

func tasksTable(w io.Writer, defs []*underlayv1.Definition) {
	row(w, "NAME", "VERSION", "KIND", "INPUTS", "OUTPUTS", "TIMEOUT", "RETRIES", "SOURCE")
	for _, d := range defs {
		t := d.GetTask()
		if t == nil {
			continue
		}
		var in, out []string
		for _, s := range t.GetInputs() {
			in = append(in, s.GetName())
		}
		for _, s := range t.GetOutputs() {
			out = append(out, s.GetName())
		}
		row(w, t.GetName(), defVersion(t.GetMeta()), taskKindText(t), list(in), list(out),
			seconds(t.GetTimeoutSeconds()), fmt.Sprint(t.GetRetries()), cell(t.GetMeta().GetSource()))
	}
}

// hardwareFlags names the hardware settings a role has: bios, raid, network.
func hardwareFlags(h *underlayv1.HardwareProfile) string {
	var f []string
	if len(h.GetBios()) > 0 {
		f = append(f, "bios")
	}
	if h.GetRaidJson() != "" {
		f = append(f, "raid")
	}
	if h.GetNetworkJson() != "" {
		f = append(f, "network")
	}
	return list(f)
}

func rolesTable(w io.Writer, defs []*underlayv1.Definition) {
	row(w, "NAME", "VERSION", "TASKS", "REQUIRES", "PROFILES", "HARDWARE")
	for _, d := range defs {
		r := d.GetRole()
		if r == nil {
			continue
		}
		var req []string
		for _, l := range r.GetRequires() {
			req = append(req, l.GetRole()+"/"+l.GetOutput())
		}
		row(w, r.GetName(), defVersion(r.GetMeta()), list(r.GetTasks()), list(req), list(r.GetProfiles()),
			hardwareFlags(r.GetHardware()))
	}
}

func paramNames(params map[string]*underlayv1.ParamValue) string {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	return list(names)
}

func profilesTable(w io.Writer, defs []*underlayv1.Definition) {
	row(w, "NAME", "VERSION", "PARAMS")
	for _, d := range defs {
		p := d.GetProfile()
		if p == nil {
			continue
		}
		row(w, p.GetName(), defVersion(p.GetMeta()), paramNames(p.GetParams()))
	}
}

// rulesTable lists rules in evaluation order: priority, then name.
func rulesTable(w io.Writer, defs []*underlayv1.Definition) {
	var rules []*underlayv1.Rule
	for _, d := range defs {
		if r := d.GetRule(); r != nil {
			rules = append(rules, r)
		}
	}
	sort.SliceStable(rules, func(i, j int) bool {
		if rules[i].GetPriority() != rules[j].GetPriority() {
			return rules[i].GetPriority() < rules[j].GetPriority()
		}
		return rules[i].GetName() < rules[j].GetName()
	})
	row(w, "NAME", "PRIORITY", "MATCH", "ROLE", "PROFILES", "LABELS")
	for _, r := range rules {
		row(w, r.GetName(), fmt.Sprint(r.GetPriority()), cell(r.GetMatch()), orDash(r.GetRole()),
			list(r.GetProfiles()), labelString(r.GetLabels()))
	}
}

func roleStatusTable(w io.Writer, roles []*underlayv1.RoleStatus) {
	row(w, "ROLE", "FAILURES", "PAUSED", "REASON", "FAILED MACHINES")
	for _, r := range roles {
		paused := "no"
		if r.GetPaused() {
			paused = "yes"
		}
		row(w, r.GetRole(), fmt.Sprint(r.GetFailures()), paused, cell(r.GetReason()), list(r.GetFailedMachines()))
	}
}

func paramValueText(value string, secret bool) string {
	if secret {
		return secretText
	}
	return cell(value)
}

func paramsTable(w io.Writer, machineID string, r *underlayv1.ShowParamsResponse) {
	kv(w, "Machine", machineID)
	kv(w, "Role", r.GetRole())
	fmt.Fprintln(w)
	row(w, "NAME", "VALUE", "SOURCE", "OVERRIDES")
	for _, p := range r.GetParams() {
		row(w, p.GetName(), paramValueText(p.GetValue(), p.GetSecret()), cell(p.GetSource()),
			cell(strings.Join(p.GetOverrides(), ", ")))
	}
}

// attempts renders attempt/max, or the attempt alone when max is unknown.
func attempts(attempt, maxAttempts int32) string {
	switch {
	case attempt == 0:
		return "-"
	case maxAttempts > 0:
		return fmt.Sprintf("%d/%d", attempt, maxAttempts)
	}
	return fmt.Sprint(attempt)
}

// planView prints a plan: a header, its steps with the summary lines of
// hardware steps indented below their row, and its outputs.
func (p *printer) planView(w io.Writer, pl *underlayv1.Plan) {
	kv(w, "Machine", pl.GetMachineId())
	role := pl.GetRole()
	if role != "" && pl.GetRoleVersion() > 0 {
		role += fmt.Sprintf("@%d", pl.GetRoleVersion())
	}
	kv(w, "Role", role)
	kv(w, "Generation", fmt.Sprint(pl.GetGeneration()))
	state := planStateName(pl.GetState())
	if pl.GetRedeploy() {
		state += " (redeploy)"
	}
	kv(w, "State", state)
	if pl.GetReason() != "" {
		kv(w, "Reason", cell(pl.GetReason()))
	}
	kv(w, "Updated", p.ago(pl.GetUpdated()))
	fmt.Fprintln(w)

	var g grid
	g.add("STEP", "NAME", "KIND", "STATE", "ATTEMPT", "STARTED", "DURATION", "REASON")
	for _, s := range pl.GetSteps() {
		g.add(fmt.Sprint(s.GetIndex()), s.GetName(), orDash(s.GetKind()), stepStateName(s.GetState()),
			attempts(s.GetAttempt(), s.GetMaxAttempts()), p.ago(s.GetStarted()),
			p.took(s.GetStarted(), s.GetFinished()), cell(s.GetReason()))
		for _, line := range s.GetSummary() {
			g.note(cellEscaper.Replace(line))
		}
	}
	g.write(w)

	if len(pl.GetOutputs()) > 0 {
		fmt.Fprintln(w)
		row(w, "OUTPUT", "VALUE", "STEP", "JOB")
		for _, o := range pl.GetOutputs() {
			row(w, o.GetName(), paramValueText(o.GetValue(), o.GetSecret()), orDash(o.GetStep()), orDash(o.GetJobId()))
		}
	}
}

// stepLine is one line of --wait progress: "step 2 join-cluster: running".
func stepLine(s *underlayv1.Step) string {
	line := fmt.Sprintf("step %d %s: %s", s.GetIndex(), s.GetName(), stepStateName(s.GetState()))
	var extra []string
	if s.GetAttempt() > 1 {
		extra = append(extra, "attempt "+attempts(s.GetAttempt(), s.GetMaxAttempts()))
	}
	if s.GetState() == underlayv1.StepState_STEP_STATE_FAILED && s.GetExitCode() != 0 {
		extra = append(extra, fmt.Sprintf("exit %d", s.GetExitCode()))
	}
	if s.GetReason() != "" {
		extra = append(extra, cellEscaper.Replace(s.GetReason()))
	}
	if len(extra) > 0 {
		line += " (" + strings.Join(extra, ", ") + ")"
	}
	return line
}

// finishedJob reports whether a job's exit code means something.
func finishedJob(s underlayv1.StepState) bool {
	return s == underlayv1.StepState_STEP_STATE_SUCCEEDED || s == underlayv1.StepState_STEP_STATE_FAILED
}

func (p *printer) jobsTable(w io.Writer, jobs []*underlayv1.Job) {
	row(w, "JOB", "STEP", "ATTEMPT", "STATE", "EXIT", "STARTED", "DURATION", "NODE", "ERROR")
	for _, j := range jobs {
		exit := "-"
		if finishedJob(j.GetState()) {
			exit = fmt.Sprint(j.GetExitCode())
		}
		row(w, j.GetId(), fmt.Sprintf("%d:%s", j.GetStep(), j.GetStepName()), attempts(j.GetAttempt(), 0),
			stepStateName(j.GetState()), exit, p.ago(j.GetStarted()), p.took(j.GetStarted(), j.GetFinished()),
			orDash(j.GetNode()), cell(j.GetError()))
	}
}

// grid is a table whose rows may carry free-form note lines, printed
// indented under the row without disturbing the columns (a tabwriter would
// end its column block at such a line). Columns are separated like the
// tabwriter tables: two spaces, the last column unpadded.
type grid struct {
	rows  [][]string
	notes map[int][]string
}

func (g *grid) add(cols ...string) { g.rows = append(g.rows, cols) }

// note adds a line under the last row.
func (g *grid) note(line string) {
	if g.notes == nil {
		g.notes = map[int][]string{}
	}
	i := len(g.rows) - 1
	g.notes[i] = append(g.notes[i], line)
}

func (g *grid) write(w io.Writer) {
	var widths []int
	for _, r := range g.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	indent := ""
	if len(widths) > 1 {
		indent = strings.Repeat(" ", widths[0]+2)
	}
	for i, r := range g.rows {
		var b strings.Builder
		for j, c := range r {
			b.WriteString(c)
			if j < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[j]-utf8.RuneCountInString(c)+2))
			}
		}
		fmt.Fprintln(w, b.String())
		for _, n := range g.notes[i] {
			fmt.Fprintln(w, indent+n)
		}
	}
}
