package aggregator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/hearthfl/hearth/actors/learning/model"
)

// StreamSum aggregates models streamed in chunks: each site's update
// arrives as chunks (already checked against the hashes of its signed
// manifest) and is taken chunk by chunk, so the aggregator never holds a
// site's whole update. It has two forms:
//
//   - NewStreamSum: unbounded FedAvg (defences off). Each chunk is folded
//     into a running weighted mean as it arrives, chunks of different sites
//     concurrently; memory is the one model buffer.
//   - NewRuleSum: every other Rule. A lockstep assembler holds chunk i of
//     every site still in the round until all of them delivered it (or
//     failed), then bounds each site's chunk (see below), combines them
//     (FedAvg, median, trimmed mean) and writes the result into the model
//     buffer. A site more than LockstepWindow chunks ahead of the slowest
//     blocks in WriteChunk, which holds back its stream's credit. Memory is
//     the model buffer plus at most N*LockstepWindow+1 chunk buffers for N
//     sites, whatever the model's size (with 1 MiB chunks and 4 sites, 33
//     MiB; BenchmarkRuleSum measures it), besides the streams' own windows.
//
// Weights are kept per chunk, so each parameter is the aggregate of the
// sites that delivered it: a site whose stream breaks off is left out of the
// chunks it did not deliver (a lockstep sum: that were not yet combined). A chunk that fails its hash never reaches the
// sum (the stream re-requests it); a chunk holding NaN or infinity, or
// shorter than the chunk size when it is not the last, is refused here,
// which fails that site's stream. Mean checks every value finite.
//
// The norm bound on streams is per chunk, in one pass: an absolute bound B
// allows chunk c of len_c of the model's len values a distance of
// B*sqrt(len_c/len), so an update within every chunk's bound is within B
// as a whole; a relative bound R allows R times the median of the sites'
// distances on that chunk. A site refused (on_violation: refuse) at chunk c
// fails from there on; its chunks before c, each within its bound, stay in.
type StreamSum struct {
	acc        *model.Flat
	chunkBytes int
	chunks     int

	// Unbounded FedAvg: one lock and the total weight folded, per chunk.
	mu      []sync.Mutex
	weights []float64

	ls *lockstep // every other rule
}

// LockstepWindow is how many chunks a site may run ahead of the slowest
// site of a lockstep round before its WriteChunk blocks.
const LockstepWindow = 8

// LockstepPatience is how long a site held back by the window waits for
// the chunk the round needs next; past it, the sites that have not
// delivered that chunk are left out of the round as too slow, so that one
// site trickling its update cannot pace every other (and stall their
// streams: a blocked sink stops its stream's credits). It is well under
// the streams' stall timeout.
const LockstepPatience = 10 * time.Second

// NewStreamSum makes an unbounded FedAvg sum of models streamed in chunks
// of chunkBytes (a multiple of 4) in acc, a buffer of their layout,
// whatever it holds (the previous round's global model, say): each chunk's
// first fold overwrites it, and Mean refuses a chunk no site delivered. The
// sum owns acc from then on (Mean hands it back, Close releases it; on
// error it is released).
func NewStreamSum(acc *model.Flat, chunkBytes int) (*StreamSum, error) {
	s, err := newStreamSum(acc, chunkBytes)
	if err != nil {
		return nil, err
	}
	s.mu, s.weights = make([]sync.Mutex, s.chunks), make([]float64, s.chunks)
	return s, nil
}

// NewRuleSum makes a lockstep sum under rule of the updates of sites, the
// round's sites, all of which must be pulled at once (each through Site,
// each ended with Done): the assembler waits for every one not yet failed.
// global is the round's global model, from which each update's distance is
// bounded; it may be acc itself (chunk i of it is read before chunk i of
// the aggregate is written), else it is only read, and must stay valid
// until Mean or Close. The sum owns acc as with NewStreamSum. Krum and
// Multi-Krum are refused (see Rule.Streamable).
func NewRuleSum(acc, global *model.Flat, chunkBytes int, rule Rule, sites []string) (*StreamSum, error) {
	if err := errors.Join(rule.Validate(), rule.Streamable()); err != nil {
		acc.Close()
		return nil, err
	}
	if global.Size() != acc.Size() {
		acc.Close()
		return nil, fmt.Errorf("global model of %d bytes for a sum of %d", global.Size(), acc.Size())
	}
	s, err := newStreamSum(acc, chunkBytes)
	if err != nil {
		return nil, err
	}
	s.ls = newLockstep(s, global.Data, rule, sites)
	return s, nil
}

func newStreamSum(acc *model.Flat, chunkBytes int) (*StreamSum, error) {
	if chunkBytes <= 0 || chunkBytes%4 != 0 {
		acc.Close()
		return nil, fmt.Errorf("chunk size %d is not a positive multiple of 4", chunkBytes)
	}
	chunks := int((acc.Size() + int64(chunkBytes) - 1) / int64(chunkBytes))
	return &StreamSum{acc: acc, chunkBytes: chunkBytes, chunks: chunks}, nil
}

// Site returns the sink for one site's update stream, with weight (its
// committed, capped sample count) for FedAvg. A lockstep sum takes only
// the sites it was made for.
func (s *StreamSum) Site(site string, weight float64) *SiteSink {
	k := &SiteSink{sum: s, site: site, weight: weight}
	if s.ls != nil {
		k.member = s.ls.join(site, weight)
	}
	return k
}

