package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"
)

// Output formats accepted by -o/--output.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// errBadFormat is returned for an unknown -o value.
var errBadFormat = errors.New("unknown output format")

// printer writes results in the format chosen with -o. Tables are for
// humans; json and yaml carry every field of the protobuf message, named as
// in the .proto files.
type printer struct {
	w      io.Writer
	format string
	now    func() time.Time
}

func newPrinter(w io.Writer, format string, now func() time.Time) (*printer, error) {
	switch format {
	case formatTable, formatJSON, formatYAML:
	default:
		return nil, usagef("%w %q: use table, json or yaml", errBadFormat, format)
	}
	return &printer{w: w, format: format, now: now}, nil
}

// print writes m as json or yaml, or calls table with a tabwriter for the
// table format.
func (p *printer) print(m proto.Message, table func(tw io.Writer)) error {
	switch p.format {
	case formatJSON:
		b, err := marshalJSON(m, true)
		if err != nil {
			return err
		}
		_, err = p.w.Write(b)
		return err
	case formatYAML:
		b, err := marshalYAML(m)
		if err != nil {
			return err
		}
		_, err = p.w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// line writes m as a single line of JSON (for streams with -o json), or
// text for the other formats.
func (p *printer) line(m proto.Message, text string) error {
	if p.format == formatJSON {
		b, err := marshalJSON(m, false)
		if err != nil {
			return err
		}
		_, err = p.w.Write(b)
		return err
	}
	if p.format == formatYAML {
		b, err := marshalYAML(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "---\n%s", b)
		return err
	}
	_, err := fmt.Fprintln(p.w, text)
	return err
}

// marshalJSON renders m with proto field names. protojson deliberately
// varies its whitespace between builds, so the output is re-indented with
// encoding/json to make it stable. The result ends in a newline.
func marshalJSON(m proto.Message, multiline bool) ([]byte, error) {
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("compact json: %w", err)
	}
	if multiline {
		compact := buf.Bytes()
		var out bytes.Buffer
		if err := json.Indent(&out, compact, "", "  "); err != nil {
			return nil, fmt.Errorf("indent json: %w", err)
		}
		buf = out
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func marshalYAML(m proto.Message) ([]byte, error) {
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	b, err := yaml.JSONToYAML(raw)
	if err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	return b, nil
}

// row writes one tab-separated table row.
func row(w io.Writer, cols ...string) {
	fmt.Fprintln(w, strings.Join(cols, "\t"))
}

// kv writes "key:<tab>value" lines for detail views.
func kv(w io.Writer, key, value string) {
	if value == "" {
		value = "-"
	}
	fmt.Fprintf(w, "%s:\t%s\n", key, value)
}

// ago renders a timestamp relative to now: "3m ago" in the past, "in 2h"
// in the future and "-" when unset. Every table uses this form.
func (p *printer) ago(ts *timestamppb.Timestamp) string {
	if ts == nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return "-"
	}
	d := p.now().Sub(ts.AsTime())
	if d < 0 {
		return "in " + humanDuration(-d)
	}
	return humanDuration(d) + " ago"
}

// stamp renders a timestamp as RFC3339 in UTC, or "-" when unset. Event logs
// use it, since their lines are read later.
func stamp(ts *timestamppb.Timestamp) string {
	if ts == nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// humanDuration is a short, rounded-down duration: 45s, 12m, 5h, 3d.
func humanDuration(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
}

// enumName turns MACHINE_STATE_READY into "ready" given the prefix
// "MACHINE_STATE_"; the zero value prints as "-".
func enumName(e protoreflect.Enum, prefix string) string {
	if e.Number() == 0 {
		return "-"
	}
	name := string(e.Descriptor().Values().ByNumber(e.Number()).Name())
	if name == "" {
		return fmt.Sprintf("%d", e.Number())
	}
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

// parseEnum is the inverse of enumName over the values of desc; it returns
// the number and the list of valid names for error messages.
func parseEnum(desc protoreflect.EnumDescriptor, prefix, s string) (protoreflect.EnumNumber, []string, bool) {
	var names []string
	vals := desc.Values()
	for i := range vals.Len() {
		v := vals.Get(i)
		if v.Number() == 0 {
			continue
		}
		n := strings.ToLower(strings.TrimPrefix(string(v.Name()), prefix))
		names = append(names, n)
		if strings.EqualFold(s, n) {
			return v.Number(), names, true
		}
	}
	return 0, names, false
}

// labelString renders labels as sorted k=v pairs separated by commas.
func labelString(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// bytesString renders a byte count with a binary unit: 512 B, 8.0 GiB.
func bytesString(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
