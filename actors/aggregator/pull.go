package aggregator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/quantize"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/stream"
)

// A streamed round: Begin offers the held model to every site as a stream;
// each site's update stream (FoldStream) is pulled into the round's sum as
// it arrives. The sum's buffer is the held model's own when no stream reads
// it any more (see pullGrace), so that the round holds one model.

// pullGrace is how long update streams wait, once the first is offered,
// for every stream of the global model to end so that the sum can fold
// into the global model's own buffer. Sites download at about the same
// pace and each uploads only after its download, so the wait is usually
// short and the round holds one model; past it (a site still downloading),
// the sum takes a buffer of its own and the updates are pulled at once. It
// is well under stream.DefaultStallTimeout, within which an offered stream
// must be pulled.
const pullGrace = 5 * time.Second

// lockstepPoll is how often a lockstep round looks whether every update
// is in; lockstepWait is how long the first offered update waits for the
// others before the round's lockstep aggregation starts without them, well
// within stream.DefaultStallTimeout.
const (
	lockstepPoll = 50 * time.Millisecond
	lockstepWait = stream.DefaultStallTimeout / 2
)

// waitingUpdate is a site's offered update, waiting for the round's sum.
type waitingUpdate struct {
	site    string
	fold    *FoldStream
	at      time.Time  // when it was offered
	replyTo *actor.PID // told when its pull ends
}

// sumReady tells the aggregator to choose the round's sum buffer: every
// stream of the global model has ended, or pullGrace has passed.
type sumReady struct{ round int64 }

// pullEnded reports the end of a site's update pull to the aggregator.
type pullEnded struct {
	replyTo *actor.PID
	pulled  *StreamPulled
}

// beginStreamed opens a streamed round and offers the held model to sites.
func (c *custody) beginStreamed(m *Begin) *Offered {
	c.abandon()
	c.round, c.rule, c.taken = m.Round, m.Rule, map[string]bool{}
	if err := m.Rule.Streamable(); err != nil {
		return &Offered{Round: m.Round, Err: fmt.Errorf("the model is streamed (%d bytes): %w", c.big.Size(), err)}
	}
	o := c.offer(m.Round, m.Sites)
	c.open = o.Err == nil
	c.expected, c.pulling = map[string]bool{}, map[string]context.CancelFunc{}
	for site := range o.Manifest {
		c.expected[site] = true
	}
	for _, site := range m.Expect {
		c.expected[site] = true
	}
	return o
}

// foldStream takes a site's offered update: pulled into the round's sum at
// once if it has one, else once it has (the first update starts the wait).
func (c *custody) foldStream(ctx actor.Context, m *FoldStream) *StreamTaken {
	t := &StreamTaken{Round: m.Round, Site: m.Site}
	delete(c.expected, m.Site)
	var keyErr error // a nil key: the update is not encrypted
	if m.Key != nil {
		keyErr = swarm.CheckStreamKey(m.Key)
	}
	switch {
	case !c.open || m.Round != c.round:
		t.Refused = fmt.Sprintf("a streamed update for round %d while no streamed round but %d is open", m.Round, c.round)
	case m.Update != nil:
		t.Refused = c.checkLocal(m)
	case m.Manifest == nil:
		t.Refused = "a streamed update without its manifest"
	case keyErr != nil:
		t.Refused = "a " + keyErr.Error()
	case c.cfg.Codec != nil:
		if err := c.wire().Check(m.Manifest.TotalBytes, int(m.Manifest.ChunkBytes)); err != nil {
			t.Refused = err.Error()
		}
	case m.Manifest.TotalBytes != c.big.Size():
		t.Refused = fmt.Sprintf("update of %d bytes for a %d-byte model", m.Manifest.GetTotalBytes(), c.big.Size())
	case !sameChunks(int64(m.Manifest.ChunkBytes), int64(c.cfg.ChunkBytes), c.big.Size()):
		// The sum takes chunks of its own size only: refused now, before
		// a pull that could only fail at its first chunk.
		t.Refused = fmt.Sprintf("update in chunks of %d bytes, the round's are %d", m.Manifest.GetChunkBytes(), c.cfg.ChunkBytes)
	}
	switch {
	case t.Refused != "":
	case c.taken[m.Site]:
		t.Refused = "a second update in one round"
	case c.sum != nil && c.rule.Lockstep():
		t.Refused = fmt.Sprintf("update offered more than %v after the round's first: its lockstep aggregation had begun without it "+
			"(an offered stream must be pulled within the stall timeout)", lockstepWait)
	}
	if t.Refused != "" {
		return t
	}
	c.taken[m.Site] = true
	u := waitingUpdate{site: m.Site, fold: m, at: time.Now(), replyTo: ctx.Sender()}
	if c.sum != nil {
		c.startPull(ctx, u)
		return t
	}
	if len(c.waiting) == 0 {
		self, system, round, offered, jobCtx := ctx.Self(), ctx.ActorSystem(), c.round, c.offered, c.ctx
		go func() {
			grace := time.NewTimer(pullGrace)
			defer grace.Stop()
			for _, o := range offered {
				select {
				case <-o.out.Done():
				case <-grace.C:
					system.Root.Send(self, &sumReady{round: round})
					return
				case <-jobCtx.Done():
					return
				}
			}
			system.Root.Send(self, &sumReady{round: round})
		}()
	}
	c.waiting = append(c.waiting, u)
	return t
}

