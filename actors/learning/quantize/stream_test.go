package quantize_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/hearthfl/hearth/actors/learning/quantize"
)

// collect is a float32 stream's recipient: chunks at their offsets.
type collect struct{ out []float32 }

func (c *collect) WriteChunk(index int, offset int64, data []byte) error {
	vals := unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), len(data)/4)
	copy(c.out[offset/4:], vals)
	return nil
}

// TestStreamRoundTrip: a model of two and a half chunks encodes chunk by
// chunk, each chunk decodes on its own (in any order) to its place in the
// float32 stream, within each codec's bound.
func TestStreamRoundTrip(t *testing.T) {
	n := 2*quantize.ChunkValues + quantize.ChunkValues/2 + 3
	values := make([]float32, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range values {
		values[i] = float32(r.NormFloat64())
	}
	for _, name := range []string{quantize.NameFloat32, quantize.NameFloat16, quantize.NameBFloat16, quantize.NameInt8Block64} {
		t.Run(name, func(t *testing.T) {
			codec, err := quantize.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			st := quantize.Stream{Codec: codec, Values: n}
			enc, err := st.Encode(values)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(enc)) != st.Size() {
				t.Fatalf("encoded %d bytes, Size says %d", len(enc), st.Size())
			}
			if err := st.Check(st.Size(), st.ChunkBytes()); err != nil {
				t.Fatal(err)
			}
			got := &collect{out: make([]float32, n)}
			sink := st.Sink(got)
			cb := st.ChunkBytes()
			for _, i := range []int{2, 0, 1} { // out of order, as resent chunks come
				end := min((i+1)*cb, len(enc))
				if err := sink.WriteChunk(i, int64(i*cb), enc[i*cb:end]); err != nil {
					t.Fatalf("chunk %d: %v", i, err)
				}
			}
			worst := 0.0
			for i, v := range values {
				worst = max(worst, math.Abs(float64(v-got.out[i])))
			}
			bound := map[string]float64{quantize.NameFloat32: 0, quantize.NameFloat16: 5 * math.Pow(2, -11),
				quantize.NameBFloat16: 5 * math.Pow(2, -8), quantize.NameInt8Block64: 6.0 / 127 / 2 * 1.001}[name]
			if worst > bound {
				t.Fatalf("worst error %g, bound %g", worst, bound)
			}
			t.Logf("%s: %d values, %d bytes (%.3f of float32), worst error %.3g", name, n, len(enc), float64(len(enc))/float64(4*n), worst)
		})
	}
}

// TestStreamRefusesOtherGeometry: a manifest of another size or chunking
// is refused before any chunk is read, and a chunk that decodes to the
// wrong number of values, or out of range, fails the stream.
func TestStreamRefusesOtherGeometry(t *testing.T) {
	codec, _ := quantize.ByName(quantize.NameInt8Block64)
	st := quantize.Stream{Codec: codec, Values: 3 * quantize.ChunkValues}
	for _, tc := range []struct {
		total int64
		chunk int
	}{{st.Size() - 68, st.ChunkBytes()}, {st.Size(), st.ChunkBytes() / 2}, {4 * 3 * quantize.ChunkValues, 1 << 20}} {
		if err := st.Check(tc.total, tc.chunk); err == nil || !strings.Contains(err.Error(), "int8-block64 stream") {
			t.Errorf("Check(%d, %d) = %v", tc.total, tc.chunk, err)
		}
	}
	sink := st.Sink(&collect{out: make([]float32, st.Values)})
	half, _ := codec.Encode(nil, make([]float32, quantize.ChunkValues/2))
	if err := sink.WriteChunk(0, 0, half); err == nil || !strings.Contains(err.Error(), "decodes to") {
		t.Errorf("a short chunk: %v", err)
	}
	if err := sink.WriteChunk(3, 0, half); err == nil || !strings.Contains(err.Error(), "of a 3-chunk stream") {
		t.Errorf("a chunk past the end: %v", err)
	}
	if err := sink.WriteChunk(0, 0, []byte{1, 2, 3}); err == nil {
		t.Error("malformed bytes decoded")
	}
}
