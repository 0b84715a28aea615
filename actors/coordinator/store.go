package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Store keeps jobs and global model checkpoints in JetStream on the
// server, so that a job survives a server restart and resumes from its last
// completed round. Only the server's own actors reach it: sites have no
// permission on JetStream's API.
type Store struct {
	kv     jetstream.KeyValue
	models jetstream.ObjectStore
}

// Bucket names.
const (
	jobsBucket   = "hearth_jobs"
	modelsBucket = "hearth_models"
)

// ErrNoJob is returned for an unknown job id.
var ErrNoJob = errors.New("no such job")

// OpenStore opens (creating if needed) the job and model buckets, with file
// storage.
func OpenStore(ctx context.Context, nc *nats.Conn) (*Store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: jobsBucket, Storage: jetstream.FileStorage,
		Description: "Hearth jobs: status, rounds, signed manifests"})
	if err != nil {
		return nil, fmt.Errorf("jetstream: jobs bucket: %w", err)
	}
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: modelsBucket, Storage: jetstream.FileStorage,
		Description: "Hearth global model checkpoints"})
	if err != nil {
		return nil, fmt.Errorf("jetstream: models bucket: %w", err)
	}
	return &Store{kv: kv, models: obj}, nil
}

// Put writes a job record.
func (s *Store) Put(ctx context.Context, r *hearthv1.JobRecord) error {
	data, err := proto.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, r.Info.Id, data); err != nil {
		return fmt.Errorf("store job %s: %w", r.Info.Id, err)
	}
	return nil
}

// Get reads a job record.
func (s *Store) Get(ctx context.Context, id string) (*hearthv1.JobRecord, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, fmt.Errorf("%w: %q", ErrNoJob, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	var r hearthv1.JobRecord
	if err := proto.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	return &r, nil
}

// List reads every job record.
func (s *Store) List(ctx context.Context) ([]*hearthv1.JobRecord, error) {
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer keys.Stop()
	var out []*hearthv1.JobRecord
	for k := range keys.Keys() {
		r, err := s.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// PutModel checkpoints a job's global model after round (0: the initial
// model) and drops the checkpoint before it.
func (s *Store) PutModel(ctx context.Context, id string, round int64, m *hearthv1.Model) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := s.models.PutBytes(ctx, modelName(id, round), data); err != nil {
		return fmt.Errorf("checkpoint job %s round %d: %w", id, round, err)
	}
	if round > 0 {
		_ = s.models.Delete(ctx, modelName(id, round-1))
	}
	return nil
}

// Model reads a job's global model checkpoint after round.
func (s *Store) Model(ctx context.Context, id string, round int64) (*hearthv1.Model, error) {
	data, err := s.models.GetBytes(ctx, modelName(id, round))
	if err != nil {
		return nil, fmt.Errorf("job %s: checkpoint of round %d: %w", id, round, err)
	}
	var m hearthv1.Model
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("job %s: checkpoint of round %d: %w", id, round, err)
	}
	return &m, nil
}

func modelName(id string, round int64) string { return id + "/round-" + strconv.FormatInt(round, 10) }

// PutRaw checkpoints a large global model after round from r (its float32
// bytes, little-endian), streaming into the object store rather than
// holding a second copy; layout goes beside it. The checkpoint before it is
// dropped.
func (s *Store) PutRaw(ctx context.Context, id string, round int64, layout *hearthv1.ModelLayout, r io.Reader) error {
	meta, err := proto.Marshal(layout)
	if err != nil {
		return err
	}
	if _, err := s.models.PutBytes(ctx, rawName(id, round)+".layout", meta); err != nil {
		return fmt.Errorf("checkpoint job %s round %d: %w", id, round, err)
	}
	if _, err := s.models.Put(ctx, jetstream.ObjectMeta{Name: rawName(id, round)}, r); err != nil {
		return fmt.Errorf("checkpoint job %s round %d: %w", id, round, err)
	}
	if round > 0 {
		_ = s.models.Delete(ctx, rawName(id, round-1))
		_ = s.models.Delete(ctx, rawName(id, round-1)+".layout")
	}
	return nil
}

// Raw opens a large model checkpoint: its layout and a reader of its bytes.
func (s *Store) Raw(ctx context.Context, id string, round int64) (*hearthv1.ModelLayout, io.ReadCloser, error) {
	meta, err := s.models.GetBytes(ctx, rawName(id, round)+".layout")
	if err != nil {
		return nil, nil, fmt.Errorf("job %s: checkpoint of round %d: %w", id, round, err)
	}
	var layout hearthv1.ModelLayout
	if err := proto.Unmarshal(meta, &layout); err != nil {
		return nil, nil, err
	}
	r, err := s.models.Get(ctx, rawName(id, round))
	if err != nil {
		return nil, nil, fmt.Errorf("job %s: checkpoint of round %d: %w", id, round, err)
	}
	return &layout, r, nil
}

func rawName(id string, round int64) string { return modelName(id, round) + ".f32" }
