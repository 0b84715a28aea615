package imports

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// kind is a token's kind. The tokenizer keeps what the import scan needs:
// names, operators, the ends of logical lines; strings and numbers are
// kept only as markers, their contents dropped (except the code in an
// f-string's replacement fields, which is tokenized as code).
type kind uint8

const (
	tName    kind = iota + 1 // an identifier or keyword, NFKC-normalized as Python does
	tOp                      // an operator or delimiter
	tNumber                  // a numeric literal
	tString                  // a string or bytes literal (an f-string's literal parts)
	tNewline                 // the end of a logical line
)

// token is one token of a Python source.
type token struct {
	kind kind
	text string // the name or operator; "" for numbers and strings
	line int    // the line it starts on, from 1
	// depth is the bracket depth the token stands at (an opening bracket
	// stands at the depth outside it).
	depth int
	// inField: the token is code in an f-string's replacement field, an
	// expression where no statement starts.
	inField bool
}

// syntaxError is a source the tokenizer or the import parser cannot
// read; the checker refuses it rather than guess.
type syntaxError struct {
	line int
	what string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.what) }

// maxFields bounds how deep f-strings nest in each other's fields
// (Python's own parser stops at about 150).
const maxFields = 64

// lexer tokenizes one Python source: the lexical rules of Python 3
// (tokenize's), with f-strings read as Python 3.12 reads them (PEP 701),
// which agrees with earlier versions on every source they accept.
type lexer struct {
	src    string
	pos    int
	line   int
	depth  int
	fields int // how many replacement fields the lexer is inside
	// quotes are the quotes that end the f-strings whose fields the lexer
	// is inside, innermost last.
	quotes []string
	toks   []token
}

// tokenize reads src (UTF-8, without a byte order mark) into tokens.
func tokenize(src string) ([]token, error) {
	l := &lexer{src: src, line: 1, toks: make([]token, 0, len(src)/4)}
	if err := l.code(false); err != nil {
		return nil, err
	}
	l.newline()
	return l.toks, nil
}

// fail is a syntax error at the current line.
func (l *lexer) fail(format string, a ...any) error {
	return &syntaxError{line: l.line, what: "cannot be tokenized: " + fmt.Sprintf(format, a...)}
}

// emit appends a token at the current line.
func (l *lexer) emit(k kind, text string, line int) {
	l.toks = append(l.toks, token{kind: k, text: text, line: line, depth: l.depth, inField: l.fields > 0})
}

// newline ends a logical line, unless none is open.
func (l *lexer) newline() {
	if n := len(l.toks); n > 0 && l.toks[n-1].kind != tNewline {
		l.toks = append(l.toks, token{kind: tNewline, line: l.line})
	}
}

// lineBreak is the length of the line break at i (\n, \r\n or \r), 0 if
// there is none.
func (l *lexer) lineBreak(i int) int {
	switch {
	case i >= len(l.src):
		return 0
	case l.src[i] == '\n':
		return 1
	case l.src[i] == '\r' && i+1 < len(l.src) && l.src[i+1] == '\n':
		return 2
	case l.src[i] == '\r':
		return 1
	}
	return 0
}

// code tokenizes code: the whole source, or (inField) a replacement
// field's expression, which ends at its '}' or at a top-level '!' or ':'
// (the conversion and the format spec, which code reads too).
func (l *lexer) code(inField bool) error {
	base := l.depth
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\f':
			l.pos++
		case l.lineBreak(l.pos) > 0:
			l.pos += l.lineBreak(l.pos)
			if !inField && l.depth == 0 {
				l.newline()
			}
			l.line++
		case c == '\\':
			n := l.lineBreak(l.pos + 1)
			if n == 0 {
				return l.fail("a backslash not before a line break")
			}
			l.pos += 1 + n
			l.line++
		case c == '#':
			for l.pos < len(l.src) && l.lineBreak(l.pos) == 0 {
				l.pos++
			}
		case inField && l.depth == base && (c == '}' || c == ':' || c == '!' && !strings.HasPrefix(l.src[l.pos:], "!=")):
			return l.fieldEnd()
		default:
			if err := l.token(); err != nil {
				return err
			}
		}
	}
	if inField {
		return l.fail("an f-string's replacement field is not closed")
	}
	if l.depth != 0 {
		return l.fail("a bracket is not closed at the end of the file")
	}
	return nil
}