// Done ends site's stream: err is how it ended (nil: every chunk
// delivered). A lockstep sum stops waiting for a site that failed, and
// after a whole stream waits until the site's chunks are combined; the
// answer is the site's own failure in the sum (refused by the norm bound,
// or the round's aggregate failed), nil when its update counts.
func (s *StreamSum) Done(site string, err error) error {
	if s.ls == nil {
		return nil
	}
	return s.ls.done(site, err)
}

// Clipped lists the sites whose update was clipped by the norm bound on
// some chunks, with the reason; nil for an unbounded sum.
func (s *StreamSum) Clipped() map[string]string {
	if s.ls == nil {
		return nil
	}
	return s.ls.clippedReasons()
}

// Abort fails every stream still writing into the sum (a lockstep sum
// wakes the sites it holds back), so that they end; Close still follows.
func (s *StreamSum) Abort() {
	if s.ls != nil {
		s.ls.abort(errors.New("the round was abandoned"))
	}
}

// SiteSink takes one site's chunks; it implements the stream package's Sink.
type SiteSink struct {
	sum       *StreamSum
	site      string
	weight    float64
	member    *member // lockstep sums
	withdrawn atomic.Pointer[error]
}

// Withdraw leaves the site out of the sum now, with err as its failure,
// unless its whole update was delivered already: a lockstep sum drops the
// chunks it holds of the site, never combining them, and a stream the
// window holds back wakes to the failure; an unbounded sum folds no
// further chunk of it. The site's Done still follows, once its stream has
// ended. (A cancelled pull alone would not do: a stream held back in
// WriteChunk does not see its context until the others move on, and its
// held chunks would be combined when they do.)
func (k *SiteSink) Withdraw(err error) {
	k.withdrawn.CompareAndSwap(nil, &err)
	if k.sum.ls != nil && k.member != nil {
		k.sum.ls.withdraw(k.member, err)
	}
}

// WriteChunk takes chunk index (bytes at offset) of the site's update.
func (k *SiteSink) WriteChunk(index int, offset int64, data []byte) error {
	if err := k.withdrawn.Load(); err != nil {
		return *err
	}
	s := k.sum
	xs, err := s.check(index, offset, data)
	if err != nil {
		return err
	}
	if s.ls != nil {
		return s.ls.write(k.member, index, xs)
	}
	if !(k.weight > 0) || k.weight > math.MaxFloat32 {
		return fmt.Errorf("weight %v is not a positive number up to %g", k.weight, math.MaxFloat32)
	}
	acc := blas32.Vector{N: xs.N, Inc: 1, Data: s.acc.Data[offset/4 : offset/4+int64(xs.N)]}
	s.mu[index].Lock()
	defer s.mu[index].Unlock()
	// A running weighted mean: acc = (1-r)*acc + r*x with r the chunk's
	// new share, so every value stays within the range of the values
	// folded and no sum of huge finite values overflows.
	total := s.weights[index] + k.weight
	if s.weights[index] == 0 { // the chunk's first site: whatever the buffer held is overwritten
		blas32.Copy(xs, acc)
	} else {
		r := k.weight / total
		blas32.Scal(float32(1-r), acc)
		blas32.Axpy(float32(r), xs, acc)
	}
	s.weights[index] = total
	return nil
}

// check refuses a chunk that does not fit the model (every chunk but the
// last is exactly chunkBytes) or holds NaN or infinity, and views it as
// floats.
func (s *StreamSum) check(index int, offset int64, data []byte) (blas32.Vector, error) {
	switch {
	case index < 0 || index >= s.chunks || offset != int64(index)*int64(s.chunkBytes):
		return blas32.Vector{}, fmt.Errorf("chunk %d at offset %d does not fit the model", index, offset)
	case int64(len(data)) != min(int64(s.chunkBytes), s.acc.Size()-offset):
		return blas32.Vector{}, fmt.Errorf("chunk %d: %d bytes do not fit the model (chunks are %d bytes, the model %d)",
			index, len(data), s.chunkBytes, s.acc.Size())
	}
	xs := blas32.Vector{N: len(data) / 4, Inc: 1, Data: floats(data)}
	if i := model.FirstNonFinite(xs.Data); i >= 0 {
		return blas32.Vector{}, fmt.Errorf("chunk %d holds %v at byte %d", index, xs.Data[i], 4*i)
	}
	return xs, nil
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

// Mean hands the aggregate over once every chunk was delivered by some
// site and every value of it is finite: the StreamSum must not be used
// afterwards. On failure it releases the memory (the global model's own,
// when the sum was made in it) and the round's aggregate must not be used.
func (s *StreamSum) Mean() (*model.Flat, error) {
	err := s.complete()
	for c := 0; err == nil && c < s.chunks; c++ {
		chunk := s.acc.Data[c*s.chunkBytes/4 : min((c+1)*s.chunkBytes/4, len(s.acc.Data))]
		if i := model.FirstNonFinite(chunk); i >= 0 {
			err = fmt.Errorf("aggregate value %d is %v: refused, the global model stays finite", c*s.chunkBytes/4+i, chunk[i])
		}
	}
	if err != nil {
		s.acc.Close()
		return nil, err
	}
	return s.acc, nil
}

// complete says whether every chunk was aggregated.
func (s *StreamSum) complete() error {
	if s.ls != nil {
		return s.ls.complete()
	}
	for c, w := range s.weights {
		if w == 0 {
			return fmt.Errorf("chunk %d of the model was delivered by no site", c)
		}
	}
	return nil
}

// Close releases the sum without computing a mean.
func (s *StreamSum) Close() error {
	s.Abort()
	return s.acc.Close()
}
