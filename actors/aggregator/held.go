package aggregator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/quantize"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/stream"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// An aggregator made with HoldingProps is the only owner of a job's global
// model and of every buffer that holds it or sums into it; the workflow
// that runs the job keeps round bookkeeping only and asks the aggregator:
//
//	Hold        -> *Held          the initial model (given, zeros of a layout, or a checkpoint read back)
//	Begin       -> *Offered       a round on the held model: what to send each site (inline, or a stream offer)
//	Fold                          a site's inline update (no answer; its verdict comes with Closed)
//	FoldStream  -> *StreamTaken   a site's update offered as a stream, pulled into the round's sum;
//	            -> *StreamPulled  then, once its pull ended
//	Withdraw                      a site left out: its offered model and its update pull end now
//	Close       -> *Closed        the round's aggregate becomes the held model
//	Checkpoint  -> *Checkpointed  the held model written to the job's store
//	Offer       -> *Offered       the held model offered again (the final model, for evaluation)
//
// Every message is a plain value: the workflow shares no buffer with the
// aggregator, so the same protocol could cross the bridge. A model up to
// one envelope is held inline (a *model.Model, folded whole: see Begin and
// Fold); a larger one is streamed: held in one flat buffer, offered as a
// stream to every site, and summed chunk by chunk as the updates are pulled
// (see StreamSum), so that its memory does not grow with the sites.

// Streams offers and pulls chunked streams; *stream.Manager is one.
type Streams interface {
	Prepare(ctx context.Context, data []byte) (*stream.Payload, error)
	PrepareChunks(ctx context.Context, data []byte, chunkBytes int) (*stream.Payload, error)
	OfferPayload(ctx context.Context, recipient string, p *stream.Payload) (*stream.Outgoing, error)
	Receive(ctx context.Context, sender string, man *hearthv1.StreamManifest, sink stream.Sink) (stream.Stats, error)
}

// Checkpoints keeps one job's global models, one per round: an inline
// model whole, a streamed one as raw little-endian float32 bytes of a
// layout.
type Checkpoints interface {
	PutModel(ctx context.Context, round int64, m *model.Model) error
	PutRaw(ctx context.Context, round int64, layout []model.TensorShape, data io.ReaderAt, size int64) error
	Raw(ctx context.Context, round int64) ([]model.TensorShape, io.ReadCloser, error)
}

// Config is what an aggregator that holds a job's model needs. Streams nil
// refuses streamed models; Checkpoints nil refuses Checkpoint and a Hold
// that restores; ChunkBytes must be the chunk size of Streams' senders. Models larger than SpillAbove bytes are kept in file
// mappings in SpillDir rather than memory. Log nil logs nothing.
type Config struct {
	JobID       string // names the job in logs
	Streams     Streams
	Checkpoints Checkpoints
	SpillDir    string
	SpillAbove  int64
	ChunkBytes  int // the streams' chunk size (0: stream.DefaultChunkBytes)
	// Codec, when set, is what streamed models cross the wire in, both
	// ways (the job's quantize): the global model is offered encoded, and
	// each update is decoded chunk by chunk into the sum, which stays full
	// precision. Its streams' chunks are quantize.ChunkValues values each.
	Codec quantize.Codec
	// HeapModels: a streamed model given to hold (Hold.Model) is copied
	// onto the Go heap, not into a mapping, and Close with WantMean answers
	// the round's mean itself when it was summed there, not a copy, and
	// holds it no more: for an aggregator of one round whose caller keeps
	// the mean as its global model (a swarm site's), which so skips a copy
	// of the model between the last update and the new model's encryption.
	HeapModels bool
	Log        *slog.Logger
}

// spill is where a model of size bytes is kept: "" for memory.
func (c Config) spill(size int64) string {
	if c.SpillDir != "" && c.SpillAbove > 0 && size > c.SpillAbove {
		return c.SpillDir
	}
	return ""
}

