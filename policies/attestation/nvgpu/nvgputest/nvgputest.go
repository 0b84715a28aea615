// Package nvgputest is a SIMULATED NVIDIA GPU for Hearth (no NVIDIA GPU,
// no NVIDIA keys): it makes confidential-computing evidence in the real
// formats (an SPDM 1.1 GET_MEASUREMENTS request ‖ MEASUREMENTS response
// signed with ECDSA P-384, and a PEM certificate chain leaf first, root
// last) under a test root that Hearth's verifier trusts only in simulated
// mode (nvgpu.Verify with simulated=true). Tests use it, and so does the
// POC's simulated aggregation host, so it does not import testing.
//
// The test root's key is in this package, in the open: nothing signed by
// it proves anything about hardware.
package nvgputest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/hearthfl/hearth/policies/attestation/nvgpu"
)

//go:embed test_root.pem
var rootPEM []byte

//go:embed test_root.key
var rootKeyPEM []byte

// TestRoot returns the test root certificate (the same as
// nvgpu.SimulatedRoot): the root of every simulated device's chain.
func TestRoot() *x509.Certificate {
	c, _ := parseRoot()
	return c
}

// TestRootPEM returns the test root certificate in PEM.
func TestRootPEM() []byte { return append([]byte(nil), rootPEM...) }

func parseRoot() (*x509.Certificate, *ecdsa.PrivateKey) {
	b, _ := pem.Decode(rootPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		panic("nvgputest: embedded test root: " + err.Error())
	}
	kb, _ := pem.Decode(rootKeyPEM)
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		panic("nvgputest: embedded test root key: " + err.Error())
	}
	return c, k.(*ecdsa.PrivateKey)
}

// The simulated device's defaults.
const (
	DefaultName          = "NVIDIA H100 80GB HBM3 (simulated)"
	DefaultDriverVersion = "550.54.15"
	// DefaultBlocks is the number of measurement blocks (Hopper has 64).
	DefaultBlocks = 8
)

// DefaultVBIOS is the opaque data's VBIOS field (96.00.9f.00.01).
var DefaultVBIOS = []byte{0x00, 0x9f, 0x00, 0x96, 0x01, 0x00, 0x00, 0x00}

// Measurement is one measurement block's value at an SPDM index (1-based).
type Measurement struct {
	Index int
	Value []byte
}

// DefaultMeasurement is the simulator's value at SPDM index i: SHA-384
// of a label and i, so that they differ from each other and from any
// real GPU's.
func DefaultMeasurement(i int) []byte {
	h := sha512.Sum384([]byte(fmt.Sprintf("hearth simulated gpu measurement %d", i)))
	return h[:]
}

// Device is a simulated GPU: an attestation key, its leaf certificate and
// an intermediate under the test root (or under another CA, with
// WithUntrustedRoot).
type Device struct {
	UUID, Name    string
	DriverVersion string
	key           *ecdsa.PrivateKey // signs reports
	chain         []byte
	blocks        int
}

// Option changes a new Device.
type Option func(*options)

type options struct {
	name, uuid, driver string
	blocks             int
	wrongKey           bool
	untrusted          bool
	notBefore, expiry  time.Time
}

// WithName sets the device's NVML name.
func WithName(n string) Option { return func(o *options) { o.name = n } }

// WithUUID sets the device's NVML UUID.
func WithUUID(u string) Option { return func(o *options) { o.uuid = u } }

// WithDriverVersion sets the driver version in the device's reports.
func WithDriverVersion(v string) Option { return func(o *options) { o.driver = v } }

// WithBlocks sets the number of measurement blocks (1 to 254).
func WithBlocks(n int) Option { return func(o *options) { o.blocks = n } }

// WithWrongKey makes the device sign its reports with a key other than
// its certificate's (reports then fail the signature check).
func WithWrongKey() Option { return func(o *options) { o.wrongKey = true } }

// WithUntrustedRoot puts the device's chain under a fresh CA that no
// verifier trusts (it fails the chain check).
func WithUntrustedRoot() Option { return func(o *options) { o.untrusted = true } }

// WithValidity sets the leaf certificate's validity period.
func WithValidity(notBefore, notAfter time.Time) Option {
	return func(o *options) { o.notBefore, o.expiry = notBefore, notAfter }
}

