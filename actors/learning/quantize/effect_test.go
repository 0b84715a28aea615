package quantize

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestMeasure(t *testing.T) {
	v := randomVector(20, 300000, 0.01) // two chunks, the second partial
	tests := []struct {
		codec         string
		bytesPerValue float64
		maxRelL2      float64 // an upper bound on the relative L2 error
	}{
		{codec: "float32", bytesPerValue: 4, maxRelL2: 0},
		{codec: "float16", bytesPerValue: 2, maxRelL2: 0x1p-11},
		{codec: "bfloat16", bytesPerValue: 2, maxRelL2: 0x1p-8},
		{codec: "int8-block64", bytesPerValue: 1.0625, maxRelL2: 0.02},
		{codec: "int8-block4096", bytesPerValue: 1 + 4.0/4096, maxRelL2: 0.15}, // outliers set the scale of every large block
	}
	for _, tt := range tests {
		t.Run(tt.codec, func(t *testing.T) {
			c, _ := ByName(tt.codec)
			e, err := Measure(c, v, 262144)
			if err != nil {
				t.Fatal(err)
			}
			if e.Codec != tt.codec || e.Values != len(v) || e.Bytes != int64(c.EncodedSize(262144)+c.EncodedSize(300000-262144)) {
				t.Fatalf("%+v", e)
			}
			if math.Abs(e.BytesPerValue-tt.bytesPerValue) > 1e-3 || e.RelL2Error > tt.maxRelL2 || (tt.maxRelL2 > 0) != (e.RelL2Error > 0) {
				t.Fatalf("%v", e)
			}
			if !strings.HasPrefix(e.String(), tt.codec+": ") {
				t.Fatalf("String() = %q", e)
			}
			t.Log(e)
		})
	}
}

func TestMeasureEdges(t *testing.T) {
	tests := []struct {
		name    string
		codec   string
		v       []float32
		chunk   int
		want    error // nil: no error
		maxAbs  float64
		relL2   float64
		refused bool
	}{
		{name: "empty", codec: "int8-block64", v: nil, chunk: 10},
		{name: "zeros", codec: "int8-block64", v: make([]float32, 100), chunk: 10},
		{name: "float16 overflow is infinite error", codec: "float16", v: []float32{1e6, 1}, chunk: 10, maxAbs: math.Inf(1), relL2: math.Inf(1)},
		{name: "NaN refused by float16", codec: "float16", v: []float32{1, float32(math.NaN())}, chunk: 10, want: ErrNonFinite},
		{name: "NaN refused by int8", codec: "int8-block64", v: []float32{float32(math.NaN())}, chunk: 10, want: ErrNonFinite},
		{name: "no chunk", codec: "float32", v: []float32{1}, chunk: 0, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := ByName(tt.codec)
			e, err := Measure(c, tt.v, tt.chunk)
			switch {
			case tt.want != nil || tt.refused:
				if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
					t.Fatalf("Measure: %+v, %v; want %v", e, err, tt.want)
				}
			case err != nil:
				t.Fatal(err)
			case e.MaxAbsError != tt.maxAbs || e.RelL2Error != tt.relL2:
				t.Fatalf("%+v", e)
			}
		})
	}
}
