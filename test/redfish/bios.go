package redfish

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
)

// check validates an attribute definition and returns its value in the
// simulator's representation (string, int, bool).
func (a Attribute) check() (any, error) {
	if a.Name == "" {
		return nil, fmt.Errorf("name is empty: %w", ErrConfig)
	}
	if a.Type != TypeEnumeration && len(a.Allowed) > 0 {
		return nil, fmt.Errorf("attribute %s: allowed values on a %s attribute: %w", a.Name, a.Type, ErrConfig)
	}
	switch a.Type {
	case TypeString, TypeInteger, TypeBoolean:
	case TypeEnumeration:
		if len(a.Allowed) == 0 {
			return nil, fmt.Errorf("attribute %s: enumeration without allowed values: %w", a.Name, ErrConfig)
		}
	default:
		return nil, fmt.Errorf("attribute %s: type %q, want String, Integer, Boolean or Enumeration: %w", a.Name, a.Type, ErrConfig)
	}
	v, ok := a.value(a.Value)
	if !ok {
		return nil, fmt.Errorf("attribute %s: value %v (%T) does not fit type %s %v: %w", a.Name, a.Value, a.Value, a.Type, a.Allowed, ErrConfig)
	}
	return v, nil
}

// value converts v (from a config or a decoded request) to the
// attribute's representation; false when it does not fit.
func (a Attribute) value(v any) (any, bool) {
	switch a.Type {
	case TypeString:
		s, ok := v.(string)
		return s, ok
	case TypeEnumeration:
		s, ok := v.(string)
		return s, ok && slices.Contains(a.Allowed, s)
	case TypeBoolean:
		b, ok := v.(bool)
		return b, ok
	case TypeInteger:
		switch n := v.(type) {
		case int:
			return n, true
		case int64:
			return int(n), true
		case float64:
			if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
				return int(n), true
			}
		case json.Number:
			if i, err := n.Int64(); err == nil {
				return int(i), true
			}
		}
	}
	return nil, false
}

// Messages for property errors.
func propertyUnknown(name string) message {
	return msg("PropertyUnknown",
		fmt.Sprintf("The property %s is not in the list of valid properties for the resource.", name),
		"Remove the unknown property from the request body and resubmit the request if the operation failed.", name)
}

func propertyNotWritable(name string) message {
	return msg("PropertyNotWritable",
		fmt.Sprintf("The property %s is a read only property and cannot be assigned a value.", name),
		"Remove the property from the request body and resubmit the request if the operation failed.", name)
}

func typeError(v any, name string) message {
	text := fmt.Sprint(v)
	if b, err := json.Marshal(v); err == nil {
		text = string(b)
	}
	return msg("PropertyValueTypeError",
		fmt.Sprintf("The value %s for the property %s is of a different type than the property can accept.", text, name),
		"Correct the value for the property in the request body and resubmit the request if the operation failed.", text, name)
}

func notInList(v, name string) message {
	return msg("PropertyValueNotInList",
		fmt.Sprintf("The value %s for the property %s is not in the list of acceptable values.", v, name),
		"Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.", v, name)
}

func (s *system) biosResource() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]any{
		"@odata.id":         s.uri() + "/Bios",
		"@odata.type":       "#Bios.v1_2_0.Bios",
		"Id":                "Bios",
		"Name":              "BIOS Configuration Current Settings",
		"AttributeRegistry": "BiosAttributeRegistry.v1_0_0",
		"Attributes":        maps.Clone(s.attrs),
		"@Redfish.Settings": map[string]any{
			"@odata.type":         "#Settings.v1_3_5.Settings",
			"SettingsObject":      link(s.uri() + "/Bios/Settings"),
			"SupportedApplyTimes": []string{"OnReset"},
		},
		"Actions": map[string]any{"#Bios.ResetBios": map[string]string{
			"target": s.uri() + "/Bios/Actions/Bios.ResetBios",
		}},
	}
}

func (s *system) settingsResource() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]any{
		"@odata.id":   s.uri() + "/Bios/Settings",
		"@odata.type": "#Bios.v1_2_0.Bios",
		"Id":          "Settings",
		"Name":        "BIOS Configuration Pending Settings",
		"Attributes":  maps.Clone(s.pending),
	}
}

func (s *system) serveBios(w http.ResponseWriter, r *http.Request, seg []string) {
	switch {
	case len(seg) == 0:
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet)
			return
		}
		writeJSON(w, http.StatusOK, s.biosResource())
	case len(seg) == 1 && seg[0] == "Settings":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, s.settingsResource())
		case http.MethodPatch:
			s.stage(w, r)
		default:
			methodNotAllowed(w, r, http.MethodGet, http.MethodPatch)
		}
	case len(seg) == 2 && seg[0] == "Actions" && seg[1] == "Bios.ResetBios":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r, http.MethodPost)
			return
		}
		s.mu.Lock()
		s.pending = maps.Clone(s.defaults)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		notFound(w, r)
	}
}

// stage validates a PATCH of the settings object and, when every
// attribute is acceptable, adds them to the pending settings (all or
// nothing).
func (s *system) stage(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var errs []message
	for _, name := range slices.Sorted(maps.Keys(body)) {
		switch name {
		case "Attributes", "@Redfish.SettingsApplyTime":
		default:
			errs = append(errs, propertyUnknown(name))
		}
	}
	if at, present := body["@Redfish.SettingsApplyTime"]; present {
		obj, _ := at.(map[string]any)
		if t, _ := obj["ApplyTime"].(string); t != "OnReset" {
			errs = append(errs, notInList(fmt.Sprint(obj["ApplyTime"]), "@Redfish.SettingsApplyTime/ApplyTime"))
		}
	}
	attrs, isObj := body["Attributes"].(map[string]any)
	if !isObj {
		errs = append(errs, msg("PropertyMissing",
			"The property Attributes is a required property and must be included in the request.",
			"Ensure that the property is in the request body and has a valid value.", "Attributes"))
	}
	staged := map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		def, known := s.registry[name]
		if !known {
			errs = append(errs, propertyUnknown(name))
			continue
		}
		v, fits := def.value(attrs[name])
		switch {
		case fits:
			staged[name] = v
		case def.Type == TypeEnumeration:
			if str, isString := attrs[name].(string); isString {
				errs = append(errs, notInList(str, name))
				continue
			}
			errs = append(errs, typeError(attrs[name], name))
		default:
			errs = append(errs, typeError(attrs[name], name))
		}
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, errs...)
		return
	}
	s.mu.Lock()
	maps.Copy(s.pending, staged)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@Message.ExtendedInfo": []message{
		msg("Success", "The request completed successfully.", "None"),
	}})
}
