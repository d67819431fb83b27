package redfish

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"
)

// Reset types the simulator implements.
var allResetTypes = []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "GracefulRestart", "PowerCycle"}

// Boot source override values.
var (
	bootTargets = []string{"None", "Pxe", "Hdd"}
	bootEnabled = []string{"Disabled", "Once", "Continuous"}
	bootModes   = []string{"Legacy", "UEFI"}
)

// powerTimeout bounds what a reset asks of the power driver; the action
// continues when the client goes away, as on a real BMC.
const powerTimeout = 2 * time.Minute

// system is one simulated ComputerSystem.
type system struct {
	cfg      SystemConfig
	registry map[string]Attribute
	defaults map[string]any
	resets   []string

	mu          sync.Mutex // held across power actions: they are serialised
	attrs       map[string]any
	pending     map[string]any
	bootTarget  string
	bootEnabled string
	bootMode    string
	boots       []BootRecord
	lastState   string
}

func newSystem(sc SystemConfig) (*system, error) {
	if !isID(sc.ID) {
		return nil, fmt.Errorf("id %q: want a non-empty URI segment: %w", sc.ID, ErrConfig)
	}
	if sc.UUID == "" {
		sc.UUID = newUUID()
	}
	if sc.Power == nil {
		sc.Power = &MemoryPower{}
	}
	s := &system{cfg: sc, registry: map[string]Attribute{}, attrs: map[string]any{}, pending: map[string]any{},
		bootTarget: "None", bootEnabled: "Disabled", bootMode: "UEFI", lastState: "Off"}
	for i, a := range sc.Attributes {
		v, err := a.check()
		if err != nil {
			return nil, fmt.Errorf("attributes[%d]: %w", i, err)
		}
		if _, dup := s.registry[a.Name]; dup {
			return nil, fmt.Errorf("attributes[%d]: duplicate name %q: %w", i, a.Name, ErrConfig)
		}
		s.registry[a.Name] = a
		s.attrs[a.Name] = v
	}
	s.defaults = maps.Clone(s.attrs)
	s.resets = sc.ResetTypes
	if len(s.resets) == 0 {
		s.resets = allResetTypes
	}
	for _, rt := range s.resets {
		if !slices.Contains(allResetTypes, rt) {
			return nil, fmt.Errorf("reset type %q, want one of %v: %w", rt, allResetTypes, ErrConfig)
		}
	}
	return s, nil
}

func (s *system) uri() string { return "/redfish/v1/Systems/" + s.cfg.ID }

// state asks the hardware for its power state (with s.mu held).
func (s *system) state(ctx context.Context) string {
	st, err := s.cfg.Power.State(ctx)
	if err == nil && (st == "On" || st == "Off") {
		s.lastState = st
	}
	return s.lastState
}

func (s *system) resource(ctx context.Context) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]any{
		"@odata.id":    s.uri(),
		"@odata.type":  "#ComputerSystem.v1_13_0.ComputerSystem",
		"Id":           s.cfg.ID,
		"Name":         "System " + s.cfg.ID,
		"SystemType":   "Physical",
		"UUID":         s.cfg.UUID,
		"Manufacturer": s.cfg.Manufacturer,
		"Model":        s.cfg.Model,
		"SerialNumber": s.cfg.Serial,
		"PowerState":   s.state(ctx),
		"Status":       map[string]string{"State": "Enabled", "Health": "OK"},
		"Boot": map[string]any{
			"BootSourceOverrideTarget":                         s.bootTarget,
			"BootSourceOverrideTarget@Redfish.AllowableValues": bootTargets,
			"BootSourceOverrideEnabled":                        s.bootEnabled,
			"BootSourceOverrideMode":                           s.bootMode,
		},
		"Bios": link(s.uri() + "/Bios"),
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target":                            s.uri() + "/Actions/ComputerSystem.Reset",
			"ResetType@Redfish.AllowableValues": s.resets,
		}},
		"Links": map[string]any{
			"Chassis":   links("/redfish/v1/Chassis/" + s.cfg.ID),
			"ManagedBy": links("/redfish/v1/Managers/BMC"),
		},
	}
}

func (b *BMC) systemURIs() []string {
	var uris []string
	for _, s := range b.systems {
		uris = append(uris, s.uri())
	}
	return uris
}

