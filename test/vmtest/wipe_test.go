package vmtest_test

import (
	"testing"

	"underlay.dev/test/vmtest"
)

// TestWipe runs agent/driver/wipe's VM tests on the Debian kernel: real
// GPT partitions, md arrays over partitions and whole disks stopped
// through the RAID driver, and nothing of either left after the wipe.
func TestWipe(t *testing.T) {
	vmtest.Run(t, "underlay.dev/agent/driver/wipe", vmtest.Config{
		Disks:    []int64{64 << 20, 64 << 20, 64 << 20, 64 << 20},
		TestArgs: []string{"-test.run", "TestVM"},
	})
}
