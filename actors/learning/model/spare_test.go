package model

import "testing"

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
