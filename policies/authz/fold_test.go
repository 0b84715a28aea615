package authz

import "testing"

// TestFold pins fold to Python's " ".join(s.lower().split()), which FLARE
// applies to every name it compares; each want is what Python 3.11 gives.
func TestFold(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"lower-case ASCII unchanged", "lead", "lead"},
		{"upper case", "Project_Admin", "project_admin"},
		{"white space runs and ends", "  Hospital \t A  ", "hospital a"},
		{"Python's extra separators U+001C to U+001F", "a\x1cb\x1fc", "a b c"},
		{"non-ASCII spaces", "a\u00a0\u3000b", "a b"},
		{"only white space", " \t\n ", ""},
		{"dotted capital I becomes i and a combining dot", "\u0130stanbul", "i\u0307stanbul"},
		{"final sigma", "ΟΔΟΣ", "οδος"},
		{"final sigma before a space", "ΟΔΟΣ Α", "οδος α"},
		{"sigma alone", "Σ", "σ"},
		{"sigma first", "ΣΑ", "σα"},
		{"sigma before an ignorable full stop at the end", "AΣ.", "aς."},
		{"sigma after an ignorable full stop", "A.Σ", "a.ς"},
		{"sigma inside a word past a full stop", "AΣ.b", "aσ.b"},
		{"sigma after a combining accent", "\u0391\u0301Σ", "\u03b1\u0301ς"},
		{"Kelvin sign", "KELVIN \u212a", "kelvin k"},
		{"capital sharp s", "\u1e9e", "\u00df"},
		{"control characters other than spaces stay", "a\x01b", "a\x01b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fold(tt.in); got != tt.want {
				t.Errorf("fold(%+q) = %+q, want %+q", tt.in, got, tt.want)
			}
		})
	}
}