// errWithdrawn is the failure of a site withdrawn while its update was
// being pulled.
var errWithdrawn = errors.New("withdrawn from the round")

// sameChunks says whether a stream of size bytes in chunks of a bytes is
// cut as one in chunks of b is: the same size, or one chunk either way.
func sameChunks(a, b, size int64) bool { return a == b || (a >= size && b >= size) }

// checkLocal is why an update held in memory does not fit the round ("" if
// it does): it must be the held model's layout, and comes unencrypted.
func (c *custody) checkLocal(m *FoldStream) string {
	if m.Manifest != nil || m.Key != nil {
		return "an update both in memory and streamed"
	}
	if err := m.Update.Validate(); err != nil {
		return err.Error()
	}
	got := model.LayoutOf(m.Update)
	if len(got) != len(c.big.Layout) {
		return fmt.Sprintf("an update of %d tensors for a model of %d", len(got), len(c.big.Layout))
	}
	for i, t := range got {
		if want := c.big.Layout[i]; t.Name != want.Name || !slices.Equal(t.Shape, want.Shape) {
			return fmt.Sprintf("tensor %d is %s %v, the model's %s %v", i, clipName(t.Name), t.Shape, want.Name, want.Shape)
		}
	}
	return ""
}

// sumReady chooses the round's sum buffer, the global model's own when no
// stream reads it any more, and pulls the updates that waited. A lockstep
// rule (see NewRuleSum) pulls every update at once, so it waits until no
// site the model was offered to is still expected, looking again shortly;
// but an offered stream must be pulled within the stream stall timeout, so
// once the first update has waited lockstepWait it starts with the updates
// it has, and a later one is left out of the round (a straggler) rather
// than the early ones failing. It reports a failure to choose to every
// waiting update's requester.
func (c *custody) sumReady(ctx actor.Context, m *sumReady) {
	if m.round != c.round || !c.open || c.sum != nil || len(c.waiting) == 0 {
		return
	}
	if c.rule.Lockstep() && len(c.expected) > 0 && time.Since(c.waiting[0].at) < lockstepWait {
		self, system := ctx.Self(), ctx.ActorSystem()
		time.AfterFunc(lockstepPoll, func() { system.Root.Send(self, m) })
		return
	}
	c.sumInPlace = true
	for _, o := range c.offered {
		select {
		case <-o.out.Done():
		default:
			c.sumInPlace = false
		}
	}
	acc := c.big
	var err error
	if !c.sumInPlace {
		acc, err = c.spare.Take(c.big.Layout, c.cfg.spill(c.big.Size()))
	}
	var sum *StreamSum
	if err == nil && c.rule.Lockstep() {
		sites := make([]string, len(c.waiting))
		for i, u := range c.waiting {
			sites[i] = u.site
		}
		sum, err = NewRuleSum(acc, c.big, c.cfg.ChunkBytes, c.rule, sites)
	} else if err == nil {
		sum, err = NewStreamSum(acc, c.cfg.ChunkBytes)
	}
	waiting := c.waiting
	c.waiting = nil
	if err != nil { // acc released: the global model too when in place
		if c.sumInPlace {
			c.big = nil
		}
		c.sumInPlace, c.open = false, false
		for _, u := range waiting {
			tell(ctx, u.replyTo, &StreamPulled{Round: c.round, Site: u.site, Err: fmt.Errorf("the round's sum: %w", err)})
		}
		return
	}
	c.sum = sum
	c.cfg.Log.Info("round sum ready", "job", c.cfg.JobID, "round", c.round, "in_place", c.sumInPlace, "waiting", len(waiting),
		"lockstep", c.rule.Lockstep())
	for _, u := range waiting {
		c.startPull(ctx, u)
	}
}