// HoldingProps makes the props of an aggregator that holds a job's global
// model (see the protocol above). ctx bounds its streams and store calls:
// cancelling it ends them at once, as the actor's stop does; its buffers are
// released when it stops (or restarts, which loses the held model: the
// workflow's next request then fails).
func HoldingProps(ctx context.Context, cfg Config) *actor.Props {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ChunkBytes == 0 {
		cfg.ChunkBytes = stream.DefaultChunkBytes
	}
	if cfg.Codec != nil {
		cfg.ChunkBytes = 4 * quantize.ChunkValues // a decoded chunk's float32 bytes
	}
	return actor.PropsFromProducer(func() actor.Actor { return &Aggregator{held: newCustody(ctx, cfg)} })
}

// Hold makes the aggregator's global model, replacing any it held: Model
// itself (inline), or, when Streamed, a flat copy of Model or, with Model
// nil, zeros of Layout (or Fill's values); with Restore, the streamed checkpoint of Round read
// back. The aggregator answers *Held.
type Hold struct {
	Model    *model.Model
	Layout   []model.TensorShape
	Streamed bool
	Restore  bool
	Round    int64
	// Fill, if set, writes the values of a streamed model made from
	// Layout in its own buffer (nil: zeros).
	Fill func([]float32)
}

// Held answers Hold: whether the model is streamed and its size in bytes,
// or why there is none.
type Held struct {
	Streamed bool
	Size     int64
	Err      error
}

// Offer asks for the held model to be offered to Sites (the final model,
// for evaluation); the aggregator answers *Offered.
type Offer struct{ Sites []string }

// Offered says what to send each site of a Begin or an Offer: the inline
// Model (which nobody may change), or, for a streamed one, each site's
// stream manifest and the model's Layout. Failed lists the sites whose
// offer failed, with the reason; Err is why nothing was offered.
type Offered struct {
	Round    int64
	Model    *model.Model
	Layout   []model.TensorShape
	Size     int64
	Manifest map[string]*hearthv1.StreamManifest
	Failed   map[string]string
	Err      error
}

// FoldStream adds a site's update, offered as a stream by its manifest,
// with its weight (as Fold's). The aggregator answers *StreamTaken at once,
// and, when it took the update, *StreamPulled once the pull ended.
//
// Key, when set, is the AES-256 key the stream's chunks are encrypted under
// (actors/swarm's stream cipher, the key from the sealed envelope that
// offered the stream): each chunk is decrypted as it arrives, after its
// hash was checked, and folded at once, so that the update is never held
// whole. Update, in place of Manifest, is an update held in memory (the
// aggregating site's own, in a swarm round): folded chunk by chunk as its
// stream would be; nobody may change it until its StreamPulled.
type FoldStream struct {
	Round    int64
	Site     string
	Manifest *hearthv1.StreamManifest
	Key      []byte
	Update   *model.Model
	Weight   float64
}

// StreamTaken answers FoldStream: Refused is why the update was not taken
// (not this round's, the wrong size, a second one, too late for a lockstep
// sum), empty when its pull is on the way.
type StreamTaken struct {
	Round   int64
	Site    string
	Refused string
}

// StreamPulled reports the end of a site's update pull: Err is why its
// update does not count (its stream failed, it was withdrawn, or the sum
// refused it: the norm bound, say).
//
// Decrypted is the time spent decrypting an encrypted update (FoldStream's
// Key), for the round's figures.
type StreamPulled struct {
	Round     int64
	Site      string
	Stats     stream.Stats
	Decrypted swarm.SealTime
	Err       error
}

// Withdraw ends what the aggregator streams with a site left out: its
// offers of the model are cancelled and its update pull ends (reported by
// StreamPulled with an error); the site is no longer waited for.
type Withdraw struct{ Site string }

// Checkpoint writes the held model as the checkpoint of Round; the
// aggregator answers *Checkpointed.
type Checkpoint struct{ Round int64 }

// Checkpointed answers Checkpoint: the bytes written, or why not.
type Checkpointed struct {
	Round int64
	Bytes int64
	Err   error
}

// errNoModel answers a request that needs a held model when there is none.
var errNoModel = errors.New("the aggregator holds no global model")

