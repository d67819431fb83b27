package raid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"

	"underlay.dev/pkg/raidconf"
)

// DefaultCommandDir holds one file per hardware controller.
const DefaultCommandDir = "/etc/underlay/raid"

// CommandConfig describes a hardware RAID controller driven by commands.
// Every command is an argv list whose elements are Go text/template
// templates (see docs/raid.md for the fields); an element that renders
// empty is dropped, and the element "{{.Members}}" alone becomes one
// argument per member.
type CommandConfig struct {
	// Name is the controller's name in raidconf's "controller" field;
	// LoadCommands defaults it to the file's base name.
	Name string `json:"name"`
	// Layout prints the controller's volumes as JSON: {"volumes": [{"id",
	// "name", "level", "members", "size_bytes", "state", "device"}]}.
	Layout []string `json:"layout"`
	// Create builds one volume.
	Create []string `json:"create"`
	// Delete removes one volume.
	Delete []string `json:"delete"`
	// Verify, when set, runs after the built-in check (level, members,
	// state); it fails the volume by exiting non-zero.
	Verify []string `json:"verify,omitempty"`
	// HealthyStates are the layout states a usable volume may be in,
	// compared without regard to case. Default: optimal, ok, online,
	// active, clean, initializing, resync, resyncing, background_init.
	HealthyStates []string `json:"healthy_states,omitempty"`
	// Exec runs the commands (default RunCommand).
	Exec Exec `json:"-"`
}

var defaultHealthy = []string{"optimal", "ok", "online", "active", "clean", "initializing", "resync", "resyncing", "background_init"}

var commandNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Command is a hardware controller driven by commands.
type Command struct {
	c       CommandConfig
	layout  []*template.Template
	create  []*template.Template
	delete  []*template.Template
	verify  []*template.Template
	healthy map[string]bool
}

// LoadCommandConfig reads a controller file, YAML or JSON. Unknown fields
// are errors.
func LoadCommandConfig(path string) (CommandConfig, error) {
	var c CommandConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("raid controller file: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("raid controller file %s: %v: %w", path, err, ErrBadConfig)
	}
	return c, nil
}

// LoadCommands reads every *.yaml, *.yml and *.json file of dir as a
// controller; a missing dir holds none. A file's name (without extension)
// is its controller's name unless the file sets one.
func LoadCommands(dir string, exec Exec) ([]*Command, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raid controllers: %w", err)
	}
	var out []*Command
	seen := map[string]string{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		c, err := LoadCommandConfig(path)
		if err != nil {
			return nil, err
		}
		if c.Name == "" {
			c.Name = strings.TrimSuffix(e.Name(), ext)
		}
		if other, ok := seen[c.Name]; ok {
			return nil, fmt.Errorf("raid controller %q is defined by %s and %s: %w", c.Name, other, path, ErrBadConfig)
		}
		seen[c.Name] = path
		c.Exec = exec
		cmd, err := NewCommand(c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, cmd)
	}
	return out, nil
}

// NewCommand checks c and parses its templates.
func NewCommand(c CommandConfig) (*Command, error) {
	if !commandNameRE.MatchString(c.Name) {
		return nil, fmt.Errorf("raid controller name %q: want lowercase letters, digits, '-' or '_': %w", c.Name, ErrBadConfig)
	}
	if c.Name == raidconf.Software {
		return nil, fmt.Errorf("raid controller name %q is reserved for mdadm: %w", c.Name, ErrBadConfig)
	}
	if c.Exec == nil {
		c.Exec = RunCommand
	}
	cmd := &Command{c: c, healthy: map[string]bool{}}
	var err error
	for _, f := range []struct {
		name     string
		argv     []string
		dst      *[]*template.Template
		optional bool
	}{
		{"layout", c.Layout, &cmd.layout, false},
		{"create", c.Create, &cmd.create, false},
		{"delete", c.Delete, &cmd.delete, false},
		{"verify", c.Verify, &cmd.verify, true},
	} {
		if len(f.argv) == 0 {
			if f.optional {
				continue
			}
			return nil, fmt.Errorf("raid controller %s: %s command is required: %w", c.Name, f.name, ErrBadConfig)
		}
		if *f.dst, err = parseArgv(f.argv); err != nil {
			return nil, fmt.Errorf("raid controller %s: %s command: %w", c.Name, f.name, err)
		}
	}
	states := c.HealthyStates
	if len(states) == 0 {
		states = defaultHealthy
	}
	for _, s := range states {
		cmd.healthy[strings.ToLower(s)] = true
	}
	return cmd, nil
}

