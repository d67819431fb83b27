package vmtest_test

import (
	"testing"

	"underlay.dev/test/vmtest"
)

// TestRAID runs agent/driver/raid's VM tests: real mdadm arrays built by
// raid.Apply from raidconf configs over four 64 MiB virtio disks.
func TestRAID(t *testing.T) {
	vmtest.Run(t, "underlay.dev/agent/driver/raid", vmtest.Config{
		Disks:    []int64{64 << 20, 64 << 20, 64 << 20, 64 << 20},
		TestArgs: []string{"-test.run", "TestVM"},
	})
}
