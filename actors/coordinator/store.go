package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/jetstore"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Store keeps jobs and global model checkpoints in JetStream on the
// server, so that a job survives a server restart and resumes from its last
// completed round. Only the server's own actors reach it: sites have no
// permission on JetStream's API.
//
// The server is the jobs bucket's only writer, so the Store keeps every
// record it has written or read in memory too, and lists and reads jobs
// from there: an admin's list or status costs no JetStream round trip, so
// requests from many admins do not hold up the coordinator.
type Store struct {
	kv     KV
	nonces KV
	models Objects

	mu      sync.Mutex
	records map[string][]byte // job id -> its record as last stored
	loaded  bool              // records holds every job in the bucket
}

// KV is a key-value bucket as the store uses it; *jetstore.KV is one.
// Get returns an error wrapping jetstore.ErrNotFound for a key the bucket
// does not hold; Create stores a value only under a key that holds none,
// atomically, and otherwise returns an error wrapping jetstore.ErrExists.
type KV interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
	Create(ctx context.Context, key string, value []byte) error
	Keys(ctx context.Context) ([]string, error)
}

// Objects is an object store as the store uses it; *jetstore.Objects is
// one. Get and Delete return an error wrapping jetstore.ErrNotFound for a
// name the store does not hold.
type Objects interface {
	Put(ctx context.Context, name string, r io.Reader) error
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	Delete(ctx context.Context, name string) error
}

// Bucket names.
const (
	jobsBucket   = "hearth_jobs"
	noncesBucket = "hearth_job_nonces"
	modelsBucket = "hearth_models"
)

// nonceTTL is how long an accepted job nonce is remembered: past it the
// job's not-after (at most job.MaxLifetime after its acceptance) has passed
// too, so the job is refused as stale anyway.
const nonceTTL = job.MaxLifetime + time.Hour

// Errors of the store.
var (
	// ErrNoJob is returned for an unknown job id.
	ErrNoJob = errors.New("no such job")
	// ErrNonceUsed is returned when a signed job's nonce was accepted before.
	ErrNonceUsed = errors.New("signed job already submitted")
)

// OpenStore opens (creating if needed) the store's buckets in js: jobs,
// nonces (entries kept nonceTTL) and model checkpoints.
func OpenStore(ctx context.Context, js *jetstore.JetStream) (*Store, error) {
	kv, err := js.KV(ctx, jetstore.KVConfig{Bucket: jobsBucket, Description: "Hearth jobs: status, rounds, signed manifests"})
	if err != nil {
		return nil, err
	}
	nonces, err := js.KV(ctx, jetstore.KVConfig{Bucket: noncesBucket, TTL: nonceTTL,
		Description: "Hearth signed-job nonces accepted, so that no signed job is accepted twice"})
	if err != nil {
		return nil, err
	}
	obj, err := js.Objects(ctx, jetstore.ObjectsConfig{Bucket: modelsBucket, Description: "Hearth global model checkpoints"})
	if err != nil {
		return nil, err
	}
	return NewStore(kv, nonces, obj), nil
}

// NewStore makes a store on its buckets: jobs holds job records, nonces
// the accepted jobs' nonces (its entries need outlive a job's not-after
// only: nonceTTL), models the checkpoints.
func NewStore(jobs, nonces KV, models Objects) *Store {
	return &Store{kv: jobs, nonces: nonces, models: models, records: map[string][]byte{}}
}

// ClaimNonce records that the signed job with nonce (hex) was accepted as
// job id; a nonce claimed before, by any job and before any restart, is
// refused with ErrNonceUsed. The claim is JetStream's atomic create.
func (s *Store) ClaimNonce(ctx context.Context, nonce, id string, notAfter time.Time) error {
	data, err := proto.Marshal(&hearthv1.JobNonce{JobId: id, NotAfterUnixNano: notAfter.UnixNano()})
	if err != nil {
		return err
	}
	err = s.nonces.Create(ctx, nonce, data)
	if errors.Is(err, jetstore.ErrExists) {
		prev := &hearthv1.JobNonce{}
		if v, gerr := s.nonces.Get(ctx, nonce); gerr == nil {
			_ = proto.Unmarshal(v, prev)
		}
		return fmt.Errorf("%w: its nonce was accepted as job %s", ErrNonceUsed, prev.JobId)
	}
	if err != nil {
		return fmt.Errorf("record job nonce: %w", err)
	}
	return nil
}