func (b *BMC) serveSystems(w http.ResponseWriter, r *http.Request, seg []string) {
	if len(seg) == 0 {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet)
			return
		}
		writeJSON(w, http.StatusOK, collection("/redfish/v1/Systems", "ComputerSystemCollection", "Computer System Collection", b.systemURIs()))
		return
	}
	s := b.byID[seg[0]]
	if s == nil {
		notFound(w, r)
		return
	}
	switch rest := seg[1:]; {
	case len(rest) == 0:
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, s.resource(r.Context()))
		case http.MethodPatch:
			s.patch(w, r)
		default:
			methodNotAllowed(w, r, http.MethodGet, http.MethodPatch)
		}
	case len(rest) == 2 && rest[0] == "Actions" && rest[1] == "ComputerSystem.Reset":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r, http.MethodPost)
			return
		}
		b.reset(w, r, s)
	case rest[0] == "Bios":
		s.serveBios(w, r, rest[1:])
	default:
		notFound(w, r)
	}
}

// patch updates the system; only Boot is writable.
func (s *system) patch(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	current := s.resource(r.Context())
	var errs []message
	for _, name := range slices.Sorted(maps.Keys(body)) {
		if name == "Boot" {
			continue
		}
		if _, known := current[name]; known {
			errs = append(errs, propertyNotWritable(name))
		} else {
			errs = append(errs, propertyUnknown(name))
		}
	}
	boot, isObj := body["Boot"].(map[string]any)
	if _, present := body["Boot"]; present && !isObj {
		errs = append(errs, typeError(body["Boot"], "Boot"))
	}
	update := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(boot)) {
		allowed := map[string][]string{
			"BootSourceOverrideTarget":  bootTargets,
			"BootSourceOverrideEnabled": bootEnabled,
			"BootSourceOverrideMode":    bootModes,
		}[name]
		if allowed == nil {
			errs = append(errs, propertyUnknown("Boot/"+name))
			continue
		}
		v, isString := boot[name].(string)
		switch {
		case !isString:
			errs = append(errs, typeError(boot[name], "Boot/"+name))
		case !slices.Contains(allowed, v):
			errs = append(errs, notInList(v, "Boot/"+name))
		default:
			update[name] = v
		}
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, errs...)
		return
	}
	s.mu.Lock()
	if v, ok := update["BootSourceOverrideTarget"]; ok {
		s.bootTarget = v
	}
	if v, ok := update["BootSourceOverrideEnabled"]; ok {
		s.bootEnabled = v
	}
	if v, ok := update["BootSourceOverrideMode"]; ok {
		s.bootMode = v
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@Message.ExtendedInfo": []message{
		msg("Success", "The request completed successfully.", "None"),
	}})
}

// reset performs ComputerSystem.Reset.
func (b *BMC) reset(w http.ResponseWriter, r *http.Request, s *system) {
	const action = "ComputerSystem.Reset"
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(body)) {
		if name != "ResetType" {
			writeError(w, http.StatusBadRequest, msg("ActionParameterUnknown",
				fmt.Sprintf("The action %s was submitted with the invalid parameter %s.", action, name),
				"Correct the invalid parameter and resubmit the request.", action, name))
			return
		}
	}
	raw, present := body["ResetType"]
	rt, isString := raw.(string)
	switch {
	case !present:
		writeError(w, http.StatusBadRequest, msg("ActionParameterMissing",
			fmt.Sprintf("The action %s requires the parameter ResetType to be present in the request body.", action),
			"Supply the action with the required parameter in the request body when the request is resubmitted.", action, "ResetType"))
		return
	case !isString || !slices.Contains(s.resets, rt):
		v := fmt.Sprint(raw)
		writeError(w, http.StatusBadRequest, msg("ActionParameterValueNotInList",
			fmt.Sprintf("The value %s for the parameter ResetType in the action %s is not in the list of acceptable values.", v, action),
			"Choose a value from the enumeration list that the implementation can support and resubmit the request.", v, "ResetType", action))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), powerTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	on := s.state(ctx) == "On"
	p := s.cfg.Power
	var err error
	switch {
	case rt == "On" && on, rt != "On" && rt != "PowerCycle" && !on:
		want := map[bool]string{true: "on", false: "off"}[on]
		writeError(w, http.StatusConflict, msg("OperationNotAllowed",
			fmt.Sprintf("The %s reset is not possible because the system is already powered %s.", rt, want),
			"Check the power state of the system and resubmit the request."))
		return
	case rt == "On", rt == "PowerCycle" && !on:
		err = s.boot(rt, func(dev string) error { return p.PowerOn(ctx, dev) })
	case rt == "ForceOff":
		err = p.PowerOff(ctx, true)
	case rt == "GracefulShutdown":
		err = p.PowerOff(ctx, false)
	case rt == "ForceRestart":
		err = s.boot(rt, func(dev string) error { return p.Reset(ctx, dev) })
	case rt == "GracefulRestart":
		err = s.boot(rt, func(dev string) error {
			if err := p.PowerOff(ctx, false); err != nil {
				return err
			}
			return p.PowerOn(ctx, dev)
		})
	case rt == "PowerCycle":
		err = s.boot(rt, func(dev string) error {
			if err := p.PowerOff(ctx, true); err != nil {
				return err
			}
			return p.PowerOn(ctx, dev)
		})
	}
	if err != nil {
		b.log.Error("redfish reset failed", "system", s.cfg.ID, "reset_type", rt, "err", err)
		writeError(w, http.StatusInternalServerError, msg("InternalError",
			fmt.Sprintf("The request failed due to an internal service error: %v.", err),
			"Resubmit the request. If the problem persists, consider resetting the service."))
		return
	}
	s.state(ctx)
	b.log.Info("redfish reset", "system", s.cfg.ID, "reset_type", rt, "power_state", s.lastState)
	w.WriteHeader(http.StatusNoContent)
}

