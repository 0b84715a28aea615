package model

import (
	"fmt"
	"testing"
	"time"
)

func TestSpareHandsBackTheSameBufferForTheSameLayout(t *testing.T) {
	layout := []TensorShape{{Name: "w", Shape: []int{4, 3}}, {Name: "b", Shape: []int{3}}}
	var s Spare
	f, err := s.Take(layout, "")
	if err != nil {
		t.Fatal(err)
	}
	f.Data[0] = 7
	s.Put(f)
	g, err := s.Take(layout, "")
	if err != nil {
		t.Fatal(err)
	}
	if &g.Data[0] != &f.Data[0] || g.Data[0] != 7 {
		t.Fatal("a new buffer for the same layout: the kept one was not reused")
	}
	s.Put(g)

	other := []TensorShape{{Name: "w", Shape: []int{3, 4}}, {Name: "b", Shape: []int{3}}} // same size, other shape
	h, err := s.Take(other, "")
	if err != nil {
		t.Fatal(err)
	}
	if g.mem != nil {
		t.Fatal("the kept buffer of another layout was not released")
	}
	if h.Data[0] != 0 || h.Layout[0].Shape[0] != 3 {
		t.Fatal("a buffer of another layout was handed out")
	}
	s.Put(h)

	spilled, err := s.Take(other, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if spilled.file == nil || h.mem != nil {
		t.Fatal("a buffer in memory was handed out where a spilled one was asked for")
	}
	s.Close()
	if spilled.mem == nil {
		t.Fatal("Close released a buffer that was taken")
	}
	s.Put(spilled)
	if spilled.mem != nil {
		t.Fatal("a buffer put after Close was kept")
	}
}

// BenchmarkFill writes a 256 MiB model into the buffer a Spare keeps (the
// baseline: what a round after the first pays), into a fresh buffer each
// time (every page faulted in, on memory the process just freed), and into
// a fresh buffer after the process has been idle for 3 s (not timed): on a
// virtual machine that hands freed memory back to its host (virtio-balloon
// free page reporting), the host must fault it in again too. Run it with
// -benchtime 3x.
func BenchmarkFill(b *testing.B) {
	layout := []TensorShape{{Name: "w", Shape: []int{64 << 20}}}
	src := make([]byte, 1<<20)
	fill := func(f *Flat) {
		for off := 0; off < len(f.mem); off += len(src) {
			copy(f.mem[off:], src)
		}
	}
	b.Run("kept", func(b *testing.B) {
		var s Spare
		defer s.Close()
		b.SetBytes(256 << 20)
		for range b.N {
			f, err := s.Take(layout, "")
			if err != nil {
				b.Fatal(err)
			}
			fill(f)
			s.Put(f)
		}
	})
	for _, idle := range []time.Duration{0, 3 * time.Second} {
		b.Run(fmt.Sprintf("fresh/idle-%v", idle), func(b *testing.B) {
			b.SetBytes(256 << 20)
			for range b.N {
				b.StopTimer()
				time.Sleep(idle)
				b.StartTimer()
				f, err := NewFlat(layout, "")
				if err != nil {
					b.Fatal(err)
				}
				fill(f)
				f.Close()
			}
		})
	}
}
