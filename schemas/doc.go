// Package schemas holds Hearth's protobuf sources, in versioned packages
// (schemas/hearth/v1 is package hearth.v1; the plugin kinds' wire
// contracts are under schemas/hearth/plugin, e.g. hearth.plugin.authn.v1),
// and the Go code generated from them, which is committed: messages by
// protoc-gen-go, gRPC services (the plugins') by protoc-gen-go-grpc, both
// at the versions go.mod pins as tools. Regenerate with
// `go generate ./schemas` (needs protoc on PATH); CI checks that the
// committed code is current.
package schemas

//go:generate sh -c "protoc --plugin=protoc-gen-go=./gen-protoc-gen-go.sh --plugin=protoc-gen-go-grpc=./gen-protoc-gen-go-grpc.sh --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative hearth/v1/*.proto hearth/plugin/authn/v1/*.proto hearth/plugin/filter/v1/*.proto hearth/plugin/trainer/v1/*.proto hearth/plugin/checker/v1/*.proto"
