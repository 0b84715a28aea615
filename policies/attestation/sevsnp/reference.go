package sevsnp

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-sev-guest/abi"
	"github.com/hearthfl/hearth/policies/attestation/internal/strictjson"
	"github.com/hearthfl/hearth/policies/attestation/tee"
)

// Bounds on a reference.
const (
	MaxMeasurements = 64 // measurements a site may accept
	MaxVMPL         = 3  // the least privileged VM permission level
)

// Measurement is a launch measurement (MEASUREMENT, SHA-384 of the
// guest's initial state).
type Measurement [abi.MeasurementSize]byte

// String is the measurement in lowercase hex, as a site writes it.
func (m Measurement) String() string { return hex.EncodeToString(m[:]) }

// TCB is the part of a trusted computing base version that a site bounds:
// the security patch levels of the AMD secure processor's bootloader, its
// TEE (OS), the SNP firmware and the CPU microcode.
type TCB struct {
	Bootloader uint8
	TEE        uint8
	SNP        uint8
	Microcode  uint8
}

// String reads "bootloader=3 tee=0 snp=8 microcode=115".
func (t TCB) String() string {
	return fmt.Sprintf("bootloader=%d tee=%d snp=%d microcode=%d", t.Bootloader, t.TEE, t.SNP, t.Microcode)
}

// below lists the components of t below min's, by their policy names.
func (t TCB) below(min TCB) []string {
	var low []string
	for _, c := range []struct {
		name     string
		got, min uint8
	}{
		{"bootloader", t.Bootloader, min.Bootloader},
		{"tee", t.TEE, min.TEE},
		{"snp", t.SNP, min.SNP},
		{"microcode", t.Microcode, min.Microcode},
	} {
		if c.got < c.min {
			low = append(low, fmt.Sprintf("%s %d < %d", c.name, c.got, c.min))
		}
	}
	return low
}

// Products a site may name in "product" (the product lines go-sev-guest
// embeds AMD's roots for).
var products = []string{"Milan", "Genoa", "Turin"}

// Reference is a site's reference values for SEV-SNP evidence, the
// sev_snp section of local/attestation.json. Debug is never allowed and
// has no field. A Reference is a value: Verify reads it and never keeps
// or changes it.
type Reference struct {
	// Measurements are the launch measurements the site accepts (at least
	// one, at most MaxMeasurements).
	Measurements []Measurement
	// MinimumTCB is the least REPORTED_TCB accepted, per component.
	MinimumTCB TCB
	// MinimumBuild is the least firmware build (CURRENT_BUILD) accepted.
	MinimumBuild uint8
	// AllowMigrationAgent accepts a guest policy allowing a migration
	// agent.
	AllowMigrationAgent bool
	// AllowSMT accepts simultaneous multithreading, allowed by the guest
	// policy or enabled on the platform.
	AllowSMT bool
	// MaxVMPL is the least privileged VMPL accepted (0, the default, is
	// the most privileged; at most MaxVMPL).
	MaxVMPL uint8
	// Product, when set, is the only product line accepted: "Milan",
	// "Genoa" or "Turin".
	Product string
}

