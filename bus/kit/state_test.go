package kit_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/pki"
)

func loadKit(t *testing.T, dir string) *kit.Kit {
	t.Helper()
	k, err := kit.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// swapRoot replaces the kit in dir by one made for the same participant by
// another root, which re-signs its manifest, keeping the kit's state/: what
// someone who can write the kit folder can do. It returns the new root.
func swapRoot(t *testing.T, dir string, cfg kit.Config) *pki.CA {
	t.Helper()
	rogue := newCA(t)
	forged := writeKit(t, rogue, cfg)
	if err := os.Rename(filepath.Join(dir, kit.StateDirName), filepath.Join(forged, kit.StateDirName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(forged, dir); err != nil {
		t.Fatal(err)
	}
	return rogue
}

func TestFingerprintText(t *testing.T) {
	ca := newCA(t)
	f := kit.FingerprintOf(ca.Cert)
	if s := f.String(); !strings.HasPrefix(s, "sha256:") || len(s) != len("sha256:")+64 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want sha256: and 64 lowercase hex digits", s)
	}
	if pki.Fingerprint(ca.Cert) != [32]byte(f) {
		t.Fatal("FingerprintOf differs from pki.Fingerprint")
	}
	hexText := strings.TrimPrefix(f.String(), "sha256:")
	var colons []string
	for i := 0; i < len(hexText); i += 2 {
		colons = append(colons, strings.ToUpper(hexText[i:i+2]))
	}
	for _, tt := range []struct{ name, in string }{
		{"as printed", f.String()},
		{"without prefix", hexText},
		{"openssl style", strings.Join(colons, ":")},
		{"surrounding space", "  " + f.String() + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kit.ParseFingerprint(tt.in)
			if err != nil || got != f {
				t.Fatalf("ParseFingerprint(%q) = %v, %v; want %v", tt.in, got, err, f)
			}
		})
	}
	for _, tt := range []struct{ name, in string }{
		{"empty", ""},
		{"short", f.String()[:40]},
		{"long", f.String() + "00"},
		{"all zeros", "sha256:" + strings.Repeat("0", 64)},
		{"not hex", "sha256:" + strings.Repeat("zz", 32)},
		{"other algorithm", "sha1:" + hexText},
	} {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			if _, err := kit.ParseFingerprint(tt.in); err == nil {
				t.Fatalf("ParseFingerprint(%q) accepted", tt.in)
			}
		})
	}
}

