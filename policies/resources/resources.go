// Package resources is a site's resource engine: it parses the site's
// local/resources.json (what the site offers jobs: GPUs and the memory of
// each) and decides whether a job's resource spec fits what is free, a GPU
// being given to one job at a time.
//
// Format (FLARE's GPU resource manager's arguments):
//
//	{"num_of_gpus": 2, "mem_per_gpu_in_GiB": 80}
//
// num_of_gpus is 0..1024 (0: CPU only), mem_per_gpu_in_GiB 0..4096; other
// keys are refused. A job asks in its manifest with
// `resources: {num_of_gpus: 1, mem_per_gpu_in_GiB: 16}` (package job).
package resources

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// MaxFileBytes bounds resources.json before it is parsed.
const MaxFileBytes = 64 << 10

// Limits on what a site may offer or a job ask.
const (
	MaxGPUs      = 1024
	MaxGPUMemory = 4096 // GiB
)

// Offer is what a site offers jobs.
type Offer struct {
	GPUs      int     `json:"num_of_gpus"`
	MemPerGPU float64 `json:"mem_per_gpu_in_GiB"`
}

// Parse parses resources.json strictly.
func Parse(data []byte) (Offer, error) {
	var o Offer
	if len(data) > MaxFileBytes {
		return o, fmt.Errorf("resources.json: %d bytes, more than %d", len(data), MaxFileBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, fmt.Errorf("resources.json: %w", err)
	}
	if dec.More() {
		return o, fmt.Errorf("resources.json: more than one JSON value")
	}
	if err := o.validate(); err != nil {
		return o, fmt.Errorf("resources.json: %w", err)
	}
	return o, nil
}

// ParseFile reads and parses path.
func ParseFile(path string) (Offer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Offer{}, fmt.Errorf("resources: %w", err)
	}
	return Parse(b)
}

func (o Offer) validate() error {
	switch {
	case o.GPUs < 0 || o.GPUs > MaxGPUs:
		return fmt.Errorf("num_of_gpus %d is not in 0..%d", o.GPUs, MaxGPUs)
	case !(o.MemPerGPU >= 0 && o.MemPerGPU <= MaxGPUMemory):
		return fmt.Errorf("mem_per_gpu_in_GiB %v is not in 0..%d", o.MemPerGPU, MaxGPUMemory)
	}
	return nil
}

// Request is a job's resource spec: the GPUs it needs at each site, and
// the memory each must have.
type Request struct {
	GPUs      int     `yaml:"num_of_gpus" json:"num_of_gpus"`
	MemPerGPU float64 `yaml:"mem_per_gpu_in_GiB" json:"mem_per_gpu_in_GiB"`
}

// Validate checks a request's bounds.
func (r Request) Validate() error {
	switch {
	case r.GPUs < 0 || r.GPUs > MaxGPUs:
		return fmt.Errorf("num_of_gpus %d is not in 0..%d", r.GPUs, MaxGPUs)
	case !(r.MemPerGPU >= 0 && r.MemPerGPU <= MaxGPUMemory):
		return fmt.Errorf("mem_per_gpu_in_GiB %v is not in 0..%d", r.MemPerGPU, MaxGPUMemory)
	case r.GPUs == 0 && r.MemPerGPU > 0:
		return fmt.Errorf("mem_per_gpu_in_GiB %v without num_of_gpus", r.MemPerGPU)
	}
	return nil
}

// Decision is Admit's answer; Reason always says why.
type Decision struct {
	Allowed bool
	Reason  string
}

// Admit decides a job's request against the offer with inUse of its GPUs
// given to other jobs: each GPU serves one job at a time.
func (o Offer) Admit(r Request, inUse int) Decision {
	switch {
	case r.GPUs == 0:
		return Decision{true, "the job needs no GPU"}
	case r.GPUs > o.GPUs:
		return Decision{false, fmt.Sprintf("resources: the job needs %d GPUs, this site offers %d", r.GPUs, o.GPUs)}
	case r.MemPerGPU > o.MemPerGPU:
		return Decision{false, fmt.Sprintf("resources: the job needs %g GiB per GPU, this site's have %g", r.MemPerGPU, o.MemPerGPU)}
	case r.GPUs > o.GPUs-inUse:
		return Decision{false, fmt.Sprintf("resources: the job needs %d GPUs; %d of this site's %d are given to other jobs", r.GPUs, inUse, o.GPUs)}
	}
	return Decision{true, fmt.Sprintf("%d of %d GPUs free", o.GPUs-inUse, o.GPUs)}
}
