package aggregator

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// StreamSum is FedAvg for streamed models: each site's update arrives as
// chunks (already checked against the hashes of its signed manifest), and
// each chunk is folded into one running weighted sum as it arrives, so the
// aggregator holds about one model whatever the number of sites. Chunks of
// different sites fold concurrently.
//
// Weights are kept per chunk, so each parameter is the weighted mean of the
// sites that delivered it: a site whose stream breaks off is left out of the
// chunks it did not deliver, and nothing it did not deliver is averaged in.
// A chunk that fails its hash never reaches the sum (the stream re-requests
// it); a chunk holding NaN or infinity is refused here, which fails that
// site's stream.
type StreamSum struct {
	acc        *model.Flat
	chunkBytes int
	mu         []sync.Mutex // one per chunk
	weights    []float64    // total weight folded into each chunk
	zeros      []float32    // a chunk of zeros, for the finiteness check
}

// NewStreamSum makes a sum of models streamed in chunks of chunkBytes (a
// multiple of 4) in acc, a buffer of their layout, whatever it holds (the
// previous round's global model, say): each chunk's first fold overwrites
// it, and Mean refuses a chunk no site delivered. The sum owns acc from
// then on (Mean hands it back, Close releases it; on error it is released).
func NewStreamSum(acc *model.Flat, chunkBytes int) (*StreamSum, error) {
	if err := checkChunkBytes(chunkBytes); err != nil {
		acc.Close()
		return nil, err
	}
	chunks := int((acc.Size() + int64(chunkBytes) - 1) / int64(chunkBytes))
	return &StreamSum{acc: acc, chunkBytes: chunkBytes, mu: make([]sync.Mutex, chunks), weights: make([]float64, chunks),
		zeros: make([]float32, chunkBytes/4)}, nil
}

func checkChunkBytes(n int) error {
	if n <= 0 || n%4 != 0 {
		return fmt.Errorf("chunk size %d is not a positive multiple of 4", n)
	}
	return nil
}

// Site returns the sink for one site's update stream, folded with weight
// (its training sample count).
func (s *StreamSum) Site(weight float64) *SiteSink { return &SiteSink{sum: s, weight: weight} }

// SiteSink folds one site's chunks; it implements the stream package's Sink.
type SiteSink struct {
	sum    *StreamSum
	weight float64
}

// WriteChunk folds chunk index (bytes at offset) into the sum.
func (k *SiteSink) WriteChunk(index int, offset int64, data []byte) error {
	s := k.sum
	switch {
	case !(k.weight > 0) || math.IsInf(k.weight, 0):
		return fmt.Errorf("weight %v is not positive", k.weight)
	case index < 0 || index >= len(s.weights) || offset != int64(index)*int64(s.chunkBytes):
		return fmt.Errorf("chunk %d at offset %d does not fit the model", index, offset)
	case len(data)%4 != 0 || len(data) > s.chunkBytes || offset+int64(len(data)) > s.acc.Size():
		return fmt.Errorf("chunk %d: %d bytes do not fit the model", index, len(data))
	}
	xs := blas32.Vector{N: len(data) / 4, Inc: 1, Data: floats(data)}
	// Check the whole chunk before folding any of it: x*0 is NaN exactly
	// when x is NaN or infinite, so x·0 is 0 exactly when all of x is finite.
	if blas32.Dot(xs, blas32.Vector{N: xs.N, Inc: 1, Data: s.zeros[:xs.N]}) != 0 {
		for i, x := range xs.Data {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("chunk %d holds %v at byte %d", index, x, 4*i)
			}
		}
	}
	acc := blas32.Vector{N: xs.N, Inc: 1, Data: s.acc.Data[offset/4 : offset/4+int64(xs.N)]}
	s.mu[index].Lock()
	if s.weights[index] == 0 { // the chunk's first site: whatever the buffer held is overwritten
		blas32.Copy(xs, acc)
		blas32.Scal(float32(k.weight), acc)
	} else {
		blas32.Axpy(float32(k.weight), xs, acc)
	}
	s.weights[index] += k.weight
	s.mu[index].Unlock()
	return nil
}

// floats views little-endian float32 bytes as floats: in place when the
// bytes are 4-aligned (the common case), else through a copy.
func floats(data []byte) []float32 {
	n := len(data) / 4
	if n == 0 {
		return nil
	}
	if uintptr(unsafe.Pointer(&data[0]))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), n)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out
}

// Mean divides the sum by the weights, in place, and hands the result over:
// the StreamSum must not be used afterwards. It fails, releasing the
// memory, if some chunk was delivered by no site.
func (s *StreamSum) Mean() (*model.Flat, error) {
	floats := s.chunkBytes / 4
	for c, w := range s.weights {
		if w == 0 {
			s.acc.Close()
			return nil, fmt.Errorf("chunk %d of the model was delivered by no site", c)
		}
		chunk := s.acc.Data[c*floats : min((c+1)*floats, len(s.acc.Data))]
		blas32.Scal(float32(1/w), blas32.Vector{N: len(chunk), Inc: 1, Data: chunk})
	}
	return s.acc, nil
}

// Close releases the sum without computing a mean.
func (s *StreamSum) Close() error { return s.acc.Close() }
