package redfish_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	sim "underlay.dev/test/redfish"
)

const (
	user     = "admin"
	password = "s3cret"
)

// startBMC runs a simulator with one system "1" that is off and has the
// default attributes, unless cfg says otherwise.
func startBMC(tb testing.TB, cfg sim.Config) *sim.BMC {
	tb.Helper()
	if cfg.Username == "" {
		cfg.Username, cfg.Password = user, password
	}
	if cfg.Systems == nil {
		cfg.Systems = []sim.SystemConfig{{ID: "1", Attributes: sim.DefaultAttributes()}}
	}
	bmc, err := sim.Start(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("start bmc: %v", err)
	}
	tb.Cleanup(func() { bmc.Close() })
	return bmc
}

// rawClient speaks HTTP to the simulator, trusting its CA.
type rawClient struct {
	tb    testing.TB
	bmc   *sim.BMC
	hc    *http.Client
	token string
	basic bool
}

func newRaw(tb testing.TB, bmc *sim.BMC) *rawClient {
	tb.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bmc.CAPEM()) {
		tb.Fatal("bmc CA PEM does not parse")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	tb.Cleanup(hc.CloseIdleConnections)
	return &rawClient{tb: tb, bmc: bmc, hc: hc, basic: true}
}

// do sends a request and returns the status and the decoded body.
func (c *rawClient) do(method, path string, body any) (int, map[string]any, http.Header) {
	c.tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.tb.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.bmc.URL()+path, rd)
	if err != nil {
		c.tb.Fatal(err)
	}
	switch {
	case c.token != "":
		req.Header.Set("X-Auth-Token", c.token)
	case c.basic:
		req.SetBasicAuth(user, password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			c.tb.Fatalf("%s %s: body is not JSON: %q", method, path, data)
		}
	}
	return resp.StatusCode, out, resp.Header
}

// messageIDs lists the MessageIds of a Redfish error body.
func messageIDs(body map[string]any) []string {
	e, _ := body["error"].(map[string]any)
	infos, _ := e["@Message.ExtendedInfo"].([]any)
	var ids []string
	for _, i := range infos {
		m, _ := i.(map[string]any)
		id, _ := m["MessageId"].(string)
		args, _ := m["MessageArgs"].([]any)
		for _, a := range args {
			id += " " + a.(string)
		}
		ids = append(ids, id)
	}
	return ids
}