// token reads one name, number, string or operator.
func (l *lexer) token() error {
	c := l.src[l.pos]
	switch {
	case c >= '0' && c <= '9' || c == '.' && l.pos+1 < len(l.src) && isDigit(l.src[l.pos+1]):
		l.number()
		return nil
	case isNameStart(l.src[l.pos:]):
		start := l.pos
		for l.pos < len(l.src) && isNameChar(l.src[l.pos:]) {
			_, n := utf8.DecodeRuneInString(l.src[l.pos:])
			l.pos += n
		}
		name := l.src[start:l.pos]
		if l.pos < len(l.src) && (l.src[l.pos] == '"' || l.src[l.pos] == '\'') {
			if p, ok := stringPrefix(name); ok {
				return l.string(p)
			}
		}
		l.emit(tName, normName(name), l.line)
		return nil
	case c == '"' || c == '\'':
		return l.string(prefix{})
	}
	return l.operator()
}

// operators are Python's operators and delimiters of more than one
// character, longest first.
var operators = []string{
	"**=", "//=", ">>=", "<<=", "...",
	"->", ":=", "==", "!=", "<=", ">=", "**", "//", "<<", ">>",
	"+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=",
}

// opSecond holds the second characters of the operators above.
const opSecond = "*/>=<.:-"

// operator reads an operator or delimiter, tracking bracket depth.
func (l *lexer) operator() error {
	c := l.src[l.pos]
	if l.pos+1 < len(l.src) && strings.IndexByte(opSecond, l.src[l.pos+1]) >= 0 {
		for _, op := range operators {
			if strings.HasPrefix(l.src[l.pos:], op) {
				l.emit(tOp, op, l.line)
				l.pos += len(op)
				return nil
			}
		}
	}
	switch c {
	case '(', '[', '{':
		l.emit(tOp, l.src[l.pos:l.pos+1], l.line)
		l.depth++
	case ')', ']', '}':
		if l.depth == 0 {
			return l.fail("%q closes no bracket", c)
		}
		l.depth--
		l.emit(tOp, l.src[l.pos:l.pos+1], l.line)
	case '+', '-', '*', '/', '%', '@', '&', '|', '^', '~', '<', '>', '=', '.', ',', ':', ';', '!':
		l.emit(tOp, l.src[l.pos:l.pos+1], l.line)
	default:
		r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
		return l.fail("unexpected character %U", r)
	}
	l.pos++
	return nil
}

// number reads a numeric literal as Python does (decimal, hexadecimal,
// octal or binary; fractions, exponents, imaginary), and no further: in
// "1or x" the number is "1".
func (l *lexer) number() {
	s, i := l.src, l.pos
	digits := func(ok func(byte) bool) {
		for i < len(s) && (ok(s[i]) || s[i] == '_') {
			i++
		}
	}
	if s[i] == '0' && i+1 < len(s) && strings.ContainsRune("xXoObB", rune(s[i+1])) {
		i += 2
		digits(isHexDigit)
	} else {
		digits(isDigit)
		if i < len(s) && s[i] == '.' {
			i++
			digits(isDigit)
		}
		if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
			j := i + 1
			if j < len(s) && (s[j] == '+' || s[j] == '-') {
				j++
			}
			if j < len(s) && isDigit(s[j]) {
				i = j
				digits(isDigit)
			}
		}
		if i < len(s) && (s[i] == 'j' || s[i] == 'J') {
			i++
		}
	}
	l.emit(tNumber, "", l.line)
	l.pos = i
}

// prefix is a string literal's prefix, as read.
type prefix struct {
	raw, format bool // r; f or t (a template string reads as an f-string)
}

// stringPrefix says whether name is a string prefix (r, u, b, f, t and
// their allowed pairs, in either case) and what it means.
func stringPrefix(name string) (prefix, bool) {
	switch strings.ToLower(name) {
	case "r":
		return prefix{raw: true}, true
	case "u", "b":
		return prefix{}, true
	case "br", "rb":
		return prefix{raw: true}, true
	case "f", "t":
		return prefix{format: true}, true
	case "fr", "rf", "tr", "rt":
		return prefix{raw: true, format: true}, true
	}
	return prefix{}, false
}