// membersArg is the argv element that expands to one argument per member.
const membersArg = "{{.Members}}"

var templateFuncs = template.FuncMap{"join": strings.Join, "lower": strings.ToLower, "upper": strings.ToUpper}

func parseArgv(argv []string) ([]*template.Template, error) {
	out := make([]*template.Template, len(argv))
	for i, a := range argv {
		if a == membersArg {
			continue // nil: expanded by render
		}
		t, err := template.New(fmt.Sprintf("arg%d", i)).Funcs(templateFuncs).Option("missingkey=error").Parse(a)
		if err != nil {
			return nil, fmt.Errorf("argument %d %q: %v: %w", i, a, err, ErrBadConfig)
		}
		out[i] = t
	}
	return out, nil
}

// TemplateData is what command templates see.
type TemplateData struct {
	// Name is the volume name.
	Name string
	// Level is Ironic's spelling ("1", "1+0"); MDLevel the md one
	// ("raid1", "raid10"); LevelDigits the digits ("1", "10") for
	// vendor syntax such as storcli's r1 / r10.
	Level, MDLevel, LevelDigits string
	// SizeBytes is 0 for all the members hold (size_gb MAX); SizeMiB and
	// SizeGiB are rounded down.
	SizeBytes        uint64
	SizeMiB, SizeGiB uint64
	Max              bool
	Root             bool
	// Members are drive IDs; MembersComma is them joined with ",".
	Members      []string
	MembersComma string
	// ID and Device are the volume's, as the layout reported them (delete
	// and verify).
	ID, Device string
}

func dataFor(v raidconf.Volume, devices []string) TemplateData {
	return TemplateData{
		Name: v.Name, Level: v.Level, MDLevel: raidconf.MDLevel(v.Level),
		LevelDigits: strings.ReplaceAll(v.Level, "+", ""),
		SizeBytes:   v.SizeBytes, SizeMiB: v.SizeBytes >> 20, SizeGiB: v.SizeBytes >> 30, Max: v.SizeBytes == 0,
		Root: v.Root, Members: devices, MembersComma: strings.Join(devices, ","),
	}
}

func render(ts []*template.Template, d TemplateData) ([]string, error) {
	var argv []string
	for _, t := range ts {
		if t == nil {
			argv = append(argv, d.Members...)
			continue
		}
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("%v: %w", err, ErrBadConfig)
		}
		if b.Len() > 0 {
			argv = append(argv, b.String())
		}
	}
	return argv, nil
}

func (c *Command) run(ctx context.Context, what string, ts []*template.Template, d TemplateData) ([]byte, error) {
	argv, err := render(ts, d)
	if err != nil {
		return nil, fmt.Errorf("raid controller %s: %s command: %w", c.c.Name, what, err)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("raid controller %s: %s command renders empty: %w", c.c.Name, what, ErrBadConfig)
	}
	out, err := c.c.Exec(ctx, argv)
	if err != nil {
		return out, fmt.Errorf("raid controller %s: %s: %w", c.c.Name, what, err)
	}
	return out, nil
}

// Name returns the controller's name.
func (c *Command) Name() string { return c.c.Name }

