package coordinator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/jetstore"
	"github.com/hearthfl/hearth/bus/jetstore/jetstoretest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// openTestStore opens a Store on a hub of its own.
func openTestStore(t *testing.T) *Store {
	t.Helper()
	h := jetstoretest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := OpenStore(ctx, h.JetStream)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRawCheckpointsRoundTripInParts(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	const floats = 5<<18 + 25 // 5 MiB and 100 bytes
	layout := &hearthv1.ModelLayout{Tensors: []*hearthv1.TensorLayout{{Name: "w", Shape: []int64{floats}}}}
	const part = 1<<20 + 12 // parts that do not divide the model
	models := make([][]byte, 3)
	for round := range models {
		models[round] = make([]byte, 4*floats)
		rng := rand.New(rand.NewPCG(uint64(round), 1))
		for i := range models[round] {
			models[round][i] = byte(rng.Uint32())
		}
		data := models[round]
		if err := s.putRaw(ctx, "job-1", int64(round), layout, bytes.NewReader(data), int64(len(data)), part); err != nil {
			t.Fatal(err)
		}
	}
	gotLayout, r, err := s.Raw(ctx, "job-1", 2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, models[2]) || gotLayout.Tensors[0].Shape[0] != floats {
		t.Fatalf("read back %d bytes that differ from the %d checkpointed", len(got), len(models[2]))
	}
	// The round before is dropped, every part of it.
	if _, _, err := s.Raw(ctx, "job-1", 1); err == nil {
		t.Fatal("the checkpoint of round 1 is still there")
	}
	for i := range 6 {
		if _, err := s.models.Get(ctx, rawPart("job-1", 1, i)); !errors.Is(err, jetstore.ErrNotFound) {
			t.Fatalf("part %d of round 1: %v, want it deleted", i, err)
		}
	}
}

func TestRawCheckpointRefusals(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	layout := &hearthv1.ModelLayout{Tensors: []*hearthv1.TensorLayout{{Name: "w", Shape: []int64{1000}}}}
	if err := s.PutRaw(ctx, "job-1", 1, layout, bytes.NewReader(make([]byte, 3000)), 3000); err == nil {
		t.Fatal("3000 bytes checkpointed for a layout of 4000")
	}
	// A checkpoint cut short (a crash after its parts, before its
	// description) is not opened.
	if err := s.models.Put(ctx, rawPart("job-1", 2, 0), bytes.NewReader(make([]byte, 4000))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Raw(ctx, "job-1", 2); err == nil {
		t.Fatal("a checkpoint without its description was opened")
	}
	// A part missing: reading fails and says which.
	if err := s.PutRaw(ctx, "job-1", 3, layout, bytes.NewReader(make([]byte, 4000)), 4000); err != nil {
		t.Fatal(err)
	}
	if err := s.models.Delete(ctx, rawPart("job-1", 3, 0)); err != nil {
		t.Fatal(err)
	}
	_, r, err := s.Raw(ctx, "job-1", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadAll(r); err == nil || !bytes.Contains([]byte(err.Error()), []byte("part 0")) {
		t.Fatalf("read of a checkpoint missing a part: %v", err)
	}
}
