package deps
import (
 _ "github.com/hashicorp/raft"
 _ "github.com/hashicorp/raft-boltdb/v2"
 _ "github.com/hashicorp/go-memdb"
 _ "go.step.sm/crypto/x509util"
 _ "google.golang.org/grpc"
 _ "google.golang.org/protobuf/proto"
 _ "github.com/google/go-cmp/cmp"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/spf13/cobra"
 _ "sigs.k8s.io/yaml"
 _ "github.com/jaypipes/ghw"
 _ "github.com/vishvananda/netlink"
 _ "github.com/hashicorp/go-hclog"
)
