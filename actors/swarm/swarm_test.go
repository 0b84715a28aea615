package swarm_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/stream"
)

func TestRotationIsFixedByTheNonceAndMovesEveryRound(t *testing.T) {
	sites := []string{"site-1", "site-2", "site-3", "site-4", "site-5"}
	nonce := []byte("0123456789abcdef")
	r := swarm.NewRotation(nonce, sites)
	shuffled := swarm.NewRotation(nonce, []string{"site-5", "site-3", "site-1", "site-4", "site-2", "site-3"})
	if strings.Join(r, ",") != strings.Join(shuffled, ",") {
		t.Fatalf("rotation depends on the order sites are listed in: %v vs %v", r, shuffled)
	}
	if len(r) != 5 {
		t.Fatalf("rotation %v: want the 5 distinct sites", r)
	}
	other := swarm.NewRotation([]byte("fedcba9876543210"), sites)
	if strings.Join(r, ",") == strings.Join(other, ",") {
		t.Errorf("two nonces gave the same rotation %v (possible by chance, 1 in 120: change a nonce)", r)
	}
	seen := map[string]bool{}
	for round := int64(1); round <= 5; round++ {
		a := r.Aggregator(round, 0)
		if round > 1 && a == r.Aggregator(round-1, 0) {
			t.Errorf("round %d repeats round %d's aggregator %s", round, round-1, a)
		}
		seen[a] = true
		if next := r.Aggregator(round, 1); next == a {
			t.Errorf("round %d's failover stays with %s", round, a)
		}
	}
	if len(seen) != 5 {
		t.Errorf("5 rounds had aggregators %v: want every site once", seen)
	}
}

func TestRotationCheckRefusesAnotherPick(t *testing.T) {
	r := swarm.NewRotation([]byte("nonce"), []string{"a", "b", "c"})
	own := r.Aggregator(4, 0)
	var other string
	for _, s := range r {
		if s != own {
			other = s
		}
	}
	for _, tc := range []struct {
		name       string
		round, att int64
		agg, want  string
	}{
		{"the rotation's pick", 4, 0, own, ""},
		{"the failover's pick", 4, 1, r.Aggregator(4, 1), ""},
		{"another site", 4, 0, other, "to aggregate, not"},
		{"an attempt past every site", 4, 3, r.Aggregator(4, 3), "want 0..2"},
		{"a negative attempt", 4, -1, own, "want 0..2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r.Check(tc.round, tc.att, tc.agg)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Check(%d, %d, %s) = %v, want %q", tc.round, tc.att, tc.agg, err, tc.want)
			}
		})
	}
	if err := swarm.Rotation(nil).Check(1, 0, "a"); err == nil {
		t.Error("an empty rotation accepted an aggregator")
	}
}

