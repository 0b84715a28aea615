// Package jetstore is durable state in the hub's JetStream behind small
// types that speak plain Go: a key-value bucket (KV) of byte values and an
// object store (Objects) of streamed objects, with two sentinel errors
// (ErrNotFound, ErrExists) in place of JetStream's own. The actors that
// keep state consume interfaces of their own that these types satisfy, so
// that no actor holds JetStream mechanics.
//
// Only the server's own actors reach it (Hub.Connect): sites have no
// permission on JetStream's API. Every bucket uses file storage, so that
// what it holds survives a restart of the hub.
package jetstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors of the store. They only grow.
var (
	// ErrNotFound is returned for a key or an object that the bucket does
	// not hold (never written, deleted, expired, or a name no entry can
	// have).
	ErrNotFound = errors.New("not found")
	// ErrExists is returned by KV.Create for a key the bucket holds.
	ErrExists = errors.New("already exists")
)

// JetStream opens buckets on one connection to the hub. Create it with New.
type JetStream struct {
	js jetstream.JetStream
}

// New returns the JetStream of the hub that nc is connected to.
func New(nc *nats.Conn) (*JetStream, error) {
	if nc == nil {
		return nil, errors.New("jetstore: no connection")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &JetStream{js: js}, nil
}

// KVConfig describes a key-value bucket.
type KVConfig struct {
	Bucket      string // the bucket's name: letters, digits, '-' and '_'
	Description string
	// TTL is how long an entry is kept after it was written (0: for ever).
	TTL time.Duration
}

// ObjectsConfig describes an object store.
type ObjectsConfig struct {
	Bucket      string // the store's name: letters, digits, '-' and '_'
	Description string
}

// KV opens the key-value bucket c describes, creating it or updating its
// configuration to c.
func (j *JetStream) KV(ctx context.Context, c KVConfig) (*KV, error) {
	kv, err := j.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: c.Bucket, Description: c.Description,
		TTL: c.TTL, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("jetstream: bucket %s: %w", c.Bucket, err)
	}
	return &KV{kv: kv}, nil
}

// Objects opens the object store c describes, creating it or updating its
// configuration to c.
func (j *JetStream) Objects(ctx context.Context, c ObjectsConfig) (*Objects, error) {
	obj, err := j.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: c.Bucket, Description: c.Description,
		Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("jetstream: object store %s: %w", c.Bucket, err)
	}
	return &Objects{obj: obj}, nil
}

// KV is a key-value bucket: each key holds the bytes last put under it.
// Keys are dot-separated tokens of letters, digits, '-', '_', '/' and '='.
// Its methods are safe for concurrent use.
type KV struct {
	kv jetstream.KeyValue
}

// Get returns the value under key, or an error wrapping ErrNotFound.
func (k *KV) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := k.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, fmt.Errorf("key %q: %w", key, ErrNotFound)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return nil, fmt.Errorf("key %q: %w: %w", key, ErrNotFound, err)
	case err != nil:
		return nil, fmt.Errorf("get key %q: %w", key, err)
	}
	return e.Value(), nil
}

// Put stores value under key, replacing what it held.
func (k *KV) Put(ctx context.Context, key string, value []byte) error {
	if _, err := k.kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("put key %q: %w", key, err)
	}
	return nil
}

// Create stores value under key only if the bucket holds no value under it
// (a deleted or expired key counts as none), atomically: of two Creates of
// one key, on any connections, one succeeds and the other returns an error
// wrapping ErrExists. It is how a caller claims a name once.
func (k *KV) Create(ctx context.Context, key string, value []byte) error {
	_, err := k.kv.Create(ctx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("key %q: %w", key, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create key %q: %w", key, err)
	}
	return nil
}

// Delete removes key's value; deleting a key the bucket does not hold is
// no error.
func (k *KV) Delete(ctx context.Context, key string) error {
	if err := k.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete key %q: %w", key, err)
	}
	return nil
}

// Keys lists every key that holds a value, each once, in no set order.
func (k *KV) Keys(ctx context.Context) ([]string, error) {
	l, err := k.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer l.Stop()
	seen := map[string]bool{}
	var out []string
	for key := range l.Keys() { // a key written during the listing may come twice
		if !seen[key] {
			seen[key] = true
			out = append(out, key)
		}
	}
	if err := ctx.Err(); err != nil { // the lister ends early, without an error, when ctx ends
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// Objects is an object store: each name holds the bytes last put under it,
// streamed in chunks both ways, so that an object need not fit in memory.
// Its methods are safe for concurrent use.
type Objects struct {
	obj jetstream.ObjectStore
}

// Put stores what r yields, to its end, under name, replacing what the
// name held.
func (o *Objects) Put(ctx context.Context, name string, r io.Reader) error {
	if _, err := o.obj.Put(ctx, jetstream.ObjectMeta{Name: name}, r); err != nil {
		return fmt.Errorf("put object %q: %w", name, err)
	}
	return nil
}

// Get opens the object under name for reading, or returns an error wrapping
// ErrNotFound. The reader's end checks the object's digest; the caller
// closes it. Reading fails once ctx ends, or, for a ctx without a
// deadline, after JetStream's default timeout (5 s).
func (o *Objects) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	r, err := o.obj.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("object %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get object %q: %w", name, err)
	}
	return r, nil
}

// Delete removes the object under name, or returns an error wrapping
// ErrNotFound when the store holds none.
func (o *Objects) Delete(ctx context.Context, name string) error {
	// JetStream deletes a deleted object again without complaint: look first.
	_, err := o.obj.GetInfo(ctx, name)
	if err == nil {
		err = o.obj.Delete(ctx, name)
	}
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("object %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete object %q: %w", name, err)
	}
	return nil
}
