package redfish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/stmcginnis/gofish"
)

// kind is the JSON type of a BIOS attribute's value.
type kind int

const (
	kindString kind = iota
	kindInteger
	kindNumber
	kindBool
	kindNull
)

func (k kind) String() string {
	return [...]string{"string", "integer", "number", "boolean", "null"}[k]
}

// BIOS is a snapshot of a system's BIOS attributes, rendered as text:
// numbers in decimal, booleans as true/false, strings as they are.
type BIOS struct {
	// Current are the attributes in effect.
	Current map[string]string
	// Pending are the attributes staged for the next reset. Some BMCs list
	// only the staged changes, others every attribute.
	Pending map[string]string

	kinds map[string]kind
}

// Canonical checks want against the attributes and renders each value the
// way Current does (" 8 " -> "8", "True" -> "true"), so that it compares
// equal when it is in effect. Unknown names give ErrUnknownAttribute
// naming all of them; a value that does not fit the attribute's type gives
// ErrInvalid.
func (b BIOS) Canonical(want map[string]string) (map[string]string, error) {
	var unknown []string
	for name := range want {
		if _, ok := b.kinds[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("attributes %s: %w", strings.Join(unknown, ", "), ErrUnknownAttribute)
	}
	out := make(map[string]string, len(want))
	for _, name := range slices.Sorted(maps.Keys(want)) {
		v, err := convert(b.kinds[name], want[name])
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", name, err)
		}
		out[name] = render(v)
	}
	return out, nil
}

// BIOS reads the current and the pending BIOS attributes.
func (c *Client) BIOS(ctx context.Context) (BIOS, error) {
	var b BIOS
	err := c.do(ctx, func(api *gofish.APIClient) error {
		doc, err := c.biosDoc(api)
		if err != nil {
			return err
		}
		b = BIOS{Current: map[string]string{}, Pending: map[string]string{}, kinds: map[string]kind{}}
		for name, v := range doc.Attributes {
			b.Current[name] = render(v)
			b.kinds[name] = kindOf(v)
		}
		if doc.settingsURI() == doc.ODataID {
			return nil // no separate settings object: nothing can be pending
		}
		pending, err := getJSON[biosDoc](api, doc.settingsURI())
		if err != nil {
			return fmt.Errorf("bios settings: %w", err)
		}
		for name, v := range pending.Attributes {
			b.Pending[name] = render(v)
		}
		return nil
	})
	if err != nil {
		return BIOS{}, c.errorf("get bios", err)
	}
	return b, nil
}

// BIOSAttributes returns the BIOS attributes in effect.
func (c *Client) BIOSAttributes(ctx context.Context) (map[string]string, error) {
	b, err := c.BIOS(ctx)
	return b.Current, err
}

// PendingBIOS returns the BIOS attributes staged for the next reset.
func (c *Client) PendingBIOS(ctx context.Context) (map[string]string, error) {
	b, err := c.BIOS(ctx)
	return b.Pending, err
}

// StageBIOS stages attribute values for the next reset. Every name must
// exist among the current attributes (else ErrUnknownAttribute naming the
// unknown ones, and nothing is staged); each value is converted to the
// attribute's JSON type. The BMC's own objections (an enumeration value
// not in its list, a read-only attribute) come back with its messages.
func (c *Client) StageBIOS(ctx context.Context, set map[string]string) error {
	if len(set) == 0 {
		return nil
	}
	err := c.do(ctx, func(api *gofish.APIClient) error {
		doc, err := c.biosDoc(api)
		if err != nil {
			return err
		}
		kinds := map[string]kind{}
		for name, v := range doc.Attributes {
			kinds[name] = kindOf(v)
		}
		var unknown []string
		for name := range set {
			if _, ok := kinds[name]; !ok {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("attributes %s: %w", strings.Join(unknown, ", "), ErrUnknownAttribute)
		}
		attrs := make(map[string]any, len(set))
		for _, name := range slices.Sorted(maps.Keys(set)) {
			v, err := convert(kinds[name], set[name])
			if err != nil {
				return fmt.Errorf("attribute %s: %w", name, err)
			}
			attrs[name] = v
		}
		body := map[string]any{"Attributes": attrs}
		if slices.Contains(doc.Settings.SupportedApplyTimes, "OnReset") {
			body["@Redfish.SettingsApplyTime"] = map[string]string{"ApplyTime": "OnReset"}
		}
		resp, err := api.Patch(doc.settingsURI(), body)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})
	if err != nil {
		return c.errorf("stage bios", err)
	}
	return nil
}

// biosDoc is a Bios resource (or its settings object).
type biosDoc struct {
	ODataID    string         `json:"@odata.id"`
	Attributes map[string]any `json:"Attributes"`
	Settings   struct {
		SettingsObject struct {
			ODataID string `json:"@odata.id"`
		}
		SupportedApplyTimes []string
	} `json:"@Redfish.Settings"`
}

func (d biosDoc) settingsURI() string {
	if d.Settings.SettingsObject.ODataID != "" {
		return d.Settings.SettingsObject.ODataID
	}
	return d.ODataID
}

// biosDoc fetches the system's Bios resource.
func (c *Client) biosDoc(api *gofish.APIClient) (biosDoc, error) {
	cs, err := c.computerSystem(api)
	if err != nil {
		return biosDoc{}, err
	}
	x, err := extras(cs)
	if err != nil {
		return biosDoc{}, err
	}
	if x.Bios.ODataID == "" {
		return biosDoc{}, fmt.Errorf("system %s has no bios resource: %w", c.systemID, ErrNotFound)
	}
	doc, err := getJSON[biosDoc](api, x.Bios.ODataID)
	if err != nil {
		return biosDoc{}, err
	}
	if doc.ODataID == "" {
		doc.ODataID = x.Bios.ODataID
	}
	return doc, nil
}

// getJSON fetches uri and decodes it, keeping numbers exact.
func getJSON[T any](api *gofish.APIClient, uri string) (T, error) {
	var v T
	resp, err := api.Get(uri)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return v, fmt.Errorf("read %s: %w", uri, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("decode %s: %v: %w", uri, err, ErrBMC)
	}
	return v, nil
}

func kindOf(v any) kind {
	switch v := v.(type) {
	case bool:
		return kindBool
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return kindInteger
		}
		return kindNumber
	case nil:
		return kindNull
	default:
		return kindString
	}
}

// convert turns text into a value of the given JSON type.
func convert(k kind, text string) (any, error) {
	switch k {
	case kindInteger:
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("value %q is not an integer: %w", text, ErrInvalid)
		}
		return n, nil
	case kindNumber:
		f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("value %q is not a number: %w", text, ErrInvalid)
		}
		return f, nil
	case kindBool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return nil, fmt.Errorf("value %q is not a boolean (true or false): %w", text, ErrInvalid)
		}
		return b, nil
	default:
		return text, nil
	}
}

// render writes a JSON value as text.
func render(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return strconv.FormatInt(n, 10)
		}
		if f, err := v.Float64(); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return v.String()
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}
