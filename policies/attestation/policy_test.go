package attestation_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/policies/attestation"
	"github.com/hearthfl/hearth/policies/attestation/sevsnp"
)

var (
	m1 = strings.Repeat("ab", 48)
	m2 = strings.Repeat("CD", 48)
)

// snp is a valid sev_snp section with extra members spliced in.
func snp(extra string) string {
	s := `{"measurements": ["` + m1 + `", "` + m2 + `"], "minimum_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}`
	if extra != "" {
		s += ", " + extra
	}
	return s + "}"
}

func TestParse(t *testing.T) {
	full := `{"require": ["sev-snp", "nvidia-gpu"], "reattest": "30m", "simulated": true,
	  "sev_snp": ` + snp(`"minimum_build": 7, "allow_migration_agent": true, "allow_smt": true, "max_vmpl": 2, "product": "Genoa"`) + `,
	  "nvidia_gpu": {"measurements": {"0": ["abababababababababababababababababababababababababababababababababababababababababababababababab"]}, "minimum_driver": "550.54"}}`
	p, err := attestation.Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Require) != 2 || p.Require[0] != attestation.KindSEVSNP || p.Require[1] != attestation.KindNvidiaGPU {
		t.Errorf("Require = %v", p.Require)
	}
	if p.Reattest != 30*time.Minute || !p.Simulated {
		t.Errorf("Reattest, Simulated = %v, %v", p.Reattest, p.Simulated)
	}
	want := &sevsnp.Reference{
		MinimumTCB:   sevsnp.TCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115},
		MinimumBuild: 7, AllowMigrationAgent: true, AllowSMT: true, MaxVMPL: 2, Product: "Genoa",
	}
	got := *p.SNP
	if got.Measurements[0].String() != m1 || got.Measurements[1].String() != strings.ToLower(m2) {
		t.Errorf("Measurements = %v", got.Measurements)
	}
	got.Measurements = nil
	if got.MinimumTCB != want.MinimumTCB || got.MinimumBuild != want.MinimumBuild || !got.AllowMigrationAgent ||
		!got.AllowSMT || got.MaxVMPL != 2 || got.Product != "Genoa" {
		t.Errorf("SNP = %+v, want %+v", got, want)
	}
	if p.GPURef == nil || p.GPURef.MinGPUs != 1 || len(p.GPURef.Measurements[1]) != 1 {
		t.Errorf("GPU reference = %+v", p.GPURef)
	}

	// Defaults: fail closed.
	p, err = attestation.Parse([]byte(`{"require": ["sev-snp"], "sev_snp": ` + snp("") + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Reattest != 10*time.Minute || p.Simulated || p.GPURef != nil || p.Requires(attestation.KindNvidiaGPU) {
		t.Errorf("defaults: %+v", p)
	}
	if r := p.SNP; r.AllowMigrationAgent || r.AllowSMT || r.MaxVMPL != 0 || r.MinimumBuild != 0 || r.Product != "" {
		t.Errorf("sev_snp defaults: %+v", r)
	}
}

func TestParseRefuses(t *testing.T) {
	req := `"require": ["sev-snp"], `
	tests := []struct {
		name     string
		doc      string
		wantPath string
		wantMsg  string
	}{
		{"unknown top-level key", `{` + req + `"sev_snp": ` + snp("") + `, "debug": true}`, "debug", "unknown key"},
		{"unknown sev_snp key", `{` + req + `"sev_snp": ` + snp(`"allow_debug": true`) + `}`, "sev_snp.allow_debug", "unknown key"},
		{"unknown minimum_tcb key", `{` + req + `"sev_snp": {"measurements": ["` + m1 + `"], "minimum_tcb": {"bootloader": 1, "tee": 1, "snp": 1, "microcode": 1, "fmc": 1}}}`, "sev_snp.minimum_tcb.fmc", "unknown key"},
		{"bad hex", `{` + req + `"sev_snp": {"measurements": ["` + strings.Repeat("zz", 48) + `"], "minimum_tcb": {"bootloader": 1, "tee": 1, "snp": 1, "microcode": 1}}}`, "sev_snp.measurements[0]", "not hex"},
		{"short measurement", `{` + req + `"sev_snp": {"measurements": ["` + m1 + `", "` + m1[:95] + `"], "minimum_tcb": {"bootloader": 1, "tee": 1, "snp": 1, "microcode": 1}}}`, "sev_snp.measurements[1]", "95 characters"},
		{"repeated measurement", `{` + req + `"sev_snp": {"measurements": ["` + m1 + `", "` + strings.ToUpper(m1) + `"], "minimum_tcb": {"bootloader": 1, "tee": 1, "snp": 1, "microcode": 1}}}`, "sev_snp.measurements[1]", "repeats"},
		{"missing measurements", `{` + req + `"sev_snp": {"minimum_tcb": {"bootloader": 1, "tee": 1, "snp": 1, "microcode": 1}}}`, "sev_snp.measurements", "required"},
		{"empty measurements", `{` + req + `"sev_snp": {"measurements": [], "minimum_tcb": {"bootloader": 1, "tee": 1, "snp": 1, "microcode": 1}}}`, "sev_snp.measurements", "0 measurements"},
		{"measurement not a string", `{` + req + `"sev_snp": {"measurements": [1], "minimum_tcb": {"bootloader": 1, "tee": 1, "snp": 1, "microcode": 1}}}`, "sev_snp.measurements[0]", "a number, want a string"},
		{"missing minimum_tcb", `{` + req + `"sev_snp": {"measurements": ["` + m1 + `"]}}`, "sev_snp.minimum_tcb", "required"},
		{"missing TCB component", `{` + req + `"sev_snp": {"measurements": ["` + m1 + `"], "minimum_tcb": {"bootloader": 1, "tee": 1, "snp": 1}}}`, "sev_snp.minimum_tcb.microcode", "required"},
		{"TCB component out of range", `{` + req + `"sev_snp": {"measurements": ["` + m1 + `"], "minimum_tcb": {"bootloader": 256, "tee": 1, "snp": 1, "microcode": 1}}}`, "sev_snp.minimum_tcb.bootloader", "out of range"},
		{"TCB component negative", `{` + req + `"sev_snp": {"measurements": ["` + m1 + `"], "minimum_tcb": {"bootloader": -1, "tee": 1, "snp": 1, "microcode": 1}}}`, "sev_snp.minimum_tcb.bootloader", "not a whole number"},
		{"TCB component fractional", `{` + req + `"sev_snp": {"measurements": ["` + m1 + `"], "minimum_tcb": {"bootloader": 1.5, "tee": 1, "snp": 1, "microcode": 1}}}`, "sev_snp.minimum_tcb.bootloader", "not a whole number"},
		{"max_vmpl out of range", `{` + req + `"sev_snp": ` + snp(`"max_vmpl": 4`) + `}`, "sev_snp.max_vmpl", "out of range"},
		{"minimum_build out of range", `{` + req + `"sev_snp": ` + snp(`"minimum_build": 256`) + `}`, "sev_snp.minimum_build", "out of range"},
		{"unknown product", `{` + req + `"sev_snp": ` + snp(`"product": "Naples"`) + `}`, "sev_snp.product", "not a product"},
		{"allow_smt not a boolean", `{` + req + `"sev_snp": ` + snp(`"allow_smt": "yes"`) + `}`, "sev_snp.allow_smt", "want true or false"},
		{"null value", `{` + req + `"sev_snp": ` + snp(`"allow_smt": null`) + `}`, "sev_snp.allow_smt", "null"},
		{"require unknown kind", `{"require": ["sev-snp", "tdx"], "sev_snp": ` + snp("") + `}`, "require[1]", `"tdx" is not a TEE kind`},
		{"require a kind twice", `{"require": ["sev-snp", "sev-snp"], "sev_snp": ` + snp("") + `}`, "require[1]", "twice"},
		{"require empty", `{"require": [], "sev_snp": ` + snp("") + `}`, "require", "empty"},
		{"require missing", `{"sev_snp": ` + snp("") + `}`, "require", "required"},
		{"require not a list", `{"require": "sev-snp", "sev_snp": ` + snp("") + `}`, "require", "want an array"},
		{"sev-snp required without its section", `{"require": ["sev-snp"]}`, "sev_snp", "required when"},
		{"nvidia-gpu required without its section", `{"require": ["sev-snp", "nvidia-gpu"], "sev_snp": ` + snp("") + `}`, "nvidia_gpu", "required when"},
		{"nvidia-gpu without sev-snp", `{"require": ["nvidia-gpu"], "nvidia_gpu": {"measurements": {"0": ["ab"]}}}`, "require", "only with"},
		{"nvidia_gpu not an object", `{"require": ["sev-snp", "nvidia-gpu"], "sev_snp": ` + snp("") + `, "nvidia_gpu": [1]}`, "nvidia_gpu", "want an object"},
		{"nvidia_gpu with an unknown key", `{"require": ["sev-snp", "nvidia-gpu"], "sev_snp": ` + snp("") + `, "nvidia_gpu": {"measurements": {"0": ["ab"]}, "anything": 1}}`, "nvidia_gpu", "unknown field"},
		{"reattest too short", `{` + req + `"reattest": "500ms", "sev_snp": ` + snp("") + `}`, "reattest", "not a duration in [1s, 24h0m0s]"},
		{"reattest too long", `{` + req + `"reattest": "25h", "sev_snp": ` + snp("") + `}`, "reattest", "not a duration in [1s, 24h0m0s]"},
		{"reattest not a duration", `{` + req + `"reattest": 10, "sev_snp": ` + snp("") + `}`, "reattest", "string"},
		{"simulated not a boolean", `{` + req + `"simulated": 1, "sev_snp": ` + snp("") + `}`, "simulated", "want true or false"},
		{"duplicate key", `{` + req + `"simulated": false, "simulated": true, "sev_snp": ` + snp("") + `}`, "simulated", "duplicate key"},
		{"duplicate key inside a section", `{` + req + `"sev_snp": ` + snp(`"allow_smt": false, "allow_smt": true`) + `}`, "sev_snp.allow_smt", "duplicate key"},
		{"trailing data", `{` + req + `"sev_snp": ` + snp("") + `} {}`, "", "trailing data"},
		{"not an object", `[]`, "", "want an object"},
		{"not JSON", `require: sev-snp`, "", "invalid JSON"},
		{"comments", `{"require": ["sev-snp"] // the CPU
		}`, "", "invalid JSON"},
		{"not UTF-8", "{\"require\": [\"sev-snp\xff\"]}", "", "not valid UTF-8"},
		{"too deep", `{"require": ["sev-snp"], "nvidia_gpu": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "nvidia_gpu", "nested deeper"},
		{"oversize", `{` + req + `"sev_snp": ` + snp("") + `, "nvidia_gpu": {"pad": "` + strings.Repeat("x", attestation.MaxPolicyBytes) + `"}}`, "", "more than 65536"},
		{"empty", ``, "", "unexpected end of input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := attestation.Parse([]byte(tt.doc))
			t.Log(err)
			var pe *attestation.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %+v, %v; want a *ParseError", p, err)
			}
			if !strings.HasPrefix(pe.Path, tt.wantPath) || (tt.wantPath == "" && pe.Path != "") || !strings.Contains(pe.Msg, tt.wantMsg) {
				t.Errorf("Parse error %q (path %q), want path %q and %q", err, pe.Path, tt.wantPath, tt.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "attestation: ") {
				t.Errorf("error %q does not start with \"attestation: \"", err)
			}
		})
	}
}

func TestBinding(t *testing.T) {
	key := []byte("host key")
	nonce := bytes.Repeat([]byte{7}, attestation.NonceSize)
	rd, err := attestation.ReportData(key, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha512.Sum512(append(append([]byte(nil), key...), nonce...)); rd != want {
		t.Errorf("ReportData = %x, want SHA-512(key ‖ nonce) %x", rd, want)
	}
	gn, err := attestation.GPUNonce(key, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(append(append([]byte("hearth.gpu-nonce.v1\x00"), key...), nonce...)); gn != want {
		t.Errorf("GPUNonce = %x, want %x", gn, want)
	}
	other, _ := attestation.ReportData(key, bytes.Repeat([]byte{8}, attestation.NonceSize))
	if other == rd {
		t.Error("another nonce gives the same REPORT_DATA")
	}
	for _, n := range [][]byte{nil, nonce[:31], append(nonce, 0)} {
		if _, err := attestation.ReportData(key, n); err == nil {
			t.Errorf("ReportData accepted a %d-byte nonce", len(n))
		}
		if _, err := attestation.GPUNonce(key, n); err == nil {
			t.Errorf("GPUNonce accepted a %d-byte nonce", len(n))
		}
	}
}