// startPull pulls a site's update stream into the round's sum; the sum's
// own verdict on the site (refused by the norm bound, say) fails the pull.
func (c *custody) startPull(ctx actor.Context, u waitingUpdate) {
	self, system, round, sum, pulls := ctx.Self(), ctx.ActorSystem(), c.round, c.sum, c.pulls
	site := sum.Site(u.site, u.fold.Weight)
	var sink stream.Sink = site
	if c.cfg.Codec != nil && u.fold.Update == nil {
		sink = c.wire().Sink(sink) // decoded chunk by chunk into the full-precision sum
	}
	var decrypting *swarm.DecryptingSink
	if u.fold.Key != nil {
		var err error
		if decrypting, err = swarm.NewDecryptingSink(u.fold.Key, sink); err != nil { // the key's size was checked when taken
			sum.Done(u.site, err)
			tell(ctx, u.replyTo, &StreamPulled{Round: round, Site: u.site, Err: err})
			return
		}
		sink = decrypting
	}
	pullCtx, cancel := context.WithCancel(c.ctx)
	c.pulling[u.site] = func() { // withdrawn, or the round abandoned
		site.Withdraw(errWithdrawn)
		cancel()
	}
	pulls.Add(1)
	go func() {
		defer pulls.Done()
		defer cancel()
		var stats stream.Stats
		var err error
		if u.fold.Update != nil {
			stats, err = feed(pullCtx, u.fold.Update, sum.chunkBytes, sink)
		} else {
			stats, err = c.cfg.Streams.Receive(pullCtx, u.site, u.fold.Manifest, sink)
		}
		if verdict := sum.Done(u.site, err); err == nil && verdict != nil {
			err = fmt.Errorf("refused by the aggregator: %w", verdict)
		}
		p := &StreamPulled{Round: round, Site: u.site, Stats: stats, Err: err}
		if decrypting != nil {
			p.Decrypted = decrypting.Spent()
		}
		system.Root.Send(self, &pullEnded{replyTo: u.replyTo, pulled: p})
	}()
}

// feed writes an update held in memory to sink chunk by chunk, as a stream
// of chunkBytes chunks would deliver it (one chunk buffer, never the whole
// update copied), until ctx ends.
func feed(ctx context.Context, m *model.Model, chunkBytes int, sink stream.Sink) (stream.Stats, error) {
	stats := stream.Stats{}
	start := time.Now()
	defer func() { stats.Duration = time.Since(start) }()
	chunk := make([]byte, 0, chunkBytes)
	var offset int64
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := sink.WriteChunk(stats.Chunks, offset, chunk); err != nil {
			return fmt.Errorf("sink: chunk %d: %w", stats.Chunks, err)
		}
		offset += int64(len(chunk))
		stats.Chunks++
		stats.Bytes += int64(len(chunk))
		chunk = chunk[:0]
		return nil
	}
	for _, t := range m.Tensors {
		for b := bytesOf(t.Data); len(b) > 0; {
			n := min(len(b), chunkBytes-len(chunk))
			chunk, b = append(chunk, b[:n]...), b[n:]
			if len(chunk) == chunkBytes {
				if err := flush(); err != nil {
					return stats, err
				}
			}
		}
	}
	if len(chunk) > 0 {
		if err := flush(); err != nil {
			return stats, err
		}
	}
	return stats, nil
}

// wire is the geometry of the job's quantized streams.
func (c *custody) wire() quantize.Stream {
	return quantize.Stream{Codec: c.cfg.Codec, Values: len(c.big.Data)}
}

// pullEnded passes a pull's end on to its requester.
func (c *custody) pullEnded(ctx actor.Context, p *pullEnded) {
	if c.released {
		return
	}
	if p.pulled.Round == c.round {
		delete(c.pulling, p.pulled.Site)
		if p.pulled.Err == nil {
			c.pulled = append(c.pulled, p.pulled.Site)
		}
	}
	tell(ctx, p.replyTo, p.pulled)
}

// tell sends msg to pid, if the update's requester gave one.
func tell(ctx actor.Context, pid *actor.PID, msg any) {
	if pid != nil {
		ctx.Send(pid, msg)
	}
}

// closeStreamed makes the round's mean the held model, and with wantMean
// answers a copy of it (or, on the heap, the mean itself, held no more); refused are the inline updates refused during the
// round. Sites are the updates whose pull ended counted.
func (c *custody) closeStreamed(round int64, refused map[string]string, wantMean bool) *Closed {
	closed := &Closed{Round: round, Refused: refused, Clipped: map[string]string{}, Screened: map[string]string{}}
	switch {
	case round != c.round || !c.open:
		closed.Err = fmt.Errorf("close of round %d while aggregating round %d", round, c.round)
		return closed
	case c.sum == nil:
		closed.Err = fmt.Errorf("no update to aggregate")
		return closed
	}
	for site, reason := range c.sum.Clipped() {
		closed.Clipped[site] = reason
	}
	mean, err := c.sum.Mean()
	inPlace := c.sumInPlace
	c.sum, c.sumInPlace, c.open = nil, false, false
	old, offered := c.big, c.offered
	c.big, c.offered = mean, nil
	if !inPlace { // the old global model's buffer holds the next sum that cannot be in place
		retire(old, offered, c.spare)
	}
	if err != nil { // Mean released the sum's buffer: the global model's too when in place
		closed.Err = err
		return closed
	}
	closed.Sites = slices.Sorted(slices.Values(c.pulled))
	c.pulled = nil
	switch {
	case wantMean && mean.OnHeap(): // summed in place into a heap model (Config.HeapModels): handed on as it is
		closed.Mean, c.big = mean.Model(), nil
	case wantMean:
		closed.Mean = mean.Model().Clone()
	}
	return closed
}

// bytesOf is the memory of v as bytes (no copy): the wire's little-endian
// float32 bytes, as a streamed round's held model (model.Flat) requires.
func bytesOf(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}
