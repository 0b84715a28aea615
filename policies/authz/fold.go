package authz

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// fold normalizes a name as FLARE does before it compares anything (role,
// right, org and user names, condition text): Python's
// " ".join(s.lower().split()), that is lower case, with runs of white space
// made one space and none at either end.
//
// Lower case is Python's str.lower, which is Unicode's simple lower-case
// mapping but for two letters: 'İ' (U+0130) becomes "i̇" (i and U+0307),
// and a capital sigma becomes 'ς' at the end of a word and 'σ' elsewhere.
// White space is Python's str.isspace, which is unicode.IsSpace and the
// four separators U+001C to U+001F. Both sides of every comparison are
// folded, so "Hospital A" and "hospital  a" are the same org.
func fold(s string) string {
	if isFolded(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	pending := false // a space is owed before the next character
	for i, r := range s {
		if pySpace(r) {
			pending = b.Len() > 0
			continue
		}
		if pending {
			b.WriteByte(' ')
			pending = false
		}
		switch r {
		case 'İ':
			b.WriteString("i\u0307")
		case 'Σ':
			if finalSigma(s, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// isFolded reports whether fold(s) is s, for the common case of a name in
// lower-case ASCII with single spaces, so that fold needs no copy.
func isFolded(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf, 'A' <= c && c <= 'Z':
			return false
		case c == ' ':
			if i == 0 || i == len(s)-1 || s[i+1] == ' ' {
				return false
			}
		case c < ' ' || c == 0x7f:
			return false // \t, \n and the other ASCII spaces among them
		}
	}
	return true
}

// pySpace is Python's str.isspace for one character.
func pySpace(r rune) bool {
	return unicode.IsSpace(r) || 0x1c <= r && r <= 0x1f
}

// finalSigma reports whether the capital sigma at byte i of s is at the
// end of a word, by Unicode's Final_Sigma condition as Python applies it:
// a cased letter before it and none after it, skipping case-ignorable
// characters both ways.
func finalSigma(s string, i int) bool {
	before := false
	for j := i; j > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:j])
		j -= size
		if !caseIgnorable(r) {
			before = cased(r)
			break
		}
	}
	if !before {
		return false
	}
	for _, r := range s[i+len("Σ"):] {
		if !caseIgnorable(r) {
			return !cased(r)
		}
	}
	return true
}

// cased is Unicode's Cased property.
func cased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// caseIgnorable is Unicode's Case_Ignorable property: marks, format
// characters, modifier letters and symbols, and the apostrophes and
// in-word punctuation of Word_Break MidLetter, MidNumLet and Single_Quote.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0x00b7, 0x0387, 0x055f, 0x05f4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
