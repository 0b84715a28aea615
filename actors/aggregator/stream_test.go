package aggregator_test

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/learning/model"
)

func le(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// newSum is a StreamSum in a new buffer of layout.
func newSum(layout []model.TensorShape, chunkBytes int) (*aggregator.StreamSum, error) {
	acc, err := model.NewFlat(layout, "")
	if err != nil {
		return nil, err
	}
	return aggregator.NewStreamSum(acc, chunkBytes)
}

func TestStreamSumIsFedAvgChunkByChunk(t *testing.T) {
	layout := []model.TensorShape{{Name: "w", Shape: []int{5}}}
	sum, err := newSum(layout, 8) // chunks of 2 floats: [0,1] [2,3] [4]
	if err != nil {
		t.Fatal(err)
	}
	a, b := sum.Site("a", 300), sum.Site("b", 100)
	var wg sync.WaitGroup
	for _, f := range []func() error{
		func() error { return a.WriteChunk(0, 0, le(1, 1)) },
		func() error { return a.WriteChunk(1, 8, le(1, 1)) },
		func() error { return a.WriteChunk(2, 16, le(1)) },
		func() error { return b.WriteChunk(0, 0, le(5, 5)) },
		func() error { return b.WriteChunk(1, 8, le(5, 5)) },
		// b's stream broke off before its last chunk.
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := b.WriteChunk(2, 16, le(float32(math.NaN()))); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Fatalf("NaN chunk: %v", err)
	}
	if err := b.WriteChunk(2, 16, le(float32(math.Inf(-1)))); err == nil || !strings.Contains(err.Error(), "-Inf") {
		t.Fatalf("infinite chunk: %v", err)
	}
	if err := a.WriteChunk(3, 24, le(1)); err == nil {
		t.Fatal("a chunk past the end was folded")
	}
	if err := a.WriteChunk(1, 12, le(1, 1)); err == nil {
		t.Fatal("a chunk at the wrong offset was folded")
	}
	if err := a.WriteChunk(0, 0, le(1, 1, 1)); err == nil || !strings.Contains(err.Error(), "do not fit") {
		t.Fatalf("a chunk longer than the chunk size: %v", err)
	}
	mean, err := sum.Mean()
	if err != nil {
		t.Fatal(err)
	}
	defer mean.Close()
	want := []float32{2, 2, 2, 2, 1} // (300*1+100*5)/400 = 2; the last parameter only from a
	for i, v := range mean.Data {
		if v != want[i] {
			t.Fatalf("mean %v, want %v", mean.Data, want)
		}
	}
}

func TestStreamSumRefusesAChunkNobodyDelivered(t *testing.T) {
	sum, err := newSum([]model.TensorShape{{Name: "w", Shape: []int{4}}}, 8)
	if err != nil {
		t.Fatal(err)
	}
	if err := sum.Site("a", 1).WriteChunk(0, 0, le(1, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := sum.Mean(); err == nil || !strings.Contains(err.Error(), "chunk 1") {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkStreamSumFold(b *testing.B) {
	const chunk = 1 << 20
	sum, err := newSum([]model.TensorShape{{Name: "w", Shape: []int{64 << 20}}}, chunk)
	if err != nil {
		b.Fatal(err)
	}
	defer sum.Close()
	site := sum.Site("a", 100)
	data := le(make([]float32, chunk/4)...)
	b.SetBytes(chunk)
	b.ResetTimer()
	for i := range b.N {
		if err := site.WriteChunk(i%256, int64(i%256)*chunk, data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestStreamSumIgnoresWhatTheBufferHeld(t *testing.T) {
	layout := []model.TensorShape{{Name: "w", Shape: []int{3}}}
	acc, err := model.NewFlat(layout, "")
	if err != nil {
		t.Fatal(err)
	}
	copy(acc.Data, []float32{9, 9, 9}) // last round's model
	sum, err := aggregator.NewStreamSum(acc, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := sum.Site("a", 2).WriteChunk(i, int64(4*i), le(float32(i))); err != nil {
			t.Fatal(err)
		}
	}
	mean, err := sum.Mean()
	if err != nil {
		t.Fatal(err)
	}
	defer mean.Close()
	if want := []float32{0, 1, 2}; !slices.Equal(mean.Data, want) {
		t.Fatalf("mean %v, want %v: the buffer's old values leaked into the sum", mean.Data, want)
	}
}

func TestStreamSumRefusesChunksThatSplitAFloat(t *testing.T) {
	for _, chunk := range []int{0, -4, 6} {
		acc, err := model.NewFlat([]model.TensorShape{{Name: "w", Shape: []int{4}}}, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := aggregator.NewStreamSum(acc, chunk); err == nil || !strings.Contains(err.Error(), "multiple of 4") {
			t.Fatalf("chunks of %d bytes: %v", chunk, err)
		}
		if acc.Data != nil {
			t.Fatalf("chunks of %d bytes: the refused buffer was not released", chunk)
		}
	}
}
