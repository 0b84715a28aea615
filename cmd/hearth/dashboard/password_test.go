package dashboard

import (
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	h, err := hashPassword("correct horse battery", testHash)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q does not carry its parameters", h)
	}
	h2, _ := hashPassword("correct horse battery", testHash)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"correct horse battery": true, "correct horse batterY": false, "": false} {
		if ok, err := checkPassword(pw, h); err != nil || ok != want {
			t.Errorf("checkPassword(%q) = %t, %v; want %t", pw, ok, err, want)
		}
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=1,t=0,p=1$c2FsdA$aGFzaA"} {
		if _, err := checkPassword("x", bad); err == nil {
			t.Errorf("checkPassword accepted hash %q", bad)
		}
	}
	if err := checkNewPassword("short", "short"); err == nil {
		t.Error("a 5-character password was accepted")
	}
	if err := checkNewPassword("long enough password", "long enough passwort"); err == nil {
		t.Error("differing confirmation accepted")
	}
}

// BenchmarkPasswordHash is one sign-in's password check under the default
// parameters (64 MiB, 2 passes, 2 lanes).
func BenchmarkPasswordHash(b *testing.B) {
	h, err := hashPassword("a password for the benchmark", DefaultHashParams)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _ := checkPassword("a password for the benchmark", h); !ok {
			b.Fatal("no match")
		}
	}
}