// Validate refuses a Reference that cannot accept anything or names what
// does not exist: no measurement, too many, a VMPL above 3, an unknown
// product.
func (r *Reference) Validate() error {
	switch {
	case r == nil:
		return fmt.Errorf("no sev-snp reference values")
	case len(r.Measurements) == 0:
		return fmt.Errorf("no measurement is accepted")
	case len(r.Measurements) > MaxMeasurements:
		return fmt.Errorf("%d measurements, more than %d", len(r.Measurements), MaxMeasurements)
	case r.MaxVMPL > MaxVMPL:
		return fmt.Errorf("max_vmpl %d is above %d", r.MaxVMPL, MaxVMPL)
	case r.Product != "" && !contains(products, r.Product):
		return fmt.Errorf("unknown product %q (known: %s)", r.Product, strings.Join(products, ", "))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ParseReference parses the sev_snp section of a site's attestation
// policy (see package attestation for the format). Unknown keys, a
// missing measurements list or minimum_tcb, a measurement that is not 96
// hex digits (or repeats), and values out of range are refused with a
// *tee.ParseError naming the field from the section's root (package
// attestation puts it under "sev_snp").
func ParseReference(raw json.RawMessage) (*Reference, error) {
	if err := strictjson.Check(raw); err != nil {
		return nil, err
	}
	m, err := strictjson.Object(raw, "", "measurements", "minimum_tcb", "minimum_build",
		"allow_migration_agent", "allow_smt", "max_vmpl", "product")
	if err != nil {
		return nil, err
	}
	ref := &Reference{}
	mraw, ok := m["measurements"]
	if !ok {
		return nil, &tee.ParseError{Path: "measurements", Msg: "required: the launch measurements this site accepts (96 hex digits each)"}
	}
	list, err := strictjson.Array(mraw, "measurements")
	if err != nil {
		return nil, err
	}
	if len(list) == 0 || len(list) > MaxMeasurements {
		return nil, &tee.ParseError{Path: "measurements", Msg: fmt.Sprintf("%d measurements, want 1 to %d", len(list), MaxMeasurements)}
	}
	for i, el := range list {
		path := strictjson.Index("measurements", i)
		s, err := strictjson.String(el, path)
		if err != nil {
			return nil, err
		}
		meas, err := parseMeasurement(s)
		if err != nil {
			return nil, &tee.ParseError{Path: path, Msg: err.Error()}
		}
		for _, prev := range ref.Measurements {
			if prev == meas {
				return nil, &tee.ParseError{Path: path, Msg: "repeats an earlier measurement"}
			}
		}
		ref.Measurements = append(ref.Measurements, meas)
	}
	traw, ok := m["minimum_tcb"]
	if !ok {
		return nil, &tee.ParseError{Path: "minimum_tcb", Msg: `required: {"bootloader": n, "tee": n, "snp": n, "microcode": n}`}
	}
	if ref.MinimumTCB, err = parseTCB(traw, "minimum_tcb"); err != nil {
		return nil, err
	}
	if v, ok := m["minimum_build"]; ok {
		n, err := strictjson.Uint(v, "minimum_build", 0, 255)
		if err != nil {
			return nil, err
		}
		ref.MinimumBuild = uint8(n)
	}
	if v, ok := m["allow_migration_agent"]; ok {
		if ref.AllowMigrationAgent, err = strictjson.Bool(v, "allow_migration_agent"); err != nil {
			return nil, err
		}
	}
	if v, ok := m["allow_smt"]; ok {
		if ref.AllowSMT, err = strictjson.Bool(v, "allow_smt"); err != nil {
			return nil, err
		}
	}
	if v, ok := m["max_vmpl"]; ok {
		n, err := strictjson.Uint(v, "max_vmpl", 0, MaxVMPL)
		if err != nil {
			return nil, err
		}
		ref.MaxVMPL = uint8(n)
	}
	if v, ok := m["product"]; ok {
		s, err := strictjson.String(v, "product")
		if err != nil {
			return nil, err
		}
		if !contains(products, s) {
			return nil, &tee.ParseError{Path: "product", Msg: fmt.Sprintf("%q is not a product (known: %s)", clipText(s), strings.Join(products, ", "))}
		}
		ref.Product = s
	}
	return ref, ref.Validate()
}

func parseMeasurement(s string) (Measurement, error) {
	var m Measurement
	if len(s) != 2*len(m) {
		return m, fmt.Errorf("%d characters, want %d hex digits (a SHA-384 launch measurement)", len(s), 2*len(m))
	}
	if _, err := hex.Decode(m[:], []byte(s)); err != nil {
		return m, fmt.Errorf("not hex: %v", err)
	}
	return m, nil
}

func parseTCB(raw json.RawMessage, path string) (TCB, error) {
	parts := []string{"bootloader", "tee", "snp", "microcode"}
	m, err := strictjson.Object(raw, path, parts...)
	if err != nil {
		return TCB{}, err
	}
	var v [4]uint8
	for i, name := range parts {
		field, ok := m[name]
		if !ok {
			return TCB{}, &tee.ParseError{Path: strictjson.Join(path, name), Msg: "required: the least security patch level accepted (0 to 255)"}
		}
		n, err := strictjson.Uint(field, strictjson.Join(path, name), 0, 255)
		if err != nil {
			return TCB{}, err
		}
		v[i] = uint8(n)
	}
	return TCB{Bootloader: v[0], TEE: v[1], SNP: v[2], Microcode: v[3]}, nil
}

// clipText bounds a string a policy author wrote before it is quoted in a
// message.
func clipText(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
