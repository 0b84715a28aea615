package kit_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hearthfl/hearth/bus/kit"
)

func TestWriteDefaultPolicies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kit", "local")
	if err := kit.WriteDefaultPolicies(dir, defaultPolicies); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("local/ = %v, %v; want a folder with mode 0755", fi, err)
	}
	for name, f := range defaultPolicies {
		dst := filepath.Join(dir, name+kit.DefaultSuffix)
		fi, err := os.Stat(dst)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode = %#o, want 0644", name, fi.Mode().Perm())
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, f.Data) {
			t.Errorf("%s = %q, want %q", dst, got, f.Data)
		}
	}
	// Writing again replaces the files.
	stale := filepath.Join(dir, "privacy.json"+kit.DefaultSuffix)
	if err := os.WriteFile(stale, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := kit.WriteDefaultPolicies(dir, defaultPolicies); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(stale); !bytes.Equal(got, defaultPolicies["privacy.json"].Data) {
		t.Errorf("privacy.json not restored: %q", got)
	}
}

func TestWriteDefaultPoliciesRefuses(t *testing.T) {
	tests := []struct {
		name     string
		defaults fstest.MapFS
		says     string
	}{
		{"no defaults", nil, "no default policy files"},
		{"a folder", fstest.MapFS{"authz/authorization.json": {Data: []byte("{}")}}, "authz is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "local")
			var err error
			if tt.defaults == nil {
				err = kit.WriteDefaultPolicies(dir, nil)
			} else {
				err = kit.WriteDefaultPolicies(dir, tt.defaults)
			}
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("WriteDefaultPolicies = %v, want an error saying %q", err, tt.says)
			}
		})
	}
}
