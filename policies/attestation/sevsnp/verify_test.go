package sevsnp_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthfl/hearth/plugins/attest"
	"github.com/hearthfl/hearth/policies/attestation/sevsnp"
	"github.com/hearthfl/hearth/policies/attestation/tee"
)

// The host's key and the site's nonce the good evidence binds.
var (
	hostKey  = []byte("host sealing public key bytes")
	nonce    = bytes.Repeat([]byte{0x5a}, 32)
	otherKey = []byte("another host's key")
	oldNonce = bytes.Repeat([]byte{0xa5}, 32)
)

func reportData(key, nonce []byte) [64]byte {
	return sha512.Sum512(append(append([]byte(nil), key...), nonce...))
}

func measurement(b byte) sevsnp.Measurement {
	var m sevsnp.Measurement
	for i := range m {
		m[i] = b
	}
	return m
}

var (
	goodMeasurement  = measurement(0x11)
	otherMeasurement = measurement(0x22)
	goodTCB          = attest.SimulatedTCB{Bootloader: 3, TEE: 1, SNP: 8, Microcode: 115}
)

// reference is the site's reference values the good evidence meets.
func reference() *sevsnp.Reference {
	return &sevsnp.Reference{
		Measurements: []sevsnp.Measurement{otherMeasurement, goodMeasurement},
		MinimumTCB:   sevsnp.TCB{Bootloader: 3, TEE: 1, SNP: 8, Microcode: 115},
		MinimumBuild: 7,
	}
}

// claims are what a good simulated host claims; each case changes one.
func claims() attest.SimulatedSNPOptions {
	return attest.SimulatedSNPOptions{Measurement: goodMeasurement, TCB: goodTCB, Build: 7}
}

// simulators caches one simulator per claims: making a test chain costs
// RSA signatures.
var simulators sync.Map

func collect(t testing.TB, opts attest.SimulatedSNPOptions, rd [64]byte) (report, certs []byte) {
	t.Helper()
	v, ok := simulators.Load(opts)
	if !ok {
		sim, err := attest.SimulatedSNP(opts)
		if err != nil {
			t.Fatalf("SimulatedSNP(%+v): %v", opts, err)
		}
		v, _ = simulators.LoadOrStore(opts, sim)
	}
	report, certs, err := v.(*attest.Simulator).Collect(context.Background(), rd)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	return report, certs
}

