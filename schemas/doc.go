// Package schemas holds Hearth's protobuf sources, in versioned packages
// (schemas/hearth/v1 is package hearth.v1), and the Go code generated from
// them, which is committed. Regenerate with `go generate ./schemas` (needs
// protoc on PATH); CI checks that the committed code is current.
package schemas

//go:generate sh -c "protoc --plugin=protoc-gen-go=./gen-protoc-gen-go.sh --go_out=. --go_opt=paths=source_relative hearth/v1/*.proto"
