package nvgpu_test

import (
	"strings"
	"testing"

	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
)

const h48 = "c3f65ef79a19c029868cd7ce54b10e44f192444edb3506dde29cef2aac4e916c90a4f438e55aa7581a9e384c74d82db6"

func TestParseReference(t *testing.T) {
	ref, err := nvgpu.ParseReference([]byte(`{
	  "measurements": {"1": ["` + h48 + `", "` + strings.ToUpper(h48) + `"], "0": ["00"]},
	  "minimum_driver": "550.54", "allow_devtools": false, "min_gpus": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	// RIM index 1 is SPDM block 2.
	if len(ref.Measurements[2]) != 2 || len(ref.Measurements[1]) != 1 || ref.MinGPUs != 2 || ref.AllowDevTools {
		t.Fatalf("%+v", ref)
	}
	if def, err := nvgpu.ParseReference([]byte(`{"measurements": {"0": ["00"]}}`)); err != nil || def.MinGPUs != 1 || def.MinimumDriver != nil || def.AllowDevTools {
		t.Fatalf("defaults: %+v %v", def, err)
	}
}

func TestParseReferenceRefuses(t *testing.T) {
	cases := []struct{ name, raw, want string }{
		{"not json", `{`, "unexpected EOF"},
		{"unknown key", `{"measurements": {"0": ["00"]}, "measurement": {}}`, `unknown field "measurement"`},
		{"trailing data", `{"measurements": {"0": ["00"]}} {}`, "data after the object"},
		{"no measurements", `{"minimum_driver": "550.54"}`, `"measurements" is required`},
		{"empty measurements", `{"measurements": {}}`, `"measurements" is required`},
		{"index not a number", `{"measurements": {"x": ["00"]}}`, `index "x" is not a RIM index`},
		{"index with leading zero", `{"measurements": {"01": ["00"]}}`, `index "01"`},
		{"index too large", `{"measurements": {"254": ["00"]}}`, `index "254"`},
		{"negative index", `{"measurements": {"-1": ["00"]}}`, `index "-1"`},
		{"no values", `{"measurements": {"0": []}}`, "1 to 32 values, got 0"},
		{"bad hex", `{"measurements": {"0": ["zz"]}}`, `"zz" is not 1 to 64 bytes of hex`},
		{"odd hex", `{"measurements": {"0": ["abc"]}}`, "is not 1 to 64 bytes of hex"},
		{"empty value", `{"measurements": {"0": [""]}}`, "is not 1 to 64 bytes of hex"},
		{"value not a string", `{"measurements": {"0": [1]}}`, "cannot unmarshal number"},
		{"bad driver", `{"measurements": {"0": ["00"]}, "minimum_driver": "r550"}`, "minimum_driver"},
		{"empty driver", `{"measurements": {"0": ["00"]}, "minimum_driver": ""}`, "minimum_driver"},
		{"driver with empty part", `{"measurements": {"0": ["00"]}, "minimum_driver": "550..1"}`, "minimum_driver"},
		{"devtools not bool", `{"measurements": {"0": ["00"]}, "allow_devtools": "no"}`, "allow_devtools"},
		{"min_gpus zero", `{"measurements": {"0": ["00"]}, "min_gpus": 0}`, "min_gpus: 0"},
		{"min_gpus too many", `{"measurements": {"0": ["00"]}, "min_gpus": 17}`, "min_gpus: 17"},
		{"oversize", `{"measurements": {"0": ["` + strings.Repeat("0", nvgpu.MaxReference) + `"]}}`, "bytes, at most"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := nvgpu.ParseReference([]byte(tc.raw))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "nvidia-gpu reference: ") {
				t.Fatalf("err = %q", err)
			}
		})
	}
}
