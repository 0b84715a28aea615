package nvgpu

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// SPDM constants of the GPU attestation report (DMTF DSP0274 1.1; see the
// package doc for the nvtrust files that confirm each).
const (
	// RequestLen is the GET_MEASUREMENTS request's length: version, code,
	// param1, param2, 32-byte nonce, slot id.
	RequestLen = 37
	// NonceLen is the length of the requester's and the responder's nonce.
	NonceLen = 32
	// SignatureLen is the length of the report's signature: ECDSA P-384,
	// r and s as 48-byte big-endian integers.
	SignatureLen = 96

	codeGetMeasurements = 0xE0 // request code GET_MEASUREMENTS
	codeMeasurements    = 0x60 // response code MEASUREMENTS
	paramSignature      = 0x01 // request param1 bit 0: signature requested
	specDMTF            = 0x01 // MeasurementSpecification bit 0: DMTF

	responseFixedLen = 8 // version, code, param1, param2, blocks, 3-byte length
)

// Opaque data field types the verifier reads (nvtrust's
// OpaqueData.OPAQUE_DATA_TYPES; the others are kept as they come).
const (
	OpaqueDriverVersion uint16 = 3
	OpaqueVBIOSVersion  uint16 = 6
)

// Report is a parsed GPU attestation report: the SPDM GET_MEASUREMENTS
// request that NVML sent the GPU and the GPU's signed MEASUREMENTS
// response. Its byte slices alias the input.
type Report struct {
	// Version is the SPDM version byte (0x11 for SPDM 1.1), the same in
	// request and response.
	Version byte
	// RequestParam1 and RequestParam2 are the request's parameters: bit 0
	// of param1 asks for a signature (always set here); param2 0xFF asks
	// for all measurement blocks.
	RequestParam1, RequestParam2 byte
	// Nonce is the requester's nonce: the verifier's, which binds the
	// report to its request.
	Nonce [NonceLen]byte
	// SlotID is the request's certificate slot.
	SlotID byte
	// Blocks are the measurement blocks in report order, indices unique.
	Blocks []Block
	// ResponderNonce is the GPU's own nonce.
	ResponderNonce [NonceLen]byte
	// Opaque are the opaque data's TLV fields in report order.
	Opaque []OpaqueField
	// Signature is the raw ECDSA P-384 signature (r ‖ s).
	Signature []byte
	// Signed is what the signature covers: request ‖ response without
	// the signature.
	Signed []byte
}

// Block is one SPDM measurement block in DMTF format.
type Block struct {
	// Index is the SPDM measurement index (1-based); NVIDIA's RIM files
	// number the same measurement Index-1.
	Index int
	// ValueType is the DMTFSpecMeasurementValueType.
	ValueType byte
	// Value is the measurement (48 bytes, SHA-384, on Hopper).
	Value []byte
}

// OpaqueField is one field of the response's opaque data.
type OpaqueField struct {
	Type  uint16
	Value []byte
}

// Field returns the value of the first opaque field of type t.
func (r *Report) Field(t uint16) ([]byte, bool) {
	for _, f := range r.Opaque {
		if f.Type == t {
			return f.Value, true
		}
	}
	return nil, false
}

// Measurement returns the value of the block with SPDM index i.
func (r *Report) Measurement(i int) ([]byte, bool) {
	for _, b := range r.Blocks {
		if b.Index == i {
			return b.Value, true
		}
	}
	return nil, false
}

// DriverVersion is the opaque data's driver version ("550.54.15"), a
// NUL-terminated string; "" when the field is absent.
func (r *Report) DriverVersion() string {
	v, ok := r.Field(OpaqueDriverVersion)
	if !ok {
		return ""
	}
	if i := strings.IndexByte(string(v), 0); i >= 0 {
		v = v[:i]
	}
	return string(v)
}

// VBIOSVersion is the opaque data's VBIOS version in NVIDIA's dotted form
// ("96.00.5e.00.01"), formatted as nvtrust's utils.format_vbios_version
// does; "" when the field is absent.
func (r *Report) VBIOSVersion() string {
	v, ok := r.Field(OpaqueVBIOSVersion)
	if !ok || len(v) == 0 {
		return ""
	}
	n := len(v)
	if n%2 != 0 || n < 2 {
		return hex.EncodeToString(v)
	}
	rev := make([]byte, n)
	for i := range v {
		rev[n-1-i] = v[i]
	}
	parts := append(append([]byte{}, rev[n/2:]...), rev[n/2-1])
	s := make([]string, len(parts))
	for i, b := range parts {
		s[i] = hex.EncodeToString([]byte{b})
	}
	return strings.Join(s, ".")
}

// errShort is the parser's one cause for a report that ends early.
var errShort = errors.New("report ends early")

// reader walks a byte slice; every read checks the bound first.
type reader struct {
	b   []byte
	off int
}

func (r *reader) take(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, fmt.Errorf("%w: %d bytes wanted at offset %d of %d", errShort, n, r.off, len(r.b))
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s, nil
}