func TestAuth(t *testing.T) {
	bmc := startBMC(t, sim.Config{})
	c := newRaw(t, bmc)

	for _, tc := range []struct {
		name       string
		setup      func(r *http.Request)
		path       string
		wantStatus int
		failures   int // AuthFailures after the request
	}{
		{"service root needs no credentials", func(*http.Request) {}, "/redfish/v1/", http.StatusOK, 0},
		{"version document needs no credentials", func(*http.Request) {}, "/redfish", http.StatusOK, 0},
		{"systems need credentials", func(*http.Request) {}, "/redfish/v1/Systems", http.StatusUnauthorized, 0},
		{"wrong basic password is refused and counted", func(r *http.Request) { r.SetBasicAuth(user, "nope") }, "/redfish/v1/Systems", http.StatusUnauthorized, 1},
		{"wrong basic user is refused and counted", func(r *http.Request) { r.SetBasicAuth("root", password) }, "/redfish/v1/Systems", http.StatusUnauthorized, 2},
		{"bogus token is refused, not counted", func(r *http.Request) { r.Header.Set("X-Auth-Token", "bogus") }, "/redfish/v1/Systems", http.StatusUnauthorized, 2},
		{"basic auth works", func(r *http.Request) { r.SetBasicAuth(user, password) }, "/redfish/v1/Systems", http.StatusOK, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, bmc.URL()+tc.path, nil)
			tc.setup(req)
			resp, err := c.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if got := bmc.AuthFailures(); got != tc.failures {
				t.Errorf("AuthFailures %d, want %d", got, tc.failures)
			}
		})
	}

	t.Run("session lifecycle", func(t *testing.T) {
		c := newRaw(t, bmc)
		c.basic = false
		status, _, _ := c.do(http.MethodPost, "/redfish/v1/SessionService/Sessions", map[string]string{"UserName": user, "Password": "wrong"})
		if status != http.StatusUnauthorized {
			t.Fatalf("login with a wrong password: status %d, want 401", status)
		}
		status, body, hdr := c.do(http.MethodPost, "/redfish/v1/SessionService/Sessions", map[string]string{"UserName": user, "Password": password})
		if status != http.StatusCreated || hdr.Get("X-Auth-Token") == "" || !strings.HasPrefix(hdr.Get("Location"), "/redfish/v1/SessionService/Sessions/") {
			t.Fatalf("login: status %d, token %q, location %q", status, hdr.Get("X-Auth-Token"), hdr.Get("Location"))
		}
		if body["UserName"] != user {
			t.Errorf("session UserName %v, want %s", body["UserName"], user)
		}
		c.token = hdr.Get("X-Auth-Token")
		if status, _, _ := c.do(http.MethodGet, "/redfish/v1/Systems/1", nil); status != http.StatusOK {
			t.Errorf("GET with the token: status %d", status)
		}
		if got := bmc.Sessions(); got != 1 {
			t.Errorf("%d sessions, want 1", got)
		}
		if status, _, _ := c.do(http.MethodDelete, hdr.Get("Location"), nil); status != http.StatusNoContent {
			t.Errorf("logout: status %d, want 204", status)
		}
		if status, _, _ := c.do(http.MethodGet, "/redfish/v1/Systems/1", nil); status != http.StatusUnauthorized {
			t.Errorf("GET after logout: status %d, want 401", status)
		}
		if got := bmc.AuthFailures(); got != 3 {
			t.Errorf("AuthFailures %d, want 3", got)
		}
	})
}

func TestStageBIOS(t *testing.T) {
	for _, tc := range []struct {
		name        string
		body        any
		wantStatus  int
		wantIDs     []string
		wantPending map[string]any
	}{
		{
			name:        "accepted values become pending, typed",
			body:        map[string]any{"Attributes": map[string]any{"ProcTurboMode": "Disabled", "ProcCores": 8, "SecureBoot": true}},
			wantStatus:  http.StatusOK,
			wantPending: map[string]any{"ProcTurboMode": "Disabled", "ProcCores": 8, "SecureBoot": true},
		},
		{
			name:        "apply time OnReset is accepted",
			body:        map[string]any{"Attributes": map[string]any{"AssetTag": "rack7"}, "@Redfish.SettingsApplyTime": map[string]string{"ApplyTime": "OnReset"}},
			wantStatus:  http.StatusOK,
			wantPending: map[string]any{"AssetTag": "rack7"},
		},
		{
			name:        "unknown attribute stages nothing",
			body:        map[string]any{"Attributes": map[string]any{"ProcTurboMode": "Disabled", "NoSuchThing": "x"}},
			wantStatus:  http.StatusBadRequest,
			wantIDs:     []string{"Base.1.8.PropertyUnknown NoSuchThing"},
			wantPending: map[string]any{},
		},
		{
			name:       "wrong types and values are all named",
			body:       map[string]any{"Attributes": map[string]any{"ProcCores": "eight", "SecureBoot": "yes", "BootMode": "Legacy", "AssetTag": 5}},
			wantStatus: http.StatusBadRequest,
			wantIDs: []string{
				`Base.1.8.PropertyValueTypeError 5 AssetTag`,
				`Base.1.8.PropertyValueNotInList Legacy BootMode`,
				`Base.1.8.PropertyValueTypeError "eight" ProcCores`,
				`Base.1.8.PropertyValueTypeError "yes" SecureBoot`,
			},
			wantPending: map[string]any{},
		},
		{
			name:        "fractional integer",
			body:        map[string]any{"Attributes": map[string]any{"ProcCores": 2.5}},
			wantStatus:  http.StatusBadRequest,
			wantIDs:     []string{"Base.1.8.PropertyValueTypeError 2.5 ProcCores"},
			wantPending: map[string]any{},
		},
		{
			name:        "immediate apply is not supported",
			body:        map[string]any{"Attributes": map[string]any{"AssetTag": "x"}, "@Redfish.SettingsApplyTime": map[string]string{"ApplyTime": "Immediate"}},
			wantStatus:  http.StatusBadRequest,
			wantIDs:     []string{"Base.1.8.PropertyValueNotInList Immediate @Redfish.SettingsApplyTime/ApplyTime"},
			wantPending: map[string]any{},
		},
		{
			name:        "malformed JSON",
			body:        `{"Attributes": `,
			wantStatus:  http.StatusBadRequest,
			wantIDs:     []string{"Base.1.8.MalformedJSON"},
			wantPending: map[string]any{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bmc := startBMC(t, sim.Config{})
			c := newRaw(t, bmc)
			before := bmc.Attributes("1")
			status, body, _ := c.do(http.MethodPatch, "/redfish/v1/Systems/1/Bios/Settings", tc.body)
			if status != tc.wantStatus {
				t.Errorf("status %d, want %d (%v)", status, tc.wantStatus, body)
			}
			if diff := cmp.Diff(tc.wantIDs, messageIDs(body)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantPending, bmc.Pending("1")); diff != "" {
				t.Errorf("pending (-want +got):\n%s", diff)
			}
			_, settings, _ := c.do(http.MethodGet, "/redfish/v1/Systems/1/Bios/Settings", nil)
			if got := len(settings["Attributes"].(map[string]any)); got != len(tc.wantPending) {
				t.Errorf("settings object lists %d attributes, want %d", got, len(tc.wantPending))
			}
			if diff := cmp.Diff(before, bmc.Attributes("1")); diff != "" {
				t.Errorf("attributes in effect changed before any reset (-before +after):\n%s", diff)
			}
		})
	}
}

