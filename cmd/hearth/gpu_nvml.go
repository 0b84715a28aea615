//go:build cgo && nvml

package main

import "github.com/hearthfl/hearth/plugins/attest"

// hardwareGPU is the host's NVIDIA GPUs through NVML: this build (cgo,
// -tags nvml) links go-nvml.
func hardwareGPU() (attest.GPU, error) { return attest.NewNVML(), nil }
