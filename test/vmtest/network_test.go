package vmtest_test

import (
	"testing"

	"underlay.dev/test/vmtest"
)

// TestNetworkDriver runs agent/driver/network's VM tests (bonds, VLANs,
// rollback) in a VM with two NICs: the build host's kernel has neither
// bonding nor 802.1Q.
func TestNetworkDriver(t *testing.T) {
	vmtest.Run(t, "underlay.dev/agent/driver/network", vmtest.Config{
		NICs:     2,
		TestArgs: []string{"-test.run", "^TestVM"},
	})
}
