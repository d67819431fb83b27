package main

import (
	"testing"

	"google.golang.org/grpc/codes"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestPowerCommands(t *testing.T) {
	f := newFakeCluster(t)
	on := &underlayv1.PowerResponse{MachineId: "m-1", PowerState: "On", Bmc: "https://10.0.9.1"}
	onView := `Machine:        m-1
Power:          On
Boot override:  -
BMC:            https://10.0.9.1
`
	power := func(action string) []fakeCall {
		return []fakeCall{call("Power", &underlayv1.PowerRequest{MachineId: "m-1", Action: action})}
	}
	tests := []cliCase{
		{
			name: "boot once pxe", args: []string{"machine", "boot", "m-1", "--once", "PXE"},
			replies: map[string][]fakeReply{"Boot": replyOK(&underlayv1.PowerResponse{MachineId: "m-1", PowerState: "Off",
				BootOverride: "Pxe (once)", Bmc: "https://10.0.9.1"})},
			wantCalls: []fakeCall{call("Boot", &underlayv1.BootRequest{MachineId: "m-1", Device: "pxe"})},
			wantStdout: `Machine:        m-1
Power:          Off
Boot override:  Pxe (once)
BMC:            https://10.0.9.1
`,
		},
		{
			name: "boot json", args: []string{"machine", "boot", "m-1", "--once", "disk", "-o", "json"},
			replies:    map[string][]fakeReply{"Boot": replyOK(&underlayv1.PowerResponse{MachineId: "m-1", BootOverride: "Hdd"})},
			wantCalls:  []fakeCall{call("Boot", &underlayv1.BootRequest{MachineId: "m-1", Device: "disk"})},
			wantStdout: "{\n  \"machine_id\": \"m-1\",\n  \"boot_override\": \"Hdd\"\n}\n",
		},
		{
			name: "boot from usb", args: []string{"machine", "boot", "m-1", "--once", "usb"},
			wantCode: exitUsage, wantStderr: `--once "usb" is not valid: use one of pxe, disk`,
		},
		{
			name: "boot without --once", args: []string{"machine", "boot", "m-1"},
			wantCode: exitUsage, wantStderr: "--once is required: use one of pxe, disk",
		},
		{
			name: "power of an unknown machine", args: []string{"machine", "power", "status", "m-404"},
			replies:    map[string][]fakeReply{"PowerStatus": replyErr(codes.NotFound, "machine m-404 not found")},
			wantCalls:  []fakeCall{call("PowerStatus", &underlayv1.PowerStatusRequest{MachineId: "m-404"})},
			wantCode:   exitError,
			wantStderr: "error: not found: machine m-404 not found",
		},
		{
			name: "power without a BMC", args: []string{"machine", "power", "on", "m-1"},
			replies:    map[string][]fakeReply{"Power": replyErr(codes.FailedPrecondition, "machine m-1 has no bmc_address param")},
			wantCalls:  power("on"),
			wantCode:   exitError,
			wantStderr: "error: failed precondition: machine m-1 has no bmc_address param",
		},
		{
			name: "unknown power action", args: []string{"machine", "power", "reset", "m-1"},
			wantCode: exitUsage, wantStderr: `unknown command "reset" for "underlay machine power"`,
		},
		{
			name: "power without a machine", args: []string{"machine", "power", "off"},
			wantCode: exitUsage, wantStderr: `"underlay machine power off" needs 1 argument(s) (ID), got 0`,
		},
	}
	tests = append(tests, cliCase{
		name: "power status", args: []string{"machine", "power", "status", "m-1"},
		replies:    map[string][]fakeReply{"PowerStatus": replyOK(on)},
		wantCalls:  []fakeCall{call("PowerStatus", &underlayv1.PowerStatusRequest{MachineId: "m-1"})},
		wantStdout: onView,
	})
	for _, action := range []string{"on", "off", "cycle"} {
		tests = append(tests, cliCase{
			name: "power " + action, args: []string{"machine", "power", action, "m-1"},
			replies:    map[string][]fakeReply{"Power": replyOK(on)},
			wantCalls:  power(action),
			wantStdout: onView,
		})
	}
	runCases(t, f, tests)
}