// custody is what an aggregator made by HoldingProps holds: the global
// model (inline, or a streamed flat buffer with a spare for the next sum),
// the streams offering it, and the open streamed round: its sum, the
// updates waiting for it, and the pulls into it.
type custody struct {
	cfg  Config
	ctx  context.Context
	stop context.CancelFunc

	inline  *model.Model
	big     *model.Flat
	spare   *model.Spare
	offered []outgoing // streams of big, ended or cancelled before it is reused

	// The open streamed round.
	round      int64
	rule       Rule
	open       bool
	expected   map[string]bool // offered the model, no update or withdrawal yet
	taken      map[string]bool // updates taken this round
	sum        *StreamSum      // nil until its buffer is chosen (sumInPlace: big's own)
	sumInPlace bool
	waiting    []waitingUpdate
	pulling    map[string]context.CancelFunc
	pulled     []string // sites whose pull ended with their update counted
	pulls      *sync.WaitGroup
	released   bool
}

func newCustody(ctx context.Context, cfg Config) *custody {
	c := &custody{cfg: cfg, spare: &model.Spare{}, pulls: &sync.WaitGroup{}}
	c.ctx, c.stop = context.WithCancel(ctx)
	return c
}

// outgoing is a stream of the global model offered to one site.
type outgoing struct {
	site string
	out  *stream.Outgoing
}

// hold makes the held model.
func (c *custody) hold(m *Hold) *Held {
	c.drop()
	var err error
	switch {
	case m.Restore:
		err = c.restore(m.Round)
	case m.Streamed && c.cfg.Streams == nil:
		err = errors.New("the model is streamed and this aggregator streams nothing")
	case m.Streamed && m.Model != nil && c.cfg.HeapModels:
		if c.big, err = model.NewHeapFlat(model.LayoutOf(m.Model)); err == nil {
			c.big.CopyFrom(m.Model)
		}
	case m.Streamed && m.Model != nil:
		c.big, err = model.FlatCopy(m.Model, c.cfg.spill(int64(m.Model.Bytes())))
	case m.Streamed:
		// Zeros written, not left to the mapping: an untouched mapping
		// reads as the kernel's shared zero page, and the global model
		// would then hold no memory, as no real one does.
		if c.big, err = model.NewFlat(m.Layout, c.cfg.spill(model.LayoutBytes(m.Layout))); err == nil {
			clear(c.big.Data)
			if m.Fill != nil {
				m.Fill(c.big.Data)
			}
		}
	case m.Model == nil:
		err = errors.New("no model to hold")
	default:
		if err = m.Model.Validate(); err == nil {
			c.inline = m.Model
		}
	}
	if err != nil {
		return &Held{Err: err}
	}
	return c.heldNow()
}

func (c *custody) heldNow() *Held {
	if c.big != nil {
		return &Held{Streamed: true, Size: c.big.Size()}
	}
	return &Held{Size: int64(c.inline.Bytes())}
}

// restore reads a streamed checkpoint back.
func (c *custody) restore(round int64) error {
	if c.cfg.Checkpoints == nil {
		return errors.New("the aggregator has no checkpoints to restore from")
	}
	layout, r, err := c.cfg.Checkpoints.Raw(c.ctx, round)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := model.NewFlat(layout, c.cfg.spill(model.LayoutBytes(layout)))
	if err != nil {
		return err
	}
	if _, err := io.ReadFull(r, f.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint of round %d: %w", round, err)
	}
	c.big = f
	return nil
}