func TestVerify(t *testing.T) {
	good := reportData(hostKey, nonce)
	now := time.Now()
	tests := []struct {
		name      string
		claims    func(*attest.SimulatedSNPOptions)
		ref       func(*sevsnp.Reference)
		bind      [64]byte // the REPORT_DATA the host was asked for; zero: good
		mutate    func(report, certs []byte) ([]byte, []byte)
		real      bool      // verify against AMD's roots (simulated false)
		now       time.Time // zero: now
		nilRef    bool
		want      tee.Reason // "": accepted
		wantInErr string
	}{
		{name: "good evidence accepted"},
		{name: "the first measurement of the list accepted",
			claims: func(o *attest.SimulatedSNPOptions) { o.Measurement = otherMeasurement }},
		{name: "wrong measurement", want: tee.ReasonMeasurement,
			claims: func(o *attest.SimulatedSNPOptions) { o.Measurement = measurement(0x33) }},
		{name: "debug policy refused", want: tee.ReasonDebug,
			claims: func(o *attest.SimulatedSNPOptions) { o.Debug = true }},
		{name: "debug refused even where everything else is allowed", want: tee.ReasonDebug,
			claims: func(o *attest.SimulatedSNPOptions) { o.Debug, o.SMT, o.MigrationAgent = true, true, true },
			ref:    func(r *sevsnp.Reference) { r.AllowSMT, r.AllowMigrationAgent = true, true }},
		{name: "bootloader below minimum", want: tee.ReasonTCB, wantInErr: "bootloader 2 < 3",
			claims: func(o *attest.SimulatedSNPOptions) { o.TCB.Bootloader = 2 }},
		{name: "tee below minimum", want: tee.ReasonTCB, wantInErr: "tee 0 < 1",
			claims: func(o *attest.SimulatedSNPOptions) { o.TCB.TEE = 0 }},
		{name: "snp below minimum", want: tee.ReasonTCB, wantInErr: "snp 7 < 8",
			claims: func(o *attest.SimulatedSNPOptions) { o.TCB.SNP = 7 }},
		{name: "microcode below minimum", want: tee.ReasonTCB, wantInErr: "microcode 114 < 115",
			claims: func(o *attest.SimulatedSNPOptions) { o.TCB.Microcode = 114 }},
		{name: "TCB above minimum accepted",
			claims: func(o *attest.SimulatedSNPOptions) {
				o.TCB = attest.SimulatedTCB{Bootloader: 9, TEE: 9, SNP: 22, Microcode: 213}
			}},
		{name: "VCEK for another TCB than the reported one", want: tee.ReasonConsistency, wantInErr: "does not match",
			claims: func(o *attest.SimulatedSNPOptions) {
				o.CertTCB = &attest.SimulatedTCB{Bootloader: 3, TEE: 1, SNP: 9, Microcode: 115}
			}},
		{name: "build below minimum", want: tee.ReasonBuild,
			claims: func(o *attest.SimulatedSNPOptions) { o.Build = 6 }},
		{name: "migration agent not allowed", want: tee.ReasonMigrationAgent,
			claims: func(o *attest.SimulatedSNPOptions) { o.MigrationAgent = true }},
		{name: "migration agent allowed by the site",
			claims: func(o *attest.SimulatedSNPOptions) { o.MigrationAgent = true },
			ref:    func(r *sevsnp.Reference) { r.AllowMigrationAgent = true }},
		{name: "SMT not allowed", want: tee.ReasonSMT,
			claims: func(o *attest.SimulatedSNPOptions) { o.SMT = true }},
		{name: "SMT allowed by the site",
			claims: func(o *attest.SimulatedSNPOptions) { o.SMT = true },
			ref:    func(r *sevsnp.Reference) { r.AllowSMT = true }},
		{name: "VMPL too high", want: tee.ReasonVMPL,
			claims: func(o *attest.SimulatedSNPOptions) { o.VMPL = 2 },
			ref:    func(r *sevsnp.Reference) { r.MaxVMPL = 1 }},
		{name: "VMPL within the site's maximum",
			claims: func(o *attest.SimulatedSNPOptions) { o.VMPL = 1 },
			ref:    func(r *sevsnp.Reference) { r.MaxVMPL = 1 }},
		{name: "another product than the site names", want: tee.ReasonProduct,
			claims: func(o *attest.SimulatedSNPOptions) { o.Product = "Genoa" },
			ref:    func(r *sevsnp.Reference) { r.Product = "Milan" }},
		{name: "Genoa accepted where named",
			claims: func(o *attest.SimulatedSNPOptions) { o.Product = "Genoa" },
			ref:    func(r *sevsnp.Reference) { r.Product = "Genoa" }},
		{name: "a second test chain, not go-sev-guest's", want: tee.ReasonChain,
			claims: func(o *attest.SimulatedSNPOptions) { o.ForeignChain = true }},
		{name: "go-sev-guest's test chain at a site trusting AMD's roots", want: tee.ReasonChain, real: true},
		{name: "VCEK expired", want: tee.ReasonChain, now: now.Add(8 * 365 * 24 * time.Hour)},
		{name: "REPORT_DATA for another key", want: tee.ReasonReportData, bind: reportData(otherKey, nonce)},
		{name: "REPORT_DATA for another nonce (replay)", want: tee.ReasonReportData, bind: reportData(hostKey, oldNonce)},
		{name: "report altered after signing", want: tee.ReasonSignature,
			mutate: func(r, c []byte) ([]byte, []byte) { r[0xC0] ^= 1; return r, c }}, // HOST_DATA
		{name: "measurement altered after signing", want: tee.ReasonSignature,
			mutate: func(r, c []byte) ([]byte, []byte) { copy(r[0x90:0xC0], otherMeasurement[:]); return r, c }},
		{name: "report one byte short", want: tee.ReasonSize,
			mutate: func(r, c []byte) ([]byte, []byte) { return r[:len(r)-1], c }},
		{name: "report one byte long", want: tee.ReasonSize,
			mutate: func(r, c []byte) ([]byte, []byte) { return append(r, 0), c }},
		{name: "empty report", want: tee.ReasonSize,
			mutate: func(r, c []byte) ([]byte, []byte) { return nil, c }},
		{name: "certificate table over its bound", want: tee.ReasonSize,
			mutate: func(r, c []byte) ([]byte, []byte) { return r, append(c, make([]byte, sevsnp.MaxCertTableSize)...) }},
		{name: "no certificate table", want: tee.ReasonChain,
			mutate: func(r, c []byte) ([]byte, []byte) { return r, nil }},
		{name: "certificate table without the VCEK", want: tee.ReasonChain, wantInErr: "no VCEK certificate",
			mutate: func(r, c []byte) ([]byte, []byte) { c[2*24] ^= 0xff; return r, c }}, // the third entry's GUID
		{name: "garbage report", want: tee.ReasonFormat,
			mutate: func(r, c []byte) ([]byte, []byte) { return bytes.Repeat([]byte{0xff}, len(r)), c }},
		{name: "zero report", want: tee.ReasonFormat,
			mutate: func(r, c []byte) ([]byte, []byte) { return make([]byte, len(r)), c }},
		{name: "garbage certificate table", want: tee.ReasonFormat,
			mutate: func(r, c []byte) ([]byte, []byte) { return r, bytes.Repeat([]byte{0xff}, 100) }},
		{name: "certificate table cut short", want: tee.ReasonFormat,
			mutate: func(r, c []byte) ([]byte, []byte) { return r, c[:len(c)/2] }},
		{name: "no reference values", want: tee.ReasonPolicy, nilRef: true},
		{name: "reference accepting no measurement", want: tee.ReasonPolicy,
			ref: func(r *sevsnp.Reference) { r.Measurements = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := claims()
			if tt.claims != nil {
				tt.claims(&opts)
			}
			ref := reference()
			if tt.ref != nil {
				tt.ref(ref)
			}
			if tt.nilRef {
				ref = nil
			}
			bind := good
			if tt.bind != ([64]byte{}) {
				bind = tt.bind
			}
			report, certs := collect(t, opts, bind)
			if tt.mutate != nil {
				report, certs = tt.mutate(report, certs)
			}
			at := now
			if !tt.now.IsZero() {
				at = tt.now
			}
			got, err := sevsnp.Verify(report, certs, ref, good, !tt.real, at)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify refused good evidence: %v", err)
				}
				if got.Measurement != opts.Measurement || !got.Simulated || got.Signer != "VCEK" || got.ChipIDPrefix == "" {
					t.Errorf("Verified = %+v, want measurement %x, simulated, VCEK, a chip id", got, opts.Measurement)
				}
				if got.TCB != (sevsnp.TCB{Bootloader: opts.TCB.Bootloader, TEE: opts.TCB.TEE, SNP: opts.TCB.SNP, Microcode: opts.TCB.Microcode}) {
					t.Errorf("Verified.TCB = %v, want %+v", got.TCB, opts.TCB)
				}
				return
			}
			t.Log(err)
			var re *tee.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("Verify = %+v, %v; want a *tee.RefusedError with reason %q", got, err, tt.want)
			}
			if got != nil {
				t.Errorf("Verify returned %+v with its refusal", got)
			}
			if re.Kind != tee.KindSEVSNP || re.Reason != tt.want {
				t.Fatalf("refused %s/%s (%v), want sev-snp/%s", re.Kind, re.Reason, err, tt.want)
			}
			if !errors.Is(err, &tee.RefusedError{Reason: tt.want}) {
				t.Errorf("errors.Is(err, reason %s) is false", tt.want)
			}
			if prefix := "attestation: sev-snp: " + string(tt.want); !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if tt.wantInErr != "" && !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q does not say %q", err, tt.wantInErr)
			}
		})
	}
}

