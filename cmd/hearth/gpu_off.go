//go:build !(cgo && nvml)

package main

import (
	"errors"

	"github.com/hearthfl/hearth/plugins/attest"
)

// hardwareGPU: the default hearth binary is pure Go and links no NVML, so
// it collects no GPU evidence; build it with CGO_ENABLED=1 -tags nvml on
// the aggregation host for that.
func hardwareGPU() (attest.GPU, error) {
	return nil, errors.New("this hearth binary collects no NVIDIA GPU evidence: build it with CGO_ENABLED=1 go build -tags nvml ./cmd/hearth")
}
