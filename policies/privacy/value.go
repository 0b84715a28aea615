package privacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The parsed forms of JSON (and YAML) values that the parsers walk:
// *object, []any, string, bool, number and nil. Objects keep their members
// in document order, so that the first problem in the text is the one
// reported.
type (
	object struct{ members []member }
	member struct {
		key   string
		value any
	}
	// number keeps the text it was written as, for messages.
	number struct {
		f    float64
		text string
	}
)

// maxDepth bounds the nesting of any value.
const maxDepth = 32

// decodeJSON reads one JSON document strictly: valid UTF-8, no duplicate
// keys, nesting at most maxDepth, numbers within float64, no string holding
// U+FFFD (the decoder's stand-in for a lone surrogate escape, which would
// compare equal to other text), and nothing after the document.
func decodeJSON(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, &ParseError{Msg: "the policy is not valid UTF-8 text"}
	}
	d := &jsonReader{dec: json.NewDecoder(bytes.NewReader(data))}
	d.dec.UseNumber()
	v, err := d.value("", 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return nil, &ParseError{Msg: "trailing data after the policy document"}
	}
	return v, nil
}

type jsonReader struct{ dec *json.Decoder }

func (d *jsonReader) token(path string) (json.Token, error) {
	tok, err := d.dec.Token()
	if err == io.EOF {
		return nil, &ParseError{Path: path, Msg: "unexpected end of input", Err: io.ErrUnexpectedEOF}
	}
	if err != nil {
		msg := "invalid JSON: " + err.Error()
		var se *json.SyntaxError
		if errors.As(err, &se) && (strings.Contains(se.Error(), "'#'") || strings.Contains(se.Error(), "'/'")) {
			msg += " (privacy.json is plain JSON, without comments, as FLARE reads it)"
		}
		return nil, &ParseError{Path: path, Msg: msg, Err: err}
	}
	if s, ok := tok.(string); ok && strings.ContainsRune(s, utf8.RuneError) {
		return nil, &ParseError{Path: path, Msg: fmt.Sprintf("%+q holds U+FFFD or a lone surrogate escape", bounded(s))}
	}
	return tok, nil
}

func (d *jsonReader) value(path string, depth int) (any, error) {
	tok, err := d.token(path)
	if err != nil {
		return nil, err
	}
	if depth > maxDepth {
		return nil, &ParseError{Path: path, Msg: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '[' {
			list := []any{}
			for i := 0; d.dec.More(); i++ {
				v, err := d.value(index(path, i), depth+1)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := d.token(path) // ']'
			return list, err
		}
		o := &object{}
		seen := map[string]bool{}
		for d.dec.More() {
			tok, err := d.token(path)
			if err != nil {
				return nil, err
			}
			key := tok.(string) // the decoder yields only strings as keys
			if seen[key] {
				return nil, &ParseError{Path: path, Msg: fmt.Sprintf("duplicate key %q", bounded(key))}
			}
			seen[key] = true
			v, err := d.value(field(path, key), depth+1)
			if err != nil {
				return nil, err
			}
			o.members = append(o.members, member{key, v})
		}
		_, err := d.token(path) // '}'
		return o, err
	case json.Number:
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return nil, &ParseError{Path: path, Msg: fmt.Sprintf("number %s is out of range", bounded(string(tok)))}
		}
		return number{f: f, text: string(tok)}, nil
	}
	return tok, nil // string, bool or nil
}

// fromGo turns a value as encoding/json or gopkg.in/yaml.v3 decode into
// `any` (maps, slices, strings, booleans, numbers, nil) into the parsed
// form. A map's keys must be strings; they are taken in sorted order.
func fromGo(path string, v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, &ParseError{Path: path, Msg: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	switch v := v.(type) {
	case nil, bool:
		return v, nil
	case string:
		if !utf8.ValidString(v) || strings.ContainsRune(v, utf8.RuneError) {
			return nil, &ParseError{Path: path, Msg: fmt.Sprintf("%+q is not valid UTF-8 text", bounded(v))}
		}
		return v, nil
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, &ParseError{Path: path, Msg: fmt.Sprintf("number %s is out of range", bounded(string(v)))}
		}
		return number{f: f, text: string(v)}, nil
	case []any:
		list := make([]any, len(v))
		for i, e := range v {
			var err error
			if list[i], err = fromGo(index(path, i), e, depth+1); err != nil {
				return nil, err
			}
		}
		return list, nil
	case map[string]any:
		return objectFromGo(path, v, depth)
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			s, ok := k.(string)
			if !ok {
				return nil, &ParseError{Path: path, Msg: fmt.Sprintf("key %v is a %T, not a name", k, k)}
			}
			m[s] = e
		}
		return objectFromGo(path, m, depth)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return number{f: float64(rv.Int()), text: strconv.FormatInt(rv.Int(), 10)}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return number{f: float64(rv.Uint()), text: strconv.FormatUint(rv.Uint(), 10)}, nil
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, &ParseError{Path: path, Msg: fmt.Sprintf("%v is not a finite number", f)}
		}
		return number{f: f, text: strconv.FormatFloat(f, 'g', -1, 64)}, nil
	}
	return nil, &ParseError{Path: path, Msg: fmt.Sprintf("a value of type %T, not a JSON value", v)}
}

func objectFromGo(path string, m map[string]any, depth int) (*object, error) {
	o := &object{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !utf8.ValidString(k) || strings.ContainsRune(k, utf8.RuneError) {
			return nil, &ParseError{Path: path, Msg: fmt.Sprintf("key %+q is not valid UTF-8 text", bounded(k))}
		}
		v, err := fromGo(field(path, k), m[k], depth+1)
		if err != nil {
			return nil, err
		}
		o.members = append(o.members, member{k, v})
	}
	return o, nil
}

// encode writes a parsed value back as compact JSON: members in their
// order, numbers as written.
func encode(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case *object:
		b.WriteByte('{')
		for i, m := range v.members {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(m.key) // strings always marshal
			b.Write(k)
			b.WriteByte(':')
			encode(b, m.value)
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			encode(b, e)
		}
		b.WriteByte(']')
	case number:
		b.WriteString(v.text)
	default: // string, bool, nil
		s, _ := json.Marshal(v)
		b.Write(s)
	}
}

// kindOf names a parsed value's JSON type for messages.
func kindOf(v any) string {
	switch v.(type) {
	case *object:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case number:
		return "a number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// plainKey matches keys written bare in a path.
var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// field is the path of key in the object at path: path.key, or
// path["key"] when the key is not a plain name.
func field(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + strconv.Quote(bounded(key)) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// index is the path of item i of the list at path.
func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// maxQuoted bounds text from a policy or a job quoted in a message.
const maxQuoted = 64

// bounded cuts s to maxQuoted bytes (at a rune boundary) and marks the
// cut.
func bounded(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
