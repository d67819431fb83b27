package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestParseMDStat(t *testing.T) {
	tests := []struct {
		file    string
		want    []*underlayv1.MDArray
		wantErr error
	}{
		{
			file: "raid1-active",
			want: []*underlayv1.MDArray{{
				Name: "md0", Level: "raid1", Members: []string{"vda1", "vdb1"},
				SizeBytes: 8383488 * 1024, State: "active",
			}},
		},
		{
			file: "raid1-degraded",
			want: []*underlayv1.MDArray{{
				Name: "md0", Level: "raid1", Members: []string{"sda1", "sdb1"},
				SizeBytes: 8383488 * 1024, State: "active,degraded",
			}},
		},
		{
			file: "raid0",
			want: []*underlayv1.MDArray{{
				Name: "md1", Level: "raid0", Members: []string{"sdb", "sdc"},
				SizeBytes: 33521664 * 1024, State: "active",
			}},
		},
		{
			file: "raid1-resync",
			want: []*underlayv1.MDArray{{
				Name: "md127", Level: "raid1", Members: []string{"nvme0n1", "nvme1n1"},
				SizeBytes: 468719936 * 1024, State: "active,resync",
			}},
		},
		{
			file: "mixed",
			want: []*underlayv1.MDArray{
				{
					Name: "md2", Level: "raid1", Members: []string{"sda3", "sdb3"},
					SizeBytes: 1046528 * 1024, State: "active,auto-read-only",
				},
				{
					Name: "md3", Level: "raid5", Members: []string{"sdd", "sde", "sdf"},
					SizeBytes: 2093056 * 1024, State: "active,degraded,recovery",
				},
				{
					Name: "md127", Members: []string{"sdg"},
					SizeBytes: 1046528 * 1024, State: "inactive",
				},
			},
		},
		{file: "empty"},
		{file: "malformed", wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "mdstat", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseMDStat(f)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseMDStat() error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("ParseMDStat() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMemInfoBytes(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "meminfo"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := memInfoBytes(f, "MemTotal")
	if err != nil {
		t.Fatalf("memInfoBytes() error = %v", err)
	}
	if want := uint64(24683620 * 1024); got != want {
		t.Errorf("memInfoBytes() = %d, want %d", got, want)
	}
}