// offer offers the held model to sites: inline as it is, streamed as one
// stream each of the same bytes, hashed once.
func (c *custody) offer(round int64, sites []string) *Offered {
	o := &Offered{Round: round, Failed: map[string]string{}}
	switch {
	case c.inline != nil:
		o.Model, o.Size = c.inline, int64(c.inline.Bytes())
		return o
	case c.big == nil:
		o.Err = errNoModel
		return o
	}
	o.Layout, o.Size, o.Manifest = c.big.Layout, c.big.Size(), map[string]*hearthv1.StreamManifest{}
	var payload *stream.Payload
	var err error
	if c.cfg.Codec != nil {
		st := quantize.Stream{Codec: c.cfg.Codec, Values: len(c.big.Data)}
		var enc []byte
		if enc, err = st.Encode(c.big.Data); err == nil {
			payload, err = c.cfg.Streams.PrepareChunks(c.ctx, enc, st.ChunkBytes())
			o.Size = int64(len(enc))
		}
	} else {
		payload, err = c.cfg.Streams.Prepare(c.ctx, c.big.Bytes())
	}
	if err != nil {
		o.Err = err
		return o
	}
	for _, s := range sites {
		out, err := c.cfg.Streams.OfferPayload(c.ctx, s, payload)
		if err != nil {
			o.Failed[s] = err.Error()
			continue
		}
		c.offered = append(c.offered, outgoing{site: s, out: out})
		o.Manifest[s] = out.Manifest
	}
	return o
}

// checkpoint writes the held model as round's checkpoint.
func (c *custody) checkpoint(round int64) *Checkpointed {
	done := &Checkpointed{Round: round}
	switch {
	case c.cfg.Checkpoints == nil:
		done.Err = errors.New("the aggregator has no checkpoints to write to")
	case c.big != nil:
		done.Bytes, done.Err = c.big.Size(), c.cfg.Checkpoints.PutRaw(c.ctx, round, c.big.Layout, c.big, c.big.Size())
	case c.inline != nil:
		done.Bytes, done.Err = int64(c.inline.Bytes()), c.cfg.Checkpoints.PutModel(c.ctx, round, c.inline)
	default:
		done.Err = errNoModel
	}
	return done
}

// withdraw cancels site's offers and its update pull, and stops waiting
// for it; an update still waiting for the sum is dropped and reported.
func (c *custody) withdraw(ctx actor.Context, site string) {
	for _, o := range c.offered {
		if o.site == site {
			o.out.Cancel()
		}
	}
	delete(c.expected, site)
	if cancel := c.pulling[site]; cancel != nil {
		cancel()
	}
	for i, u := range c.waiting {
		if u.site == site {
			c.waiting = append(c.waiting[:i:i], c.waiting[i+1:]...)
			tell(ctx, u.replyTo, &StreamPulled{Round: c.round, Site: site, Err: fmt.Errorf("withdrawn: %w", context.Canceled)})
			break
		}
	}
}

// drop retires the held model (a Hold replaces it).
func (c *custody) drop() {
	c.abandon()
	if c.big != nil {
		retire(c.big, c.offered, c.spare)
	}
	c.big, c.inline, c.offered = nil, nil, nil
}

// abandon ends the open streamed round's sum, if any: a sum that pulls may
// still be writing into is freed once they have ended (the sum's abort
// ends them, as a cancelled context does).
func (c *custody) abandon() {
	if c.sum != nil {
		sum, pulls := c.sum, c.pulls
		sum.Abort() // a lockstep sum holds streams back: let them end
		go func() {
			pulls.Wait()
			sum.Close()
		}()
		if c.sumInPlace {
			c.big = nil // the sum's buffer: closed with it
		}
	}
	for _, cancel := range c.pulling {
		cancel()
	}
	c.sum, c.sumInPlace, c.waiting, c.pulling, c.pulled, c.open = nil, false, nil, nil, nil, false
	c.pulls = &sync.WaitGroup{}
}

// release frees everything when the actor stops: its context is cancelled
// first, so that every stream and store call ends at once.
func (c *custody) release() {
	if c.released {
		return
	}
	c.released = true
	c.stop()
	c.spare.Close()
	c.drop() // released at once: the spare is closed
}

// retire hands a global model's buffer to spare (which releases it once
// closed) when every stream offering it has ended (a site that never
// pulled it is cancelled first), so that no stream reads memory in reuse.
// Its wait takes no context on purpose: the buffer must outlive every
// stream reading it, and Cancel ends each stream at once.
func retire(f *model.Flat, offered []outgoing, spare *model.Spare) {
	go func() {
		for _, o := range offered {
			o.out.Cancel()
			_ = o.out.Wait(context.Background())
		}
		spare.Put(f)
	}()
}