// boot runs a power-on through fn with the boot source override, then
// does what firmware does at POST: the pending BIOS settings take effect
// and a one-time override is consumed. With s.mu held.
func (s *system) boot(resetType string, fn func(device string) error) error {
	device := ""
	if s.bootEnabled != "Disabled" && s.bootTarget != "None" {
		device = s.bootTarget
	}
	if err := fn(device); err != nil {
		return err
	}
	applied := s.pending
	maps.Copy(s.attrs, applied)
	s.pending = map[string]any{}
	if s.bootEnabled == "Once" {
		s.bootEnabled = "Disabled"
	}
	s.boots = append(s.boots, BootRecord{ResetType: resetType, Device: device, Applied: maps.Clone(applied), Time: time.Now()})
	return nil
}

func (b *BMC) serveManagers(w http.ResponseWriter, r *http.Request, seg []string) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, http.MethodGet)
		return
	}
	switch {
	case len(seg) == 0:
		writeJSON(w, http.StatusOK, collection("/redfish/v1/Managers", "ManagerCollection", "Manager Collection", []string{"/redfish/v1/Managers/BMC"}))
	case len(seg) == 1 && seg[0] == "BMC":
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id": "/redfish/v1/Managers/BMC", "@odata.type": "#Manager.v1_10_0.Manager",
			"Id": "BMC", "Name": "Simulated BMC", "ManagerType": "BMC", "FirmwareVersion": "1.0.0",
			"UUID": b.uuid, "PowerState": "On",
			"Status": map[string]string{"State": "Enabled", "Health": "OK"},
			"Links": map[string]any{
				"ManagerForServers": links(b.systemURIs()...),
				"ManagerForChassis": links(b.chassisURIs()...),
			},
		})
	default:
		notFound(w, r)
	}
}

func (b *BMC) chassisURIs() []string {
	var uris []string
	for _, s := range b.systems {
		uris = append(uris, "/redfish/v1/Chassis/"+s.cfg.ID)
	}
	return uris
}

func (b *BMC) serveChassis(w http.ResponseWriter, r *http.Request, seg []string) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, http.MethodGet)
		return
	}
	if len(seg) == 0 {
		writeJSON(w, http.StatusOK, collection("/redfish/v1/Chassis", "ChassisCollection", "Chassis Collection", b.chassisURIs()))
		return
	}
	s := b.byID[seg[0]]
	if s == nil || len(seg) > 1 {
		notFound(w, r)
		return
	}
	s.mu.Lock()
	power := s.state(r.Context())
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.id": "/redfish/v1/Chassis/" + s.cfg.ID, "@odata.type": "#Chassis.v1_14_0.Chassis",
		"Id": s.cfg.ID, "Name": "Chassis " + s.cfg.ID, "ChassisType": "RackMount",
		"Manufacturer": s.cfg.Manufacturer, "Model": s.cfg.Model, "SerialNumber": s.cfg.Serial,
		"PowerState": power,
		"Status":     map[string]string{"State": "Enabled", "Health": "OK"},
		"Links": map[string]any{
			"ComputerSystems": links(s.uri()),
			"ManagedBy":       links("/redfish/v1/Managers/BMC"),
		},
	})
}

func sortStrings(s []string) []string {
	sort.Strings(s)
	return s
}