// string reads a string literal whose quote starts at l.pos: single or
// triple quoted, its escapes honoured as far as they end it or not, and,
// for an f-string, its replacement fields tokenized as code.
func (l *lexer) string(p prefix) error {
	q := l.src[l.pos : l.pos+1]
	if strings.HasPrefix(l.src[l.pos:], q+q+q) {
		q = q + q + q
	}
	start := l.line
	l.emit(tString, "", start)
	l.pos += len(q)
	for l.pos < len(l.src) {
		if strings.HasPrefix(l.src[l.pos:], q) {
			l.pos += len(q)
			return nil
		}
		c := l.src[l.pos]
		switch {
		case l.lineBreak(l.pos) > 0:
			if len(q) == 1 {
				return l.fail("a string is not closed at the end of its line")
			}
			l.pos += l.lineBreak(l.pos)
			l.line++
		case c == '\\':
			l.pos++
			if l.pos >= len(l.src) {
				break
			}
			next := l.src[l.pos]
			switch {
			case p.format && (next == '{' || next == '}'):
				// The backslash stands for itself; the brace opens or
				// closes a field as it would without it.
			case p.format && !p.raw && next == 'N' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '{':
				end := strings.IndexByte(l.src[l.pos:], '}')
				if end < 0 {
					return l.fail(`a \N{...} escape is not closed`)
				}
				l.pos += end + 1
			case l.lineBreak(l.pos) > 0:
				l.pos += l.lineBreak(l.pos)
				l.line++
			default:
				_, n := utf8.DecodeRuneInString(l.src[l.pos:])
				l.pos += n
			}
		case p.format && c == '{':
			if strings.HasPrefix(l.src[l.pos:], "{{") {
				l.pos += 2
				continue
			}
			if err := l.field(q); err != nil {
				return err
			}
		case p.format && c == '}':
			if !strings.HasPrefix(l.src[l.pos:], "}}") {
				return l.fail("a single '}' in an f-string")
			}
			l.pos += 2
		default:
			l.pos++
		}
	}
	return &syntaxError{line: start, what: "cannot be tokenized: a string is not closed at the end of the file"}
}

// field reads an f-string's replacement field whose '{' is at l.pos, in
// a string that quote ends: its expression as code, then its conversion
// and format spec, whose own fields are code again.
func (l *lexer) field(quote string) error {
	if l.fields >= maxFields {
		return l.fail("f-strings nested more than %d deep", maxFields)
	}
	l.pos++
	saved := l.depth
	l.depth, l.fields = 0, l.fields+1
	l.quotes = append(l.quotes, quote)
	defer func() { l.depth, l.fields, l.quotes = saved, l.fields-1, l.quotes[:len(l.quotes)-1] }()
	return l.code(true)
}

// fieldEnd reads the rest of a replacement field from its top-level '}',
// '!' or ':': the conversion (!r, !s, !a), the format spec (literal text
// holding nested fields, which the string's quote would end, as Python
// reads it) and the closing '}'.
func (l *lexer) fieldEnd() error {
	quote := l.quotes[len(l.quotes)-1]
	if l.src[l.pos] == '!' {
		l.pos++
		for l.pos < len(l.src) && isNameChar(l.src[l.pos:]) {
			l.pos++
		}
		for l.pos < len(l.src) && (l.src[l.pos] == ' ' || l.src[l.pos] == '\t' || l.src[l.pos] == '\f') {
			l.pos++
		}
	}
	if l.pos < len(l.src) && l.src[l.pos] == ':' {
		l.pos++
		for l.pos < len(l.src) && l.src[l.pos] != '}' {
			switch {
			case strings.HasPrefix(l.src[l.pos:], quote):
				return l.fail("an f-string ends inside a replacement field's format spec")
			case l.src[l.pos] == '{':
				if err := l.field(quote); err != nil {
					return err
				}
			case l.lineBreak(l.pos) > 0:
				if len(quote) == 1 {
					return l.fail("a string is not closed at the end of its line")
				}
				l.pos += l.lineBreak(l.pos)
				l.line++
			default:
				l.pos++
			}
		}
	}
	if l.pos >= len(l.src) || l.src[l.pos] != '}' {
		return l.fail("an f-string's replacement field is not closed")
	}
	l.pos++
	return nil
}

// normName is a name as Python compares names: NFKC-normalized, so that
// "ｅｖａｌ" is eval.
func normName(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return norm.NFKC.String(s)
		}
	}
	return s
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHexDigit(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isNameStart says whether s starts with a character an identifier may
// start with: a letter, '_' or a non-ASCII letter (Python's XID_Start,
// approximated by Unicode's letters and letter numbers).
func isNameStart(s string) bool {
	c := s[0]
	if c < utf8.RuneSelf {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_ID_Start, r)
}

// isNameChar says whether s starts with a character an identifier may
// continue with (XID_Continue, approximated likewise).
func isNameChar(s string) bool {
	c := s[0]
	if c < utf8.RuneSelf {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c)
	}
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.In(r, unicode.Nl, unicode.Mn, unicode.Mc, unicode.Nd, unicode.Pc, unicode.Other_ID_Start, unicode.Other_ID_Continue)
}