// layoutJSON is what the layout command prints.
type layoutJSON struct {
	Volumes []struct {
		ID        string   `json:"id"`
		Name      string   `json:"name"`
		Level     string   `json:"level"`
		Members   []string `json:"members"`
		SizeBytes uint64   `json:"size_bytes"`
		State     string   `json:"state"`
		Device    string   `json:"device"`
	} `json:"volumes"`
}

// Layout runs the layout command and parses its JSON.
func (c *Command) Layout(ctx context.Context) ([]Volume, error) {
	out, err := c.run(ctx, "layout", c.layout, TemplateData{})
	if err != nil {
		return nil, err
	}
	var l layoutJSON
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("raid controller %s: layout output %q: %v: %w", c.c.Name, clip(out), err, ErrBadConfig)
	}
	var vols []Volume
	for i, v := range l.Volumes {
		lvl, err := raidconf.NormalizeLevel(v.Level)
		if err != nil {
			return nil, fmt.Errorf("raid controller %s: layout volume %d (%s): level %q: %w", c.c.Name, i, v.ID, v.Level, ErrBadConfig)
		}
		if v.ID == "" {
			return nil, fmt.Errorf("raid controller %s: layout volume %d has no id: %w", c.c.Name, i, ErrBadConfig)
		}
		vols = append(vols, Volume{
			Name: v.Name, Level: lvl, Controller: c.c.Name, UUID: v.ID, State: v.State,
			Members: v.Members, SizeBytes: v.SizeBytes, Device: v.Device,
		})
	}
	return vols, nil
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// find returns the volume over exactly devices.
func (c *Command) find(ctx context.Context, devices []string) (Volume, error) {
	vols, err := c.Layout(ctx)
	if err != nil {
		return Volume{}, err
	}
	for _, v := range vols {
		if sameSet(v.Members, devices) {
			return v, nil
		}
	}
	have := make([]string, 0, len(vols))
	for _, v := range vols {
		have = append(have, v.UUID+"="+strings.Join(v.Members, "+"))
	}
	sort.Strings(have)
	return Volume{}, fmt.Errorf("raid controller %s: no volume over %s (layout has %s): %w",
		c.c.Name, strings.Join(devices, ", "), listOrNone(have), ErrVerify)
}

// Create runs the create command, then finds the new volume in the layout.
func (c *Command) Create(ctx context.Context, v raidconf.Volume, devices []string) (Volume, error) {
	if _, err := c.run(ctx, "create "+v.Name, c.create, dataFor(v, devices)); err != nil {
		return Volume{}, err
	}
	return c.find(ctx, devices)
}

// Delete runs the delete command for v.
func (c *Command) Delete(ctx context.Context, v Volume) error {
	d := TemplateData{Name: v.Name, Level: v.Level, MDLevel: raidconf.MDLevel(v.Level),
		LevelDigits: strings.ReplaceAll(v.Level, "+", ""), SizeBytes: v.SizeBytes,
		Members: v.Members, MembersComma: strings.Join(v.Members, ","), ID: v.UUID, Device: v.Device}
	_, err := c.run(ctx, "delete "+v.Name, c.delete, d)
	return err
}

// Verify checks the layout (members, level, a healthy state, size) and
// runs the verify command when there is one.
func (c *Command) Verify(ctx context.Context, v raidconf.Volume, devices []string) error {
	live, err := c.find(ctx, devices)
	if err != nil {
		return fmt.Errorf("verify %s: %w", v.Name, err)
	}
	if err := checkVolume(v, live, func(s string) bool { return c.healthy[strings.ToLower(s)] }); err != nil {
		return err
	}
	if c.verify == nil {
		return nil
	}
	d := dataFor(v, devices)
	d.ID, d.Device = live.UUID, live.Device
	if _, err := c.run(ctx, "verify "+v.Name, c.verify, d); err != nil {
		return fmt.Errorf("%w: %w", err, ErrVerify)
	}
	return nil
}