// reset posts ComputerSystem.Reset and returns the status.
func reset(t *testing.T, c *rawClient, resetType any) int {
	t.Helper()
	status, _, _ := c.do(http.MethodPost, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", map[string]any{"ResetType": resetType})
	return status
}

func TestResetSemantics(t *testing.T) {
	bmc := startBMC(t, sim.Config{})
	c := newRaw(t, bmc)
	state := func() string {
		_, sys, _ := c.do(http.MethodGet, "/redfish/v1/Systems/1", nil)
		return sys["PowerState"].(string)
	}
	stage := func(attrs map[string]any) {
		if status, body, _ := c.do(http.MethodPatch, "/redfish/v1/Systems/1/Bios/Settings", map[string]any{"Attributes": attrs}); status != http.StatusOK {
			t.Fatalf("stage: %d %v", status, body)
		}
	}
	boot := func(target, enabled string) {
		if status, body, _ := c.do(http.MethodPatch, "/redfish/v1/Systems/1", map[string]any{"Boot": map[string]string{
			"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": enabled,
		}}); status != http.StatusOK {
			t.Fatalf("set boot: %d %v", status, body)
		}
	}

	steps := []struct {
		name       string
		do         func()
		reset      any
		wantStatus int
		wantState  string
		wantTurbo  string // ProcTurboMode in effect afterwards
	}{
		{"off system refuses ForceOff", nil, "ForceOff", http.StatusConflict, "Off", "Enabled"},
		{"off system refuses ForceRestart", nil, "ForceRestart", http.StatusConflict, "Off", "Enabled"},
		{"unknown reset type", nil, "Explode", http.StatusBadRequest, "Off", "Enabled"},
		{"reset type of the wrong type", nil, 1, http.StatusBadRequest, "Off", "Enabled"},
		{"power on applies pending and consumes the PXE override", func() {
			stage(map[string]any{"ProcTurboMode": "Disabled"})
			boot("Pxe", "Once")
		}, "On", http.StatusNoContent, "On", "Disabled"},
		{"on system refuses On", nil, "On", http.StatusConflict, "On", "Disabled"},
		{"graceful shutdown does not apply pending", func() { stage(map[string]any{"ProcTurboMode": "Enabled"}) },
			"GracefulShutdown", http.StatusNoContent, "Off", "Disabled"},
		{"power cycle of an off system powers on and applies", nil, "PowerCycle", http.StatusNoContent, "On", "Enabled"},
		{"continuous override stays", func() { boot("Hdd", "Continuous") }, "ForceRestart", http.StatusNoContent, "On", "Enabled"},
		{"graceful restart", nil, "GracefulRestart", http.StatusNoContent, "On", "Enabled"},
		{"disabled override boots normally", func() { boot("Hdd", "Disabled") }, "PowerCycle", http.StatusNoContent, "On", "Enabled"},
		{"force off", nil, "ForceOff", http.StatusNoContent, "Off", "Enabled"},
	}
	for _, st := range steps {
		if st.do != nil {
			st.do()
		}
		if got := reset(t, c, st.reset); got != st.wantStatus {
			t.Errorf("%s: status %d, want %d", st.name, got, st.wantStatus)
		}
		if got := state(); got != st.wantState {
			t.Errorf("%s: PowerState %s, want %s", st.name, got, st.wantState)
		}
		if got := bmc.Attributes("1")["ProcTurboMode"]; got != st.wantTurbo {
			t.Errorf("%s: ProcTurboMode %v, want %s", st.name, got, st.wantTurbo)
		}
	}

	type boot2 struct{ ResetType, Device string }
	var got []boot2
	for _, b := range bmc.Boots("1") {
		got = append(got, boot2{b.ResetType, b.Device})
	}
	want := []boot2{{"On", "Pxe"}, {"PowerCycle", ""}, {"ForceRestart", "Hdd"}, {"GracefulRestart", "Hdd"}, {"PowerCycle", ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("boots (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"ProcTurboMode": "Disabled"}, bmc.Boots("1")[0].Applied); diff != "" {
		t.Errorf("first boot applied (-want +got):\n%s", diff)
	}
	if len(bmc.Pending("1")) != 0 {
		t.Errorf("pending after boots: %v", bmc.Pending("1"))
	}
}

func TestPatchSystem(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       any
		wantStatus int
		wantIDs    []string
	}{
		{"boot once pxe", map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}, http.StatusOK, nil},
		{"target not offered", map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": "Floppy"}}, http.StatusBadRequest,
			[]string{"Base.1.8.PropertyValueNotInList Floppy Boot/BootSourceOverrideTarget"}},
		{"unknown boot property", map[string]any{"Boot": map[string]any{"BootNow": true}}, http.StatusBadRequest,
			[]string{"Base.1.8.PropertyUnknown Boot/BootNow"}},
		{"read-only property", map[string]any{"PowerState": "On"}, http.StatusBadRequest,
			[]string{"Base.1.8.PropertyNotWritable PowerState"}},
		{"unknown property", map[string]any{"Colour": "blue"}, http.StatusBadRequest,
			[]string{"Base.1.8.PropertyUnknown Colour"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bmc := startBMC(t, sim.Config{})
			c := newRaw(t, bmc)
			status, body, _ := c.do(http.MethodPatch, "/redfish/v1/Systems/1", tc.body)
			if status != tc.wantStatus {
				t.Errorf("status %d, want %d", status, tc.wantStatus)
			}
			if tc.wantStatus == http.StatusOK {
				return
			}
			if diff := cmp.Diff(tc.wantIDs, messageIDs(body)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			_, sys, _ := c.do(http.MethodGet, "/redfish/v1/Systems/1", nil)
			if b := sys["Boot"].(map[string]any); b["BootSourceOverrideTarget"] != "None" || b["BootSourceOverrideEnabled"] != "Disabled" {
				t.Errorf("rejected PATCH changed Boot: %v", b)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	bmc := startBMC(t, sim.Config{Systems: []sim.SystemConfig{{ID: "A"}, {ID: "B"}}})
	c := newRaw(t, bmc)
	for _, tc := range []struct {
		method, path string
		wantStatus   int
	}{
		{http.MethodGet, "/redfish/v1/Systems/", http.StatusOK},
		{http.MethodGet, "/redfish/v1/Systems/B", http.StatusOK},
		{http.MethodGet, "/redfish/v1/Systems/C", http.StatusNotFound},
		{http.MethodGet, "/redfish/v1/Managers/BMC", http.StatusOK},
		{http.MethodGet, "/redfish/v1/Chassis/A", http.StatusOK},
		{http.MethodGet, "/redfish/v1/Chassis/A/Power", http.StatusNotFound},
		{http.MethodGet, "/redfish/v1/SessionService", http.StatusOK},
		{http.MethodDelete, "/redfish/v1/Systems/A", http.StatusMethodNotAllowed},
		{http.MethodGet, "/redfish/v1/Systems/A/Actions/ComputerSystem.Reset", http.StatusMethodNotAllowed},
		{http.MethodGet, "/redfish/v2", http.StatusNotFound},
		{http.MethodGet, "/redfish/v1/Nothing", http.StatusNotFound},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, body, _ := c.do(tc.method, tc.path, nil)
			if status != tc.wantStatus {
				t.Errorf("status %d, want %d", status, tc.wantStatus)
			}
			if status >= 400 && body["error"] == nil {
				t.Errorf("error without a Redfish error body: %v", body)
			}
		})
	}
	_, coll, _ := c.do(http.MethodGet, "/redfish/v1/Systems", nil)
	if got := coll["Members@odata.count"]; got != float64(2) {
		t.Errorf("Members@odata.count %v, want 2", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  sim.Config
		want string
	}{
		{"no user", sim.Config{Systems: []sim.SystemConfig{{ID: "1"}}}, "username is empty"},
		{"no systems", sim.Config{Username: "a"}, "no systems"},
		{"bad id", sim.Config{Username: "a", Systems: []sim.SystemConfig{{ID: "a/b"}}}, `systems[0]: id "a/b"`},
		{"duplicate id", sim.Config{Username: "a", Systems: []sim.SystemConfig{{ID: "1"}, {ID: "1"}}}, `systems[1]: duplicate id "1"`},
		{"bad type", sim.Config{Username: "a", Systems: []sim.SystemConfig{{ID: "1", Attributes: []sim.Attribute{{Name: "X", Type: "Float", Value: 1.5}}}}},
			`attributes[0]: attribute X: type "Float"`},
		{"value not allowed", sim.Config{Username: "a", Systems: []sim.SystemConfig{{ID: "1", Attributes: []sim.Attribute{{Name: "X", Type: "Enumeration", Value: "c", Allowed: []string{"a", "b"}}}}}},
			"attribute X: value c (string) does not fit type Enumeration [a b]"},
		{"value of wrong type", sim.Config{Username: "a", Systems: []sim.SystemConfig{{ID: "1", Attributes: []sim.Attribute{{Name: "N", Type: "Integer", Value: "1"}}}}},
			"attribute N: value 1 (string) does not fit type Integer"},
		{"duplicate attribute", sim.Config{Username: "a", Systems: []sim.SystemConfig{{ID: "1", Attributes: []sim.Attribute{{Name: "N", Type: "Boolean", Value: true}, {Name: "N", Type: "Boolean", Value: true}}}}},
			`attributes[1]: duplicate name "N"`},
		{"unknown reset type", sim.Config{Username: "a", Systems: []sim.SystemConfig{{ID: "1", ResetTypes: []string{"Nmi"}}}}, `reset type "Nmi"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bmc, err := sim.Start(context.Background(), tc.cfg)
			if err == nil {
				bmc.Close()
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, sim.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}
