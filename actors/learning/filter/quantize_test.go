package filter_test

import (
	"errors"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/filter"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/quantize"
)

func TestQuantizeExact(t *testing.T) {
	local := mdl(tensor("w", []int{3}, 0.1, 1.0/3, -2.5))
	tests := []struct {
		codec string
		want  []float32
		bytes int64
	}{
		// binary16: 0.1 is 0x2E66, 1/3 is 0x3555, -2.5 exact.
		{quantize.NameFloat16, []float32{0.0999755859375, 0.333251953125, -2.5}, 6},
		// bfloat16: 0.1 is 0x3DCD, 1/3 is 0x3EAB.
		{quantize.NameBFloat16, []float32{0.10009765625, 0.333984375, -2.5}, 6},
		{quantize.NameFloat32, []float32{0.1, 1.0 / 3, -2.5}, 12},
	}
	for _, tt := range tests {
		t.Run(tt.codec, func(t *testing.T) {
			out, rep := apply(t, build(t, filter.Quantize{Codec: tt.codec}), nil, local)
			wantData(t, out, map[string][]float32{"w": tt.want})
			if rep.Effect == nil || rep.Effect.Codec != tt.codec || rep.Effect.Bytes != tt.bytes || rep.Effect.Values != 3 {
				t.Errorf("effect %+v", rep.Effect)
			}
		})
	}
}

// Chunks are gathered across tensor boundaries; since every int8 block
// size divides a chunk, the result is the codec's round trip of the whole
// diff at once.
func TestQuantizeChunksAcrossTensors(t *testing.T) {
	global, local := ramp(filter.ChunkValues + 1000)
	out, rep := apply(t, build(t, filter.Quantize{Codec: "int8-block256"}), global, local)
	var diff []float32
	for i, tt := range local.Tensors {
		for j, v := range tt.Data {
			diff = append(diff, float32(float64(v)-float64(global.Tensors[i].Data[j])))
		}
	}
	codec, _ := quantize.ByName("int8-block256")
	enc, err := codec.Encode(nil, diff)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := codec.Decode(nil, enc)
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	for i, tt := range out.Tensors {
		for j, v := range tt.Data {
			if want := float32(float64(global.Tensors[i].Data[j]) + float64(dec[k])); v != want {
				t.Fatalf("%s[%d] = %v, want %v", tt.Name, j, v, want)
			}
			k++
		}
	}
	if rep.Effect.Bytes != int64(len(enc)) || rep.Effect.MaxAbsError == 0 || rep.Effect.MaxAbsError > 0.01/254*1.01 {
		t.Errorf("effect %+v", rep.Effect)
	}
}

func TestQuantizeRefusesOverflow(t *testing.T) {
	tests := []struct {
		name          string
		codec         string
		global, local *model.Model
	}{
		{"float16 beyond 65504", quantize.NameFloat16, nil, mdl(tensor("w", []int{2}, 1, 70000))},
		{"diff beyond float32", quantize.NameFloat32, mdl(tensor("w", []int{1}, -3e38)), mdl(tensor("w", []int{1}, 3e38))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := build(t, filter.Quantize{Codec: tt.codec}).Apply(tt.global, tt.local)
			if !errors.Is(err, filter.ErrNonFinite) || out != nil {
				t.Fatalf("got %v, %v; want ErrNonFinite", out, err)
			}
		})
	}
}

// float32 carries every diff that float32 holds exactly, so the model
// comes back bit for bit.
func TestQuantizeFloat32IsIdentity(t *testing.T) {
	global, local := ramp(5000)
	out, rep := apply(t, build(t, filter.Quantize{Codec: quantize.NameFloat32}), global, local)
	if !equalBits(out, local) || rep.Effect.MaxAbsError != 0 {
		t.Fatalf("float32 changed the model (max error %v)", rep.Effect.MaxAbsError)
	}
}