// NewDevice makes a simulated GPU with a fresh P-384 attestation key.
func NewDevice(opts ...Option) (*Device, error) {
	o := options{name: DefaultName, driver: DefaultDriverVersion, blocks: DefaultBlocks,
		notBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), expiry: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, f := range opts {
		f(&o)
	}
	if o.blocks < 1 || o.blocks > 254 {
		return nil, fmt.Errorf("nvgputest: %d blocks, want 1 to 254", o.blocks)
	}
	if o.uuid == "" {
		var u [16]byte
		rand.Read(u[:])
		o.uuid = fmt.Sprintf("GPU-%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	}
	root, rootKey := parseRoot()
	if o.untrusted {
		var err error
		if root, rootKey, err = newCA("Untrusted CA (simulated)", nil, nil); err != nil {
			return nil, err
		}
	}
	inter, interKey, err := newCA("SIMULATED GH100 Provisioner ICA (test only)", root, rootKey)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "SIMULATED GH100 A01 GSP FMC LF (test only)", SerialNumber: o.uuid},
		NotBefore:    o.notBefore, NotAfter: o.expiry,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, tmpl, inter, &leafKey.PublicKey, interKey)
	if err != nil {
		return nil, err
	}
	var chain []byte
	for _, der := range [][]byte{leafDER, inter.Raw, root.Raw} {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	d := &Device{UUID: o.uuid, Name: o.name, DriverVersion: o.driver, key: leafKey, chain: chain, blocks: o.blocks}
	if o.wrongKey {
		if d.key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// newCA makes a CA certificate signed by parent (self-signed when nil).
func newCA(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn, Organization: []string{"Hearth simulator"}},
		NotBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, k, err
}

// CertChain returns the device's attestation chain as NVML returns it:
// PEM, leaf first, the root last.
func (d *Device) CertChain() []byte { return append([]byte(nil), d.chain...) }

// Measurements returns the device's measurement values by SPDM index.
func (d *Device) Measurements() map[int][]byte {
	m := make(map[int][]byte, d.blocks)
	for i := 1; i <= d.blocks; i++ {
		m[i] = DefaultMeasurement(i)
	}
	return m
}

// Report returns a signed attestation report for nonce as NVML returns
// it: the GET_MEASUREMENTS request (SPDM 1.1, signature requested, all
// blocks) ‖ the MEASUREMENTS response (the device's blocks, each given
// measurement replacing or adding the block at its index, a responder
// nonce, opaque data with the driver and VBIOS versions, the signature).
func (d *Device) Report(nonce [32]byte, measurements ...Measurement) []byte {
	m := d.Measurements()
	for _, x := range measurements {
		m[x.Index] = x.Value
	}
	idx := make([]int, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	sort.Ints(idx)

	b := []byte{0x11, 0xE0, 0x01, 0xFF}
	b = append(b, nonce[:]...)
	b = append(b, 0x00) // slot 0

	var rec []byte
	for _, i := range idx {
		v := m[i]
		rec = append(rec, byte(i), 0x01)
		rec = binary.LittleEndian.AppendUint16(rec, uint16(3+len(v)))
		rec = append(rec, 0x01) // DMTF value type: immutable ROM / hash
		rec = binary.LittleEndian.AppendUint16(rec, uint16(len(v)))
		rec = append(rec, v...)
	}
	b = append(b, 0x11, 0x60, 0x00, 0x00, byte(len(idx)))
	b = append(b, byte(len(rec)), byte(len(rec)>>8), byte(len(rec)>>16))
	b = append(b, rec...)
	var rn [32]byte
	rand.Read(rn[:])
	b = append(b, rn[:]...)
	op := opaque(nvgpu.OpaqueVBIOSVersion, DefaultVBIOS)
	if d.DriverVersion != "" {
		op = append(op, opaque(nvgpu.OpaqueDriverVersion, append([]byte(d.DriverVersion), 0))...)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(op)))
	b = append(b, op...)

	h := sha512.Sum384(b)
	r, s, err := ecdsa.Sign(rand.Reader, d.key, h[:])
	if err != nil {
		panic("nvgputest: sign: " + err.Error())
	}
	var sig [96]byte
	r.FillBytes(sig[:48])
	s.FillBytes(sig[48:])
	return append(b, sig[:]...)
}

func opaque(t uint16, v []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, t)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// System is a simulated host's GPUs and its CC state as NVML would report
// it; the zero flags are a good host (CC on, ready, devtools off).
type System struct {
	Devices []*Device
	// CCOff, NotReady and DevToolsOn make bad state.
	CCOff, NotReady, DevToolsOn bool
}

// NewSystem makes a system of n simulated devices made with opts.
func NewSystem(n int, opts ...Option) (*System, error) {
	s := &System{}
	for range n {
		d, err := NewDevice(opts...)
		if err != nil {
			return nil, err
		}
		s.Devices = append(s.Devices, d)
	}
	return s, nil
}

// Evidence returns the system's evidence for nonce.
func (s *System) Evidence(nonce [32]byte) *nvgpu.Evidence {
	ev := &nvgpu.Evidence{
		CCFeatureOn: !s.CCOff, Ready: !s.NotReady, DevToolsOn: s.DevToolsOn,
		Environment: nvgpu.EnvironmentSimulated, DriverVersion: DefaultDriverVersion,
	}
	if len(s.Devices) > 0 {
		ev.DriverVersion = s.Devices[0].DriverVersion
	}
	for _, d := range s.Devices {
		ev.Devices = append(ev.Devices, nvgpu.Device{UUID: d.UUID, Name: d.Name, Report: d.Report(nonce), CertChain: d.CertChain()})
	}
	return ev
}

// ReferenceJSON returns a reference (nvgpu.ParseReference's format) that
// accepts the default measurements of a device with blocks blocks.
func ReferenceJSON(blocks int) json.RawMessage {
	m := make(map[string][]string, blocks)
	for i := 1; i <= blocks; i++ {
		m[fmt.Sprint(i-1)] = []string{hex.EncodeToString(DefaultMeasurement(i))}
	}
	b, _ := json.Marshal(map[string]any{"measurements": m, "minimum_driver": "550.54"})
	return b
}
