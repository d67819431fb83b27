package redfish_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stmcginnis/gofish"
	gfredfish "github.com/stmcginnis/gofish/redfish"

	sim "underlay.dev/test/redfish"
)

// TestGofishConformance walks the simulator with gofish, an independent
// Redfish client, to check the resources parse the way real BMCs' do.
func TestGofishConformance(t *testing.T) {
	for _, basic := range []bool{false, true} {
		name := map[bool]string{false: "session", true: "basic"}[basic]
		t.Run(name, func(t *testing.T) {
			bmc := startBMC(t, sim.Config{Systems: []sim.SystemConfig{{
				ID: "System.Embedded.1", Manufacturer: "Acme", Model: "R1", Serial: "SN1",
				UUID: "4c4c4544-0042-3510-8056-b4c04f4d3332", Attributes: sim.DefaultAttributes(),
			}}})
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(bmc.CAPEM())
			api, err := gofish.Connect(gofish.ClientConfig{
				Endpoint: bmc.URL(), Username: user, Password: password, BasicAuth: basic,
				HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
			})
			if err != nil {
				t.Fatalf("gofish connect: %v", err)
			}
			wantSessions := map[bool]int{false: 1, true: 0}[basic]
			if got := bmc.Sessions(); got != wantSessions {
				t.Errorf("%d sessions open, want %d", got, wantSessions)
			}

			systems, err := api.Service.Systems()
			if err != nil || len(systems) != 1 {
				t.Fatalf("systems: %v, %v", systems, err)
			}
			sys := systems[0]
			type ident struct{ ID, UUID, Manufacturer, Model, Serial, Power string }
			if diff := cmp.Diff(ident{"System.Embedded.1", "4c4c4544-0042-3510-8056-b4c04f4d3332", "Acme", "R1", "SN1", "Off"},
				ident{sys.ID, sys.UUID, sys.Manufacturer, sys.Model, sys.SerialNumber, string(sys.PowerState)}); diff != "" {
				t.Errorf("system (-want +got):\n%s", diff)
			}
			if len(sys.SupportedResetTypes) != 6 {
				t.Errorf("reset types %v, want 6", sys.SupportedResetTypes)
			}

			bios, err := sys.Bios()
			if err != nil || bios == nil {
				t.Fatalf("bios: %v", err)
			}
			if got := bios.Attributes.String("ProcTurboMode"); got != "Enabled" {
				t.Errorf("ProcTurboMode %q, want Enabled", got)
			}
			if got := bios.Attributes.Int("ProcCores"); got != 0 {
				t.Errorf("ProcCores %d, want 0", got)
			}
			if err := bios.UpdateBiosAttributes(gfredfish.SettingsAttributes{"ProcTurboMode": "Disabled", "ProcCores": 4}); err != nil {
				t.Fatalf("update bios attributes: %v", err)
			}
			if diff := cmp.Diff(map[string]any{"ProcTurboMode": "Disabled", "ProcCores": 4}, bmc.Pending("System.Embedded.1")); diff != "" {
				t.Errorf("pending (-want +got):\n%s", diff)
			}
			if err := bios.UpdateBiosAttributes(gfredfish.SettingsAttributes{"Bogus": 1}); err == nil {
				t.Error("gofish staged an unknown attribute without error")
			}

			if err := sys.SetBoot(gfredfish.Boot{
				BootSourceOverrideTarget:  gfredfish.PxeBootSourceOverrideTarget,
				BootSourceOverrideEnabled: gfredfish.OnceBootSourceOverrideEnabled,
			}); err != nil {
				t.Fatalf("set boot: %v", err)
			}
			if err := sys.Reset(gfredfish.OnResetType); err != nil {
				t.Fatalf("reset On: %v", err)
			}
			if err := sys.Reset(gfredfish.ForceRestartResetType); err != nil {
				t.Fatalf("reset ForceRestart: %v", err)
			}
			if diff := cmp.Diff(map[string]any{"ProcTurboMode": "Disabled", "ProcCores": 4}, bmc.Boots("System.Embedded.1")[0].Applied); diff != "" {
				t.Errorf("applied at power-on (-want +got):\n%s", diff)
			}
			sys, err = gfredfish.GetComputerSystem(api, sys.ODataID)
			if err != nil {
				t.Fatal(err)
			}
			if sys.PowerState != gfredfish.OnPowerState || sys.Boot.BootSourceOverrideEnabled != gfredfish.DisabledBootSourceOverrideEnabled {
				t.Errorf("after boots: power %s, override %s; want On, Disabled", sys.PowerState, sys.Boot.BootSourceOverrideEnabled)
			}

			managers, err := api.Service.Managers()
			if err != nil || len(managers) != 1 || managers[0].ManagerType != gfredfish.BMCManagerType {
				t.Errorf("managers: %v, %v", managers, err)
			}
			chassis, err := api.Service.Chassis()
			if err != nil || len(chassis) != 1 || chassis[0].ChassisType != gfredfish.RackMountChassisType {
				t.Errorf("chassis: %v, %v", chassis, err)
			}
			if !basic {
				sessions, err := api.Service.Sessions()
				if err != nil || len(sessions) != 1 || sessions[0].UserName != user {
					t.Errorf("sessions: %v, %v", sessions, err)
				}
			}
			api.Logout()
			if got := bmc.Sessions(); got != 0 {
				t.Errorf("%d sessions open after logout, want 0", got)
			}
		})
	}
}
