package vmtest_test

import (
	"os/exec"
	"strings"
	"testing"

	"underlay.dev/test/vmtest"
)

// TestHarness boots the guest package's own VM tests, which check the
// disks, the NIC, the modules and the mounts the harness promises, and
// that test arguments reach the test binary.
func TestHarness(t *testing.T) {
	var setupNS string
	var setupTaps []string
	vmtest.Run(t, "underlay.dev/test/vmtest/guest", vmtest.Config{
		Disks:    []int64{1 << 20, 2 << 20},
		NICs:     1,
		TestArgs: []string{"-test.run", "TestGuestEnvironment"},
		Setup: func(tb testing.TB, netns string, taps []string) {
			setupNS, setupTaps = netns, taps
			out, err := exec.Command("ip", "netns", "exec", netns, "ip", "-o", "link", "show", taps[0]).CombinedOutput()
			if err != nil || !strings.Contains(string(out), taps[0]) {
				tb.Errorf("tap %s not in namespace %s: %v %s", taps[0], netns, err, out)
			}
		},
	})
	if setupNS == "" || len(setupTaps) != 1 || setupTaps[0] != "tap0" {
		t.Errorf("Setup got netns %q taps %v, want a namespace and [tap0]", setupNS, setupTaps)
	}
}
