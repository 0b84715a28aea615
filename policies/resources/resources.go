// Package resources is a site's resource engine: it parses the site's
// local/resources.json (what the site offers jobs: GPUs and the memory of
// each, and whether it aggregates swarm rounds) and decides whether a
// job's resource spec fits what is free, a GPU being given to one job at a
// time, and whether the site may be one of a swarm job's aggregators.
//
// Format (FLARE's GPU resource manager's arguments, and one Hearth key):
//
//	{"num_of_gpus": 2, "mem_per_gpu_in_GiB": 80, "aggregate": false}
//
// num_of_gpus is 0..1024 (0: CPU only), mem_per_gpu_in_GiB 0..4096;
// aggregate (a Hearth extension, not FLARE's) is optional: absent or true,
// the site aggregates swarm rounds; false, it joins no swarm job that
// names it among the job's eligible aggregators (AdmitAggregation). Other
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
	// Aggregate is the site's "aggregate" key: nil (absent) or true, it
	// aggregates swarm rounds; false, it does not. Read it with
	// Aggregates.
	Aggregate *bool `json:"aggregate,omitempty"`
}

// Aggregates says whether the site aggregates swarm rounds: true unless
// its resources.json says "aggregate": false.
func (o Offer) Aggregates() bool { return o.Aggregate == nil || *o.Aggregate }

// AdmitAggregation decides whether the site may join a job that names it
// among its eligible aggregators (named says so); a job that does not name
// it is admitted whatever the site's policy.
func (o Offer) AdmitAggregation(named bool) Decision {
	switch {
	case !named:
		return Decision{true, "the job does not name this site among its aggregators"}
	case !o.Aggregates():
		return Decision{false, `resources: the job names this site among its eligible aggregators, and its local/resources.json says "aggregate": false`}
	}
	return Decision{true, "this site aggregates"}
}

// Parse parses resources.json strictly.
func Parse(data []byte) (Offer, error) {
	var o Offer
	if len(data) > MaxFileBytes {
		return o, fmt.Errorf("resources.json: %d bytes, more than %d", len(data), MaxFileBytes)
	}
	var file struct {
		GPUs      int             `json:"num_of_gpus"`
		MemPerGPU float64         `json:"mem_per_gpu_in_GiB"`
		Aggregate json.RawMessage `json:"aggregate"` // present: true or false, never null
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return o, fmt.Errorf("resources.json: %w", err)
	}
	if dec.More() {
		return o, fmt.Errorf("resources.json: more than one JSON value")
	}
	o.GPUs, o.MemPerGPU = file.GPUs, file.MemPerGPU
	if file.Aggregate != nil {
		var b bool
		if string(file.Aggregate) == "null" || json.Unmarshal(file.Aggregate, &b) != nil {
			return o, fmt.Errorf("resources.json: aggregate is %.40s, want true or false (or leave it out: true)", file.Aggregate)
		}
		o.Aggregate = &b
	}
	if err := o.validate(); err != nil {
		return o, fmt.Errorf("resources.json: %w", err)
	}
	return o, nil
}

// ParseFile reads and parses path, a file of at most MaxFileBytes.
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
