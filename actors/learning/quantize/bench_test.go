package quantize

import "testing"

// BenchmarkCodecs encodes and decodes one 1 MiB chunk of float32 (262,144
// values, a model update's distribution) with every codec; MB/s counts
// float32 input, 4 bytes a value, both ways.
//
//	go test -run '^$' -bench Codecs -benchtime 20x ./actors/learning/quantize
func BenchmarkCodecs(b *testing.B) {
	src := randomVector(1, 262144, 0.01)
	for _, c := range allCodecs(b) {
		enc, err := c.Encode(nil, src)
		if err != nil {
			b.Fatal(err)
		}
		dec := make([]float32, 0, len(src))
		b.Run(c.Name()+"/encode", func(b *testing.B) {
			b.SetBytes(4 * int64(len(src)))
			buf := make([]byte, 0, len(enc))
			for b.Loop() {
				if buf, err = c.Encode(buf[:0], src); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.Name()+"/decode", func(b *testing.B) {
			b.SetBytes(4 * int64(len(src)))
			for b.Loop() {
				if dec, err = c.Decode(dec[:0], enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