func TestEncryptedModelStreamRoundTrips(t *testing.T) {
	m := &model.Model{Tensors: []model.Tensor{
		{Name: "w", Shape: []int{300, 7}, Data: make([]float32, 2100)},
		{Name: "b", Shape: []int{7}, Data: []float32{1, 2, 3, 4, 5, 6, 7}},
	}}
	for i := range m.Tensors[0].Data {
		m.Tensors[0].Data[i] = float32(i) / 3
	}
	data, key, err := swarm.EncryptModel(m)
	if err != nil {
		t.Fatal(err)
	}
	var plain []byte
	for _, tt := range m.Tensors {
		for _, v := range tt.Data {
			plain = binary.LittleEndian.AppendUint32(plain, math.Float32bits(v))
		}
	}
	if len(data) != len(plain) {
		t.Fatalf("%d bytes for a %d-byte model", len(data), len(plain))
	}
	for off := 0; off+32 <= len(plain); off += 32 {
		if bytes.Contains(data, plain[off:off+32]) {
			t.Fatalf("bytes %d..%d of the model are in the stream in the clear", off, off+32)
		}
	}
	layout := &model.Model{Tensors: []model.Tensor{
		{Name: "w", Shape: []int{300, 7}, Data: make([]float32, 2100)},
		{Name: "b", Shape: []int{7}, Data: make([]float32, 7)},
	}}
	sink, err := swarm.NewModelSink(layout, key)
	if err != nil {
		t.Fatal(err)
	}
	// Chunks of 1024 bytes (a multiple of the cipher's block), out of order.
	for _, off := range []int{8192, 0, 4096, 1024, 7168, 2048, 5120, 3072, 6144} {
		end := min(off+1024, len(data))
		if err := sink.WriteChunk(off/1024, int64(off), data[off:end]); err != nil {
			t.Fatal(err)
		}
	}
	got := sink.Model()
	if swarm.Digest(got) == nil || !bytes.Equal(swarm.Digest(got), swarm.Digest(m)) {
		t.Fatal("the decrypted model is not the one encrypted")
	}
	other, _ := swarm.NewModelSink(layout, bytes.Repeat([]byte{7}, swarm.StreamKeySize))
	other.WriteChunk(0, 0, data[:1024])
	if other.Model().Tensors[0].Data[1] == m.Tensors[0].Data[1] {
		t.Error("another key decrypted the model")
	}
	for _, tc := range []struct {
		name string
		off  int64
		n    int
	}{{"past the end", int64(len(data)) - 16, 64}, {"unaligned", 10, 64}, {"negative", -64, 64}} {
		if err := sink.WriteChunk(0, tc.off, make([]byte, tc.n)); err == nil {
			t.Errorf("%s: chunk accepted", tc.name)
		}
	}
	if _, err := swarm.NewModelSink(layout, []byte("short")); err == nil {
		t.Error("a short key accepted")
	}
	// A key of zeros is what the sealfree build sends, its models in the
	// clear: refused by name, by both sinks.
	if _, err := swarm.NewModelSink(layout, make([]byte, swarm.StreamKeySize)); err == nil || !strings.Contains(err.Error(), "stream key of zeros") {
		t.Errorf("a key of zeros: %v, want it refused", err)
	}
	if _, err := swarm.NewDecryptingSink(make([]byte, swarm.StreamKeySize), stream.SinkFunc(func(int, int64, []byte) error { return nil })); err == nil ||
		!strings.Contains(err.Error(), "stream key of zeros") {
		t.Errorf("a key of zeros: %v, want it refused", err)
	}
}

