PROTO_FILES := $(wildcard proto/underlay/v1/*.proto)
export PATH := $(HOME)/go/bin:$(PATH)

.PHONY: proto
proto:
	protoc -I proto --go_out=. --go_opt=module=underlay.dev --go-grpc_out=. --go-grpc_opt=module=underlay.dev $(PROTO_FILES)