func (r *reader) u8() (byte, error) {
	b, err := r.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (r *reader) u16() (int, error) {
	b, err := r.take(2)
	if err != nil {
		return 0, err
	}
	return int(binary.LittleEndian.Uint16(b)), nil
}

func (r *reader) u24() (int, error) {
	b, err := r.take(3)
	if err != nil {
		return 0, err
	}
	return int(b[0]) | int(b[1])<<8 | int(b[2])<<16, nil
}

// ParseReport parses an attestation report as NVML returns it (request ‖
// response, attestationReportSize bytes) strictly: every length must fit,
// the measurement record and the opaque data must be consumed exactly, the
// signature must end the report. It never panics; callers bound the size.
func ParseReport(b []byte) (*Report, error) {
	if len(b) < RequestLen+responseFixedLen+NonceLen+2+SignatureLen {
		return nil, fmt.Errorf("%w: %d bytes", errShort, len(b))
	}
	rep := &Report{}
	req := &reader{b: b[:RequestLen]}
	rep.Version, _ = req.u8()
	code, _ := req.u8()
	rep.RequestParam1, _ = req.u8()
	rep.RequestParam2, _ = req.u8()
	n, _ := req.take(NonceLen)
	copy(rep.Nonce[:], n)
	rep.SlotID, _ = req.u8()
	if rep.Version != 0x11 && rep.Version != 0x12 {
		return nil, fmt.Errorf("request: SPDM version %#02x, want 0x11 or 0x12", rep.Version)
	}
	if code != codeGetMeasurements {
		return nil, fmt.Errorf("request: code %#02x, want GET_MEASUREMENTS (0xe0)", code)
	}
	if rep.RequestParam1&paramSignature == 0 {
		return nil, fmt.Errorf("request: no signature requested (param1 %#02x)", rep.RequestParam1)
	}

	body := b[RequestLen:]
	if len(body) < SignatureLen {
		return nil, errShort
	}
	r := &reader{b: body[:len(body)-SignatureLen]}
	version, _ := r.u8()
	code, _ = r.u8()
	if _, err := r.take(2); err != nil { // param1, param2
		return nil, err
	}
	count, err := r.u8()
	if err != nil {
		return nil, err
	}
	recLen, err := r.u24()
	if err != nil {
		return nil, err
	}
	if version != rep.Version {
		return nil, fmt.Errorf("response: SPDM version %#02x, request's %#02x", version, rep.Version)
	}
	if code != codeMeasurements {
		return nil, fmt.Errorf("response: code %#02x, want MEASUREMENTS (0x60)", code)
	}
	if count == 0 {
		return nil, errors.New("response: no measurement blocks")
	}
	rec, err := r.take(recLen)
	if err != nil {
		return nil, fmt.Errorf("measurement record: %w", err)
	}
	if rep.Blocks, err = parseRecord(rec, int(count)); err != nil {
		return nil, fmt.Errorf("measurement record: %w", err)
	}
	rn, err := r.take(NonceLen)
	if err != nil {
		return nil, fmt.Errorf("responder nonce: %w", err)
	}
	copy(rep.ResponderNonce[:], rn)
	opLen, err := r.u16()
	if err != nil {
		return nil, fmt.Errorf("opaque length: %w", err)
	}
	op, err := r.take(opLen)
	if err != nil {
		return nil, fmt.Errorf("opaque data: %w", err)
	}
	if rep.Opaque, err = parseOpaque(op); err != nil {
		return nil, fmt.Errorf("opaque data: %w", err)
	}
	if r.off != len(r.b) {
		return nil, fmt.Errorf("%d bytes between the opaque data and the signature", len(r.b)-r.off)
	}
	rep.Signature = body[len(body)-SignatureLen:]
	rep.Signed = b[:len(b)-SignatureLen]
	return rep, nil
}

// parseRecord parses count measurement blocks that fill rec exactly.
func parseRecord(rec []byte, count int) ([]Block, error) {
	r := &reader{b: rec}
	blocks := make([]Block, 0, count)
	seen := make(map[int]bool, count)
	for i := 0; i < count; i++ {
		idx, err := r.u8()
		if err != nil {
			return nil, err
		}
		spec, err := r.u8()
		if err != nil {
			return nil, err
		}
		size, err := r.u16()
		if err != nil {
			return nil, err
		}
		m, err := r.take(size)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", idx, err)
		}
		if spec != specDMTF {
			return nil, fmt.Errorf("block %d: measurement specification %#02x, want DMTF (0x01)", idx, spec)
		}
		if idx == 0 || seen[int(idx)] {
			return nil, fmt.Errorf("block index %d zero or repeated", idx)
		}
		seen[int(idx)] = true
		mr := &reader{b: m}
		vt, err := mr.u8()
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", idx, err)
		}
		vs, err := mr.u16()
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", idx, err)
		}
		v, err := mr.take(vs)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", idx, err)
		}
		if mr.off != len(m) {
			return nil, fmt.Errorf("block %d: measurement size %d, DMTF value fills %d", idx, size, mr.off)
		}
		blocks = append(blocks, Block{Index: int(idx), ValueType: vt, Value: v})
	}
	if r.off != len(rec) {
		return nil, fmt.Errorf("record length %d, %d blocks fill %d", len(rec), count, r.off)
	}
	return blocks, nil
}

// parseOpaque parses the opaque data's [type u16][size u16][value] fields.
func parseOpaque(op []byte) ([]OpaqueField, error) {
	r := &reader{b: op}
	var fields []OpaqueField
	for r.off < len(op) {
		t, err := r.u16()
		if err != nil {
			return nil, err
		}
		n, err := r.u16()
		if err != nil {
			return nil, err
		}
		v, err := r.take(n)
		if err != nil {
			return nil, fmt.Errorf("field %d: %w", t, err)
		}
		fields = append(fields, OpaqueField{Type: uint16(t), Value: v})
	}
	return fields, nil
}
