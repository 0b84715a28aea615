package nvgpu

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Bounds on a reference.
const (
	// MaxReference bounds the reference's JSON text.
	MaxReference = 256 << 10
	// MaxAlternatives bounds the accepted values of one index.
	MaxAlternatives = 32
	// maxMeasurement bounds one reference value (SHA-512 at most).
	maxMeasurement = 64
	// maxRIMIndex is the largest RIM index (SPDM block indices run 1 to
	// 0xFE for measurements).
	maxRIMIndex = 0xFD
)

// Reference is a site's reference values for NVIDIA GPU evidence. Build it
// with ParseReference; the zero value accepts nothing.
type Reference struct {
	// Measurements maps an SPDM measurement block index (1-based) to its
	// accepted values; every listed index must be present in every GPU's
	// report with one of them.
	Measurements map[int][][]byte
	// MinimumDriver is the lowest accepted driver version, numeric
	// components; nil means no minimum.
	MinimumDriver []int
	// AllowDevTools accepts CC developer-tools mode.
	AllowDevTools bool
	// MinGPUs is the fewest GPUs accepted (at least 1).
	MinGPUs int
}

// referenceJSON is the file's shape; see the package doc.
type referenceJSON struct {
	Measurements  map[string][]string `json:"measurements"`
	MinimumDriver *string             `json:"minimum_driver"`
	AllowDevTools *bool               `json:"allow_devtools"`
	MinGPUs       *int                `json:"min_gpus"`
}

// ParseReference parses a reference strictly: unknown keys, trailing data,
// a missing or empty measurements object, a bad index or hex value, a
// malformed minimum_driver or a min_gpus outside 1 to MaxDevices are all
// errors that name the field.
func ParseReference(raw json.RawMessage) (*Reference, error) {
	if len(raw) > MaxReference {
		return nil, fmt.Errorf("nvidia-gpu reference: %d bytes, at most %d", len(raw), MaxReference)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var rj referenceJSON
	if err := dec.Decode(&rj); err != nil {
		return nil, fmt.Errorf("nvidia-gpu reference: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("nvidia-gpu reference: data after the object")
	}
	ref := &Reference{Measurements: make(map[int][][]byte, len(rj.Measurements)), MinGPUs: 1}
	if len(rj.Measurements) == 0 {
		return nil, errors.New(`nvidia-gpu reference: "measurements" is required and must not be empty`)
	}
	keys := make([]string, 0, len(rj.Measurements))
	for k := range rj.Measurements {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i > maxRIMIndex || strconv.Itoa(i) != k {
			return nil, fmt.Errorf("nvidia-gpu reference: measurements: index %q is not a RIM index 0 to %d", clip(k), maxRIMIndex)
		}
		vals := rj.Measurements[k]
		if len(vals) == 0 || len(vals) > MaxAlternatives {
			return nil, fmt.Errorf("nvidia-gpu reference: measurements[%s]: 1 to %d values, got %d", k, MaxAlternatives, len(vals))
		}
		for _, v := range vals {
			b, err := hex.DecodeString(v)
			if err != nil || len(b) == 0 || len(b) > maxMeasurement {
				return nil, fmt.Errorf("nvidia-gpu reference: measurements[%s]: %q is not 1 to %d bytes of hex", k, clip(v), maxMeasurement)
			}
			ref.Measurements[i+1] = append(ref.Measurements[i+1], b)
		}
	}
	if rj.MinimumDriver != nil {
		v, err := parseVersion(*rj.MinimumDriver)
		if err != nil {
			return nil, fmt.Errorf("nvidia-gpu reference: minimum_driver: %w", err)
		}
		ref.MinimumDriver = v
	}
	if rj.AllowDevTools != nil {
		ref.AllowDevTools = *rj.AllowDevTools
	}
	if rj.MinGPUs != nil {
		if *rj.MinGPUs < 1 || *rj.MinGPUs > MaxDevices {
			return nil, fmt.Errorf("nvidia-gpu reference: min_gpus: %d, want 1 to %d", *rj.MinGPUs, MaxDevices)
		}
		ref.MinGPUs = *rj.MinGPUs
	}
	return ref, nil
}

// parseVersion parses a dotted decimal version ("550.54.15"): 1 to 4
// components of 1 to 6 digits.
func parseVersion(s string) ([]int, error) {
	parts := strings.Split(s, ".")
	if s == "" || len(parts) > 4 {
		return nil, fmt.Errorf("%q is not a version like 550.54.15", clip(s))
	}
	v := make([]int, len(parts))
	for i, p := range parts {
		if len(p) == 0 || len(p) > 6 || strings.Trim(p, "0123456789") != "" {
			return nil, fmt.Errorf("%q is not a version like 550.54.15", clip(s))
		}
		v[i], _ = strconv.Atoi(p)
	}
	return v, nil
}

// versionLess reports a < b, missing components counting as 0.
func versionLess(a, b []int) bool {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// versionString writes a version back in dotted form.
func versionString(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ".")
}
