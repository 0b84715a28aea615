package jetstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/jetstore"
	"github.com/hearthfl/hearth/bus/jetstore/jetstoretest"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestKV(t *testing.T) {
	h := jetstoretest.Start(t, "")
	ctx := testCtx(t)
	kv, err := h.JetStream.KV(ctx, jetstore.KVConfig{Bucket: "test_kv", Description: "a test"})
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := kv.Keys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("keys of an empty bucket: %q, %v", keys, err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if err := kv.Put(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Put(ctx, "a", []byte("v-a2")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key string
		want      string // "" : not found
	}{
		{"replaced", "a", "v-a2"},
		{"written once", "b", "v-b"},
		{"deleted", "c", ""},
		{"never written", "d", ""},
		{"a name no key can have", "a b*", ""},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kv.Get(ctx, tc.key)
			if tc.want == "" {
				if !errors.Is(err, jetstore.ErrNotFound) {
					t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", tc.key, got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Get(%q) = %q, %v; want %q", tc.key, got, err, tc.want)
			}
		})
	}
	keys, err := kv.Keys(ctx)
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, []string{"a", "b"}) {
		t.Fatalf("keys: %q, %v; want [a b]", keys, err)
	}
	if err := kv.Delete(ctx, "never-written"); err != nil {
		t.Fatalf("delete of an absent key: %v", err)
	}
}

// TestKVCreateClaimsOnce: of many concurrent Creates of one key, exactly
// one succeeds, and the others are refused with ErrExists; a deleted key
// can be created again.
func TestKVCreateClaimsOnce(t *testing.T) {
	h := jetstoretest.Start(t, "")
	ctx := testCtx(t)
	kv, err := h.JetStream.KV(ctx, jetstore.KVConfig{Bucket: "test_claims", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const claimers = 8
	errs := make([]error, claimers)
	var wg sync.WaitGroup
	for i := range claimers {
		wg.Go(func() { errs[i] = kv.Create(ctx, "nonce", []byte{byte(i)}) })
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("claimers %d and %d both created the key", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, jetstore.ErrExists):
			t.Fatalf("claimer %d: %v, want ErrExists", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no claimer created the key")
	}
	if got, err := kv.Get(ctx, "nonce"); err != nil || !bytes.Equal(got, []byte{byte(won)}) {
		t.Fatalf("the key holds %v, %v; want the winner's %d", got, err, won)
	}
	if err := kv.Delete(ctx, "nonce"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Create(ctx, "nonce", []byte("again")); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
}

func TestObjects(t *testing.T) {
	h := jetstoretest.Start(t, "")
	ctx := testCtx(t)
	obj, err := h.JetStream.Objects(ctx, jetstore.ObjectsConfig{Bucket: "test_objects"})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20+17) // many chunks, the last one short
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	for name, data := range map[string][]byte{"big": big, "small": []byte("small"), "empty": {}, "gone": []byte("x")} {
		if err := obj.Put(ctx, name, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := obj.Put(ctx, "small", bytes.NewReader([]byte("replaced"))); err != nil {
		t.Fatal(err)
	}
	if err := obj.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, object string
		want         []byte // nil: not found
	}{
		{"many chunks", "big", big},
		{"replaced", "small", []byte("replaced")},
		{"empty", "empty", []byte{}},
		{"deleted", "gone", nil},
		{"never written", "none", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := obj.Get(ctx, tc.object)
			if tc.want == nil {
				if !errors.Is(err, jetstore.ErrNotFound) {
					t.Fatalf("Get(%q): %v, want ErrNotFound", tc.object, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("Get(%q): %d bytes, %v; want the %d put", tc.object, len(got), err, len(tc.want))
			}
		})
	}
	for _, name := range []string{"gone", "none"} {
		if err := obj.Delete(ctx, name); !errors.Is(err, jetstore.ErrNotFound) {
			t.Fatalf("Delete(%q): %v, want ErrNotFound", name, err)
		}
	}
}

// TestStateSurvivesRestart: buckets are on file storage, so what they hold
// is there after the hub restarts on the same directory.
func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	h := jetstoretest.Start(t, dir)
	kv, err := h.JetStream.KV(ctx, jetstore.KVConfig{Bucket: "durable_kv"})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := h.JetStream.Objects(ctx, jetstore.ObjectsConfig{Bucket: "durable_objects"})
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := obj.Put(ctx, "o", bytes.NewReader([]byte("object"))); err != nil {
		t.Fatal(err)
	}
	h.Shutdown()

	h = jetstoretest.Start(t, dir)
	if kv, err = h.JetStream.KV(ctx, jetstore.KVConfig{Bucket: "durable_kv"}); err != nil {
		t.Fatal(err)
	}
	if obj, err = h.JetStream.Objects(ctx, jetstore.ObjectsConfig{Bucket: "durable_objects"}); err != nil {
		t.Fatal(err)
	}
	if got, err := kv.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("after a restart the key holds %q, %v", got, err)
	}
	r, err := obj.Get(ctx, "o")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := io.ReadAll(r); err != nil || string(got) != "object" {
		t.Fatalf("after a restart the object holds %q, %v", got, err)
	}
}

func TestNewRefusesNoConnection(t *testing.T) {
	if _, err := jetstore.New(nil); err == nil {
		t.Fatal("New(nil) made a JetStream")
	}
}