func TestPinRootRecordsAtFirstStart(t *testing.T) {
	ca := newCA(t)
	dir := writeKit(t, ca, siteConfig("site-1"))
	k := loadKit(t, dir)
	recorded, err := k.PinRoot(kit.Fingerprint{})
	if err != nil || !recorded {
		t.Fatalf("first PinRoot = %v, %v; want recorded", recorded, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, kit.StateDirName, kit.RootPinFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(data)); got != kit.FingerprintOf(ca.Cert).String() {
		t.Fatalf("recorded %q, want %s", got, kit.FingerprintOf(ca.Cert))
	}
	if recorded, err := loadKit(t, dir).PinRoot(kit.Fingerprint{}); err != nil || recorded {
		t.Fatalf("second PinRoot = %v, %v; want accepted, not recorded again", recorded, err)
	}
	if _, err := loadKit(t, dir).PinRoot(kit.FingerprintOf(ca.Cert)); err != nil {
		t.Fatalf("PinRoot(matching fingerprint): %v", err)
	}
}

func TestPinRootMatchingFlagStartsAndRecords(t *testing.T) {
	ca := newCA(t)
	dir := writeKit(t, ca, serverConfig())
	recorded, err := loadKit(t, dir).PinRoot(kit.FingerprintOf(ca.Cert))
	if err != nil || !recorded {
		t.Fatalf("PinRoot(matching) = %v, %v; want accepted and recorded", recorded, err)
	}
}

func TestPinRootRefusesSwappedRoot(t *testing.T) {
	tests := []struct {
		name       string
		firstStart bool // the kit was started (its root recorded) before the swap
		// flag is the fingerprint the operator gives after the swap.
		flag    func(original, rogue *pki.CA) kit.Fingerprint
		mention string // the other fingerprint's source in the error
	}{
		{"recorded pin", true, func(_, _ *pki.CA) kit.Fingerprint { return kit.Fingerprint{} }, "recorded in state/root-fingerprint"},
		{"flag, never started", false, func(o, _ *pki.CA) kit.Fingerprint { return kit.FingerprintOf(o.Cert) }, "expected root is"},
		{"flag and recorded pin", true, func(o, _ *pki.CA) kit.Fingerprint { return kit.FingerprintOf(o.Cert) }, "expected root is"},
		{"flag matching the rogue root, recorded pin", true, func(_, r *pki.CA) kit.Fingerprint { return kit.FingerprintOf(r.Cert) }, "recorded in state/root-fingerprint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newCA(t)
			cfg := siteConfig("site-1")
			dir := writeKit(t, ca, cfg)
			if tt.firstStart {
				if _, err := loadKit(t, dir).PinRoot(kit.Fingerprint{}); err != nil {
					t.Fatal(err)
				}
			}
			rogue := swapRoot(t, dir, cfg)
			k := loadKit(t, dir) // the forged kit verifies against its own root
			if !k.Root.Equal(rogue.Cert) {
				t.Fatal("the swap did not take")
			}
			_, err := k.PinRoot(tt.flag(ca, rogue))
			if !errors.Is(err, kit.ErrRootChanged) {
				t.Fatalf("PinRoot = %v, want ErrRootChanged", err)
			}
			for _, want := range []string{kit.FingerprintOf(ca.Cert).String(), kit.FingerprintOf(rogue.Cert).String(), tt.mention} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestPinRootRefusesCorruptPin(t *testing.T) {
	dir := writeKit(t, newCA(t), siteConfig("site-1"))
	k := loadKit(t, dir)
	state, err := k.StateDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, kit.RootPinFile), []byte("sha256:nothex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.PinRoot(kit.Fingerprint{}); err == nil || !strings.Contains(err.Error(), kit.RootPinFile) {
		t.Fatalf("PinRoot with a corrupt pin file = %v, want a refusal naming %s", err, kit.RootPinFile)
	}
}

// installCRL installs a revocation list numbered n, revoking nobody, in
// the kit in dir.
func installCRL(t *testing.T, ca *pki.CA, dir string, n int64) {
	t.Helper()
	der, err := ca.RevocationList(nil, n, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := kit.InstallCRL(dir, pki.EncodeCRL(der)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckCRLNumber(t *testing.T) {
	tests := []struct {
		name string
		// seen is the CRL installed at the earlier start (0: none), now the
		// one at this start (0: crl.pem removed).
		seen, now int64
		refused   bool
	}{
		{"no list ever", 0, 0, false},
		{"first list", 0, 3, false},
		{"same list", 3, 3, false},
		{"newer list", 3, 5, false},
		{"older list", 5, 3, true},
		{"list removed", 5, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newCA(t)
			dir := writeKit(t, ca, serverConfig())
			if tt.seen > 0 {
				installCRL(t, ca, dir, tt.seen)
			}
			if err := loadKit(t, dir).CheckCRLNumber(); err != nil {
				t.Fatalf("first start: %v", err)
			}
			if tt.now > 0 {
				installCRL(t, ca, dir, tt.now)
			} else if err := os.Remove(filepath.Join(dir, kit.CRLFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			k := loadKit(t, dir)
			err := k.CheckCRLNumber()
			if !tt.refused {
				if err != nil {
					t.Fatalf("CheckCRLNumber: %v", err)
				}
				if seen, err := k.SeenCRLNumber(); err != nil || seen != max(tt.seen, tt.now) {
					t.Fatalf("remembered %d, %v; want %d", seen, err, max(tt.seen, tt.now))
				}
				return
			}
			if !errors.Is(err, kit.ErrCRLRollback) {
				t.Fatalf("CheckCRLNumber = %v, want ErrCRLRollback", err)
			}
			for _, want := range []string{"number 5", kit.CRLNumberFile} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if seen, _ := k.SeenCRLNumber(); seen != tt.seen {
				t.Errorf("a refused start changed the remembered number to %d", seen)
			}
		})
	}
}

func TestRememberCRLNumberNeverLowers(t *testing.T) {
	k := loadKit(t, writeKit(t, newCA(t), siteConfig("site-1")))
	for _, n := range []int64{4, 2, 0} {
		if err := k.RememberCRLNumber(n); err != nil {
			t.Fatal(err)
		}
	}
	if seen, err := k.SeenCRLNumber(); err != nil || seen != 4 {
		t.Fatalf("SeenCRLNumber = %d, %v; want 4", seen, err)
	}
	if err := os.WriteFile(filepath.Join(k.Dir, kit.StateDirName, kit.CRLNumberFile), []byte("-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.SeenCRLNumber(); err == nil {
		t.Fatal("a negative remembered number was accepted")
	}
}
