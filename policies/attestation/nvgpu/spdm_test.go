package nvgpu_test

import (
	"bytes"
	"testing"

	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
	"github.com/hearthfl/hearth/policies/attestation/nvgpu/nvgputest"
)

func TestParseReportRefuses(t *testing.T) {
	d, err := nvgputest.NewDevice(nvgputest.WithBlocks(2))
	if err != nil {
		t.Fatal(err)
	}
	good := d.Report(testNonce(1))
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	// Offsets in a 2-block report: request 0-36, response from 37:
	// version 37, code 38, blocks 41, record length 42-44, first block 45.
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"request only", good[:nvgpu.RequestLen]},
		{"one byte short", good[:len(good)-1]},
		{"one byte long", append(append([]byte(nil), good...), 0)},
		{"spdm 1.0", mod(func(b []byte) []byte { b[0] = 0x10; return b })},
		{"not GET_MEASUREMENTS", mod(func(b []byte) []byte { b[1] = 0x81; return b })},
		{"no signature requested", mod(func(b []byte) []byte { b[2] = 0; return b })},
		{"response version differs", mod(func(b []byte) []byte { b[37] = 0x12; return b })},
		{"not MEASUREMENTS", mod(func(b []byte) []byte { b[38] = 0x7F; return b })},
		{"zero blocks", mod(func(b []byte) []byte { b[41] = 0; return b })},
		{"more blocks than the record holds", mod(func(b []byte) []byte { b[41] = 3; return b })},
		{"fewer blocks than the record holds", mod(func(b []byte) []byte { b[41] = 1; return b })},
		{"record length past the end", mod(func(b []byte) []byte { b[44] = 0xFF; return b })},
		{"block index zero", mod(func(b []byte) []byte { b[45] = 0; return b })},
		{"repeated block index", mod(func(b []byte) []byte { b[45+4+51] = b[45]; return b })},
		{"not DMTF", mod(func(b []byte) []byte { b[46] = 0x02; return b })},
		{"DMTF size differs from block size", mod(func(b []byte) []byte { b[50]--; return b })},
		{"opaque length past the signature", mod(func(b []byte) []byte {
			i := len(b) - nvgpu.SignatureLen - 2 - 4 - 8 - 4 - 10 // opaque length field
			b[i], b[i+1] = 0xFF, 0xFF
			return b
		})},
		{"garbage", bytes.Repeat([]byte{0x11}, 300)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := nvgpu.ParseReport(tc.b); err == nil {
				t.Fatal("parsed")
			}
		})
	}
	if _, err := nvgpu.ParseReport(good); err != nil {
		t.Fatalf("good report: %v", err)
	}
}

// FuzzParseReport: the parser never panics and whatever it accepts is
// consistent (signature at the end, Signed the rest, blocks in bounds).
func FuzzParseReport(f *testing.F) {
	d, err := nvgputest.NewDevice(nvgputest.WithBlocks(3))
	if err != nil {
		f.Fatal(err)
	}
	good := d.Report(testNonce(1))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:nvgpu.RequestLen+8])
	report, _ := loadHopperSample(f)
	f.Add(report)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := nvgpu.ParseReport(b)
		if err != nil {
			return
		}
		if len(rep.Signature) != nvgpu.SignatureLen || len(rep.Signed)+nvgpu.SignatureLen != len(b) || len(rep.Blocks) == 0 {
			t.Fatalf("inconsistent parse: sig %d signed %d of %d, %d blocks", len(rep.Signature), len(rep.Signed), len(b), len(rep.Blocks))
		}
		_ = rep.DriverVersion()
		_ = rep.VBIOSVersion()
	})
}
