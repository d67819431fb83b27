# Underlay build, test and demo entry points. `make test` and `make demo`
# install what they need (Debian packages, Go tools) by themselves.

SHELL      := /bin/bash
GO         ?= go
GOBIN      := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):/usr/local/go/bin:$(PATH)
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X underlay.dev/pkg/version.Version=$(VERSION)
PROTO_FILES := $(wildcard proto/underlay/v1/*.proto)
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
# Debian packages the tests use.
# busybox serves the two-role example's join API; e2fsprogs and util-linux
# make and inspect the filesystems the wipe tests destroy; gcc and libc6-dev
# are what the race detector (cgo) needs.
TEST_DEBS  := protobuf-compiler curl openssl udhcpc iproute2 iputils-ping zstd busybox e2fsprogs util-linux gcc libc6-dev
TEST_TIMEOUT ?= 25m

.PHONY: all build test unit e2e demo-local lint proto proto-check bench demo deps tools clean image

all: build

build: bin/underlay bin/underlay-agent

bin/underlay: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./server/cmd/underlay

bin/underlay-agent: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./agent/cmd/underlay-agent

FORCE:

# deps installs the Debian packages the tests need (as root), once.
deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# tools installs the pinned protoc plugins.
tools:
	@command -v protoc-gen-go >/dev/null 2>&1 && protoc-gen-go --version | grep -q v1.36.12 || $(GO) install $(PROTOC_GEN_GO)
	@command -v protoc-gen-go-grpc >/dev/null 2>&1 && protoc-gen-go-grpc --version | grep -q 1.5.1 || $(GO) install $(PROTOC_GEN_GO_GRPC)

proto: deps tools
	protoc -I proto --go_out=. --go_opt=module=underlay.dev \
		--go-grpc_out=. --go-grpc_opt=module=underlay.dev $(PROTO_FILES)

# proto-check regenerates the protocol code into a scratch tree and fails if
# the committed code differs.
proto-check: deps tools
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	protoc -I proto --go_out=$$tmp --go_opt=module=underlay.dev \
		--go-grpc_out=$$tmp --go-grpc_opt=module=underlay.dev $(PROTO_FILES) && \
	diff -r $$tmp/proto/underlay/v1 proto/underlay/v1 -x '*.proto' && echo "proto-check: generated code is current"

lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags bench ./test/bench/... ./test/loadgen/... ./test/lab/...
	$(GO) vet -tags vmtest ./agent/driver/...

# Packages whose tests boot QEMU VMs in network namespaces (root); they run
# one at a time in e2e, after everything else.
E2E_PKGS   := ./discovery-image/... ./test/vmtest/... ./test/lab/...
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v -e /discovery-image -e /test/lab -e /test/vmtest)

# test runs every test: lint, the generated-code check, unit and
# integration tests (in-process clusters, real server processes killed with
# SIGKILL, agents in network namespaces), then the PXE lab (e2e).
test: deps tools lint proto-check unit e2e

# unit runs under the race detector (RACE= turns it off); the server and
# agent binaries the integration tests start are built without it.
RACE ?= -race
unit:
	CGO_ENABLED=1 $(GO) test $(RACE) -count=1 -timeout $(TEST_TIMEOUT) $(UNIT_PKGS)

# e2e builds the discovery image and PXE-boots QEMU VMs against real
# clusters in network namespaces (needs root; installs QEMU, OVMF, iPXE and
# dnsmasq from Debian if missing).
e2e: image
	$(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) $(E2E_PKGS)

bench: deps
	$(GO) test -tags bench -count=1 -run . -v -timeout 60m ./test/bench/...
	$(GO) test -tags bench -count=1 -run 'TestAgentsAtScale|TestDispatchAtScale' -v -timeout 60m ./test/loadgen/
	$(GO) test -tags bench -count=1 -run 'TestBench(Boot|DHCP)' -v -timeout 60m ./test/lab/

# demo is the main job: a three-node cluster in a private lab network and a
# QEMU VM that PXE-boots and is discovered (root; installs QEMU and friends).
demo: build image
	$(GO) run ./test/demo/labdemo

# demo-local starts just a three-node cluster on loopback (no root needed).
demo-local: build
	bash test/demo/demo.sh

# image builds the discovery image (kernel + u-root initramfs with the agent
# as uinit) into discovery-image/out; it installs linux-image-amd64 and
# mdadm if missing.
image:
	bash discovery-image/build.sh

clean:
	rm -rf bin discovery-image/out