// DropCheckpoint deletes a job's checkpoint after round (inline or large),
// best effort: the job keeps its record and history.
func (s *Store) DropCheckpoint(ctx context.Context, id string, round int64) {
	_ = s.models.Delete(ctx, modelName(id, round))
	s.dropRaw(ctx, id, round)
}

// Put writes a job record.
func (s *Store) Put(ctx context.Context, r *hearthv1.JobRecord) error {
	data, err := proto.Marshal(r)
	if err != nil {
		return err
	}
	if err := s.kv.Put(ctx, r.Info.Id, data); err != nil {
		return fmt.Errorf("store job %s: %w", r.Info.Id, err)
	}
	s.mu.Lock()
	s.records[r.Info.Id] = data
	s.mu.Unlock()
	return nil
}

// Get reads a job record.
func (s *Store) Get(ctx context.Context, id string) (*hearthv1.JobRecord, error) {
	s.mu.Lock()
	data, ok := s.records[id]
	loaded := s.loaded
	s.mu.Unlock()
	if !ok && !loaded {
		v, err := s.kv.Get(ctx, id)
		if errors.Is(err, jetstore.ErrNotFound) {
			return nil, fmt.Errorf("%w: %q", ErrNoJob, id)
		}
		if err != nil {
			return nil, fmt.Errorf("read job %s: %w", id, err)
		}
		data = v
		s.mu.Lock()
		if _, written := s.records[id]; !written { // a Put meanwhile is newer
			s.records[id] = data
		}
		s.mu.Unlock()
	} else if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoJob, id)
	}
	var r hearthv1.JobRecord
	if err := proto.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	return &r, nil
}

// List reads every job record: from JetStream the first time, from memory
// after.
func (s *Store) List(ctx context.Context) ([]*hearthv1.JobRecord, error) {
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.records))
	for id := range s.records {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	out := make([]*hearthv1.JobRecord, 0, len(ids))
	for _, id := range ids {
		r, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// load reads every job record of the bucket into memory, once.
func (s *Store) load(ctx context.Context) error {
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	if loaded {
		return nil
	}
	keys, err := s.kv.Keys(ctx)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	for _, k := range keys {
		if _, err := s.Get(ctx, k); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.loaded = true
	s.mu.Unlock()
	return nil
}

// PutModel checkpoints a job's global model after round (0: the initial
// model) and drops the checkpoint before it.
func (s *Store) PutModel(ctx context.Context, id string, round int64, m *hearthv1.Model) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if err := s.models.Put(ctx, modelName(id, round), bytes.NewReader(data)); err != nil {
		return fmt.Errorf("checkpoint job %s round %d: %w", id, round, err)
	}
	if round > 0 {
		_ = s.models.Delete(ctx, modelName(id, round-1))
	}
	return nil
}

// Model reads a job's global model checkpoint after round; an error wraps
// jetstore.ErrNotFound when there is none (a large model's is a raw one).
func (s *Store) Model(ctx context.Context, id string, round int64) (*hearthv1.Model, error) {
	data, err := s.getBytes(ctx, modelName(id, round))
	if err != nil {
		return nil, fmt.Errorf("job %s: checkpoint of round %d: %w", id, round, err)
	}
	var m hearthv1.Model
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("job %s: checkpoint of round %d: %w", id, round, err)
	}
	return &m, nil
}

// getBytes reads a whole (small) object.
func (s *Store) getBytes(ctx context.Context, name string) ([]byte, error) {
	r, err := s.models.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("object %q: %w", name, err)
	}
	return data, nil
}

func modelName(id string, round int64) string { return id + "/round-" + strconv.FormatInt(round, 10) }

// rawPartBytes is the size of the objects a large checkpoint is cut into.
// The object store publishes an object's chunks (128 KiB) with up to 4000
// acknowledgements outstanding, about 500 MiB, while JetStream queues at
// most 128 MiB for a stream before it refuses with 429 "too many
// requests"; a server short of CPU (a round of 8 sites on 2 cores) had
// 1 GiB checkpoints refused so. Each part is put, and acknowledged, before
// the next, so no more than a part is ever queued.
const rawPartBytes = 64 << 20