// BenchmarkModelStreamCrypto: encrypting a 64 MiB model for its stream,
// and decrypting it chunk by chunk, next to copying its bytes (the floor).
func BenchmarkModelStreamCrypto(b *testing.B) {
	m := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{16 << 20}, Data: make([]float32, 16<<20)}}}
	data, key, err := swarm.EncryptModel(m)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		dst := make([]byte, len(data))
		for b.Loop() {
			copy(dst, data)
		}
	})
	b.Run("encrypt", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, _, err := swarm.EncryptModel(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decrypt", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			sink, _ := swarm.NewModelSink(m, key)
			for off := 0; off < len(data); off += 1 << 20 {
				if err := sink.WriteChunk(off>>20, int64(off), data[off:off+1<<20]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// A DecryptingSink hands each chunk on decrypted as it comes, into one
// chunk buffer that it reuses: the model is never assembled; a key of the
// wrong size is refused.
func TestDecryptingSinkPassesChunksOn(t *testing.T) {
	m := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{1000}, Data: make([]float32, 1000)}}}
	for i := range m.Tensors[0].Data {
		m.Tensors[0].Data[i] = float32(i)
	}
	data, key, err := swarm.EncryptModel(m)
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 256 // bytes
	var got []float32
	var buffers = map[*byte]bool{}
	next := stream.SinkFunc(func(index int, offset int64, plain []byte) error {
		if offset != int64(index*chunk) || int64(len(got)*4) != offset {
			return fmt.Errorf("chunk %d at %d after %d values", index, offset, len(got))
		}
		buffers[&plain[0]] = true
		for b := 0; b < len(plain); b += 4 {
			got = append(got, math.Float32frombits(binary.LittleEndian.Uint32(plain[b:])))
		}
		return nil
	})
	if _, err := swarm.NewDecryptingSink(key[:16], next); err == nil {
		t.Fatal("a 16-byte key was taken")
	}
	sink, err := swarm.NewDecryptingSink(key, next)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i*chunk < len(data); i++ {
		if err := sink.WriteChunk(i, int64(i*chunk), data[i*chunk:min((i+1)*chunk, len(data))]); err != nil {
			t.Fatal(err)
		}
		if len(got) != min((i+1)*chunk/4, 1000) {
			t.Fatalf("after chunk %d the next sink holds %d values", i, len(got))
		}
	}
	if !slices.Equal(got, m.Tensors[0].Data) {
		t.Fatal("decrypted values differ from the model's")
	}
	if len(buffers) != 1 {
		t.Fatalf("%d chunk buffers used, want one reused", len(buffers))
	}
	if err := sink.WriteChunk(0, 10, data[:chunk]); err == nil {
		t.Fatal("a chunk off the cipher's blocks was taken")
	}
}

// A ModelSink fed in order hashes and checks the model as it decrypts it:
// Checked gives Digest's digest and names the tensor holding a NaN or an
// infinity, for chunks that cross tensors and an empty tensor among them;
// fed out of order, it computes the same afterwards.
func TestModelSinkChecksTheModelAsItComes(t *testing.T) {
	m := &model.Model{Tensors: []model.Tensor{
		{Name: "w", Shape: []int{300, 7}, Data: make([]float32, 2100)},
		{Name: "empty", Shape: []int{0}, Data: []float32{}},
		{Name: "b", Shape: []int{7}, Data: []float32{1, 2, 3, 4, 5, 6, 7}},
		{Name: "tail", Shape: []int{0}, Data: []float32{}},
	}}
	for i := range m.Tensors[0].Data {
		m.Tensors[0].Data[i] = float32(i) / 3
	}
	feed := func(m *model.Model, order []int) (digest []byte, nonFinite string) {
		t.Helper()
		data, key, err := swarm.EncryptModel(m)
		if err != nil {
			t.Fatal(err)
		}
		sink, err := swarm.NewModelSink(m, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range order {
			off := c * 1024
			if err := sink.WriteChunk(c, int64(off), data[off:min(off+1024, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		return sink.Checked()
	}
	inOrder, shuffled := []int{0, 1, 2, 3, 4, 5, 6, 7, 8}, []int{8, 0, 4, 1, 7, 2, 5, 3, 6}
	want := swarm.Digest(m)
	for name, order := range map[string][]int{"in order": inOrder, "out of order": shuffled} {
		if d, bad := feed(m, order); !bytes.Equal(d, want) || bad != "" {
			t.Errorf("%s: digest %x (want %x), non-finite %q", name, d, want, bad)
		}
	}
	for _, tc := range []struct {
		tensor, at int
		v          float32
	}{{0, 0, float32(math.NaN())}, {0, 2099, float32(math.Inf(1))}, {2, 6, float32(math.Inf(-1))}, {2, 3, float32(math.NaN())}} {
		bad := m.Clone()
		bad.Tensors[tc.tensor].Data[tc.at] = tc.v
		for name, order := range map[string][]int{"in order": inOrder, "out of order": shuffled} {
			if d, got := feed(bad, order); got != bad.Tensors[tc.tensor].Name || !bytes.Equal(d, swarm.Digest(bad)) {
				t.Errorf("%v at %s[%d], %s: non-finite %q, digest right: %v", tc.v, bad.Tensors[tc.tensor].Name, tc.at, name, got, bytes.Equal(d, swarm.Digest(bad)))
			}
		}
	}
	// The largest finite values and subnormals are finite.
	edge := m.Clone()
	edge.Tensors[2].Data = []float32{math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 0, -0.0, 1e-40, 7}
	if _, bad := feed(edge, inOrder); bad != "" {
		t.Errorf("finite extremes reported non-finite in %q", bad)
	}
}

// Whatever order and however often chunks come (in order with a chunk
// written again with other bytes, out of order, one chunk twice), Checked
// reports the digest and finiteness of the model the sink holds, never of
// bytes it held earlier. The other bytes decrypt to a NaN, in one case
// written over good values and in another overwritten by them.
func TestModelSinkCheckedIsOfTheModelHeld(t *testing.T) {
	m := &model.Model{Tensors: []model.Tensor{
		{Name: "w", Shape: []int{600}, Data: make([]float32, 600)},
		{Name: "b", Shape: []int{16}, Data: make([]float32, 16)},
	}}
	for i := range m.Tensors[0].Data {
		m.Tensors[0].Data[i] = float32(i)
	}
	data, key, err := swarm.EncryptModel(m)
	if err != nil {
		t.Fatal(err)
	}
	// nan is chunk 1's ciphertext made to decrypt to a NaN at its start:
	// CTR is XOR, so the plaintext changes by what the ciphertext does.
	nan := append([]byte(nil), data[1024:2048]...)
	bits := math.Float32bits(float32(1024/4)) ^ math.Float32bits(float32(math.NaN()))
	for b := range 4 {
		nan[b] ^= byte(bits >> (8 * b))
	}
	type write struct {
		chunk int
		bad   bool
	}
	for _, tc := range []struct {
		name     string
		writes   []write
		holdsNaN bool
	}{
		{"in order, then chunk 1 bad", []write{{0, false}, {1, false}, {2, false}, {1, true}}, true},
		{"in order with chunk 1 bad, then good", []write{{0, false}, {1, true}, {2, false}, {1, false}}, false},
		{"chunk 0 twice", []write{{0, false}, {0, false}, {1, false}, {2, false}}, false},
		{"backwards", []write{{2, false}, {1, true}, {0, false}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink, err := swarm.NewModelSink(m, key)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.writes {
				off := w.chunk * 1024
				chunk := data[off:min(off+1024, len(data))]
				if w.bad {
					chunk = nan
				}
				if err := sink.WriteChunk(w.chunk, int64(off), chunk); err != nil {
					t.Fatal(err)
				}
			}
			held := sink.Model()
			wantBad := ""
			if model.FirstNonFinite(held.Tensors[0].Data) >= 0 {
				wantBad = "w"
			}
			if (wantBad != "") != tc.holdsNaN {
				t.Fatalf("the sink holds a NaN: %v, want %v: the case is not what it says", wantBad != "", tc.holdsNaN)
			}
			if err := sink.WriteChunk(0, math.MaxInt64-63, data[:128]); err == nil {
				t.Fatal("a chunk whose end overflows the offsets was taken")
			}
			digest, bad := sink.Checked()
			if !bytes.Equal(digest, swarm.Digest(held)) || bad != wantBad {
				t.Fatalf("Checked: digest of the model held %v, non-finite %q (want %q)", bytes.Equal(digest, swarm.Digest(held)), bad, wantBad)
			}
		})
	}
}

// TestEncryptModelReusesARecycledBuffer: EncryptModel writes into the
// buffer Recycle was last handed when it has the model's size (every byte
// overwritten: the result decrypts to the model, under its new key), and
// into a fresh one for a model of another size.
func TestEncryptModelReusesARecycledBuffer(t *testing.T) {
	m := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{4096}, Data: make([]float32, 4096)}}}
	for i := range m.Tensors[0].Data {
		m.Tensors[0].Data[i] = float32(i)
	}
	first, _, err := swarm.EncryptModel(m)
	if err != nil {
		t.Fatal(err)
	}
	swarm.Recycle(first)
	again, key, err := swarm.EncryptModel(m)
	if err != nil {
		t.Fatal(err)
	}
	if &again[0] != &first[0] {
		t.Fatal("the recycled buffer was not reused for a model of its size")
	}
	sink, err := swarm.NewModelSink(&model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{4096}, Data: make([]float32, 4096)}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.WriteChunk(0, 0, again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(swarm.Digest(sink.Model()), swarm.Digest(m)) {
		t.Fatal("the model encrypted into the recycled buffer does not decrypt to the model")
	}
	swarm.Recycle(again)
	small := &model.Model{Tensors: []model.Tensor{{Name: "w", Shape: []int{16}, Data: make([]float32, 16)}}}
	other, _, err := swarm.EncryptModel(small)
	if err != nil {
		t.Fatal(err)
	}
	if len(other) != 64 || &other[0] == &again[0] {
		t.Fatal("a model of another size was encrypted into the recycled buffer")
	}
}