// FuzzVerify feeds Verify arbitrary reports and certificate tables: it
// must never panic, and anything it does not accept is a refusal with a
// reason. The seeds (good evidence and damaged forms of it) run in every
// go test; go test -fuzz=FuzzVerify -fuzztime=30s explores further.
func FuzzVerify(f *testing.F) {
	rd := reportData(hostKey, nonce)
	report, certs := collect(f, claims(), rd)
	f.Add(report, certs)
	f.Add(report[:100], certs)
	f.Add(report, certs[:64])
	f.Add(make([]byte, sevsnp.ReportSize), []byte{})
	f.Add(bytes.Repeat([]byte{0xff}, sevsnp.ReportSize), bytes.Repeat([]byte{0xff}, 24))
	damaged := append([]byte(nil), certs...)
	damaged[20] ^= 0xff // the first entry's offset
	f.Add(report, damaged)
	ref := reference()
	now := time.Now()
	f.Fuzz(func(t *testing.T, report, certs []byte) {
		v, err := sevsnp.Verify(report, certs, ref, rd, true, now)
		if err == nil {
			if v == nil {
				t.Fatal("accepted with no Verified")
			}
			return
		}
		var re *tee.RefusedError
		if !errors.As(err, &re) || re.Reason == "" {
			t.Fatalf("not a refusal with a reason: %v", err)
		}
	})
}

// TestVerifyConcurrent collects and verifies from several goroutines at
// once, first use of the simulated roots included (run with -race).
func TestVerifyConcurrent(t *testing.T) {
	sim, err := attest.SimulatedSNP(claims())
	if err != nil {
		t.Fatal(err)
	}
	ref := reference()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := bytes.Repeat([]byte{byte(i)}, 32)
			rd := reportData(hostKey, n)
			report, certs, err := sim.Collect(context.Background(), rd)
			if err == nil {
				_, err = sevsnp.Verify(report, certs, ref, rd, true, time.Now())
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