// PutRaw checkpoints a large global model after round from data (size
// bytes: its float32 values, little-endian), streaming it into the object
// store in parts rather than holding a second copy; layout goes beside it.
// The checkpoint before it is dropped.
func (s *Store) PutRaw(ctx context.Context, id string, round int64, layout *hearthv1.ModelLayout, data io.ReaderAt, size int64) error {
	return s.putRaw(ctx, id, round, layout, data, size, rawPartBytes)
}

func (s *Store) putRaw(ctx context.Context, id string, round int64, layout *hearthv1.ModelLayout, data io.ReaderAt, size, partBytes int64) error {
	if _, n, err := job.LayoutFromWire(layout); err != nil || n != size {
		return fmt.Errorf("checkpoint job %s round %d: %d bytes for a layout of %d: %v", id, round, size, n, err)
	}
	meta, err := proto.Marshal(&hearthv1.RawCheckpoint{Layout: layout, PartBytes: partBytes})
	if err != nil {
		return err
	}
	for i, off := 0, int64(0); off < size; i, off = i+1, off+partBytes {
		part := io.NewSectionReader(data, off, min(partBytes, size-off))
		if err := s.models.Put(ctx, rawPart(id, round, i), part); err != nil {
			return fmt.Errorf("checkpoint job %s round %d, part %d: %w", id, round, i, err)
		}
	}
	// The description last: a checkpoint cut short by a crash has none,
	// and Raw does not open it.
	if err := s.models.Put(ctx, rawName(id, round), bytes.NewReader(meta)); err != nil {
		return fmt.Errorf("checkpoint job %s round %d: %w", id, round, err)
	}
	if round > 0 {
		s.dropRaw(ctx, id, round-1)
	}
	return nil
}

// dropRaw deletes a large checkpoint, best effort.
func (s *Store) dropRaw(ctx context.Context, id string, round int64) {
	_ = s.models.Delete(ctx, rawName(id, round))
	for i := 0; s.models.Delete(ctx, rawPart(id, round, i)) == nil; i++ {
	}
}

// Raw opens a large model checkpoint: its layout and a reader of its bytes.
func (s *Store) Raw(ctx context.Context, id string, round int64) (*hearthv1.ModelLayout, io.ReadCloser, error) {
	meta, err := s.getBytes(ctx, rawName(id, round))
	if err != nil {
		return nil, nil, fmt.Errorf("job %s: checkpoint of round %d: %w", id, round, err)
	}
	var cp hearthv1.RawCheckpoint
	if err := proto.Unmarshal(meta, &cp); err != nil {
		return nil, nil, fmt.Errorf("job %s: checkpoint of round %d: %w", id, round, err)
	}
	_, size, err := job.LayoutFromWire(cp.Layout)
	if err != nil || cp.PartBytes <= 0 {
		return nil, nil, fmt.Errorf("job %s: checkpoint of round %d: parts of %d bytes, layout: %v", id, round, cp.PartBytes, err)
	}
	parts := int((size + cp.PartBytes - 1) / cp.PartBytes)
	return cp.Layout, &partsReader{open: func(i int) (io.ReadCloser, error) {
		if i >= parts {
			return nil, io.EOF
		}
		r, err := s.models.Get(ctx, rawPart(id, round, i))
		if err != nil {
			return nil, fmt.Errorf("job %s: checkpoint of round %d, part %d: %w", id, round, i, err)
		}
		return r, nil
	}}, nil
}

// partsReader reads the parts open returns, in order, until it returns
// io.EOF.
type partsReader struct {
	open func(i int) (io.ReadCloser, error)
	next int
	cur  io.ReadCloser
}

func (p *partsReader) Read(b []byte) (int, error) {
	for {
		if p.cur == nil {
			r, err := p.open(p.next)
			if err != nil {
				return 0, err
			}
			p.cur, p.next = r, p.next+1
		}
		n, err := p.cur.Read(b)
		if err == io.EOF {
			p.cur.Close()
			p.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (p *partsReader) Close() error {
	if p.cur != nil {
		return p.cur.Close()
	}
	return nil
}

func rawName(id string, round int64) string { return modelName(id, round) + ".f32" }

func rawPart(id string, round int64, i int) string { return rawName(id, round) + "." + strconv.Itoa(i) }
