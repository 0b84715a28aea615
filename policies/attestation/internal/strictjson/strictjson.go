// Package strictjson reads the JSON of attestation policy files strictly:
// one document of valid UTF-8, no duplicate key, bounded nesting, and
// typed values whose every refusal is a *tee.ParseError naming the JSON
// path of the value it refuses. null is never a value: a key is present
// with a value of its type, or absent.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hearthfl/hearth/policies/attestation/tee"
)

// MaxDepth bounds the nesting of any document.
const MaxDepth = 16

func fail(path, format string, args ...any) error {
	return &tee.ParseError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Check refuses data unless it is one JSON value of valid UTF-8 without
// duplicate keys (compared after unescaping), nested at most MaxDepth
// deep, with nothing after it.
func Check(data []byte) error {
	if !utf8.Valid(data) {
		return fail("", "the document is not valid UTF-8 text")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := check(dec, "", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail("", "trailing data after the document")
	}
	return nil
}

func token(dec *json.Decoder, path string) (json.Token, error) {
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, &tee.ParseError{Path: path, Msg: "unexpected end of input", Err: io.ErrUnexpectedEOF}
	}
	if err != nil {
		return nil, &tee.ParseError{Path: path, Msg: "invalid JSON: " + err.Error(), Err: err}
	}
	return tok, nil
}

func check(dec *json.Decoder, path string, depth int) error {
	tok, err := token(dec, path)
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= MaxDepth {
		return fail(path, "nested deeper than %d", MaxDepth)
	}
	switch delim {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			tok, err := token(dec, path)
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			if seen[key] {
				return fail(Join(path, key), "duplicate key")
			}
			seen[key] = true
			if err := check(dec, Join(path, key), depth+1); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := check(dec, Index(path, i), depth+1); err != nil {
				return err
			}
		}
	}
	_, err = token(dec, path) // the closing delimiter
	return err
}

// Join names member key of the object at path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Index names element i of the array at path.
func Index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// what names the JSON type of raw, for messages.
func what(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// Object decodes the object at path into its members, refusing any key
// not in known (the message lists the known ones). raw must have passed
// Check (alone or as part of its document), so that no key repeats.
func Object(raw json.RawMessage, path string, known ...string) (map[string]json.RawMessage, error) {
	if err := IsObject(raw, path); err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &tee.ParseError{Path: path, Msg: "invalid JSON object: " + err.Error(), Err: err}
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fail(Join(path, unknown[0]), "unknown key (known: %s)", strings.Join(known, ", "))
	}
	return m, nil
}

// IsObject refuses raw unless it is an object (of any members).
func IsObject(raw json.RawMessage, path string) error {
	if what(raw) != "an object" {
		return fail(path, "%s, want an object", what(raw))
	}
	return nil
}

// Array decodes the array at path into its elements.
func Array(raw json.RawMessage, path string) ([]json.RawMessage, error) {
	if what(raw) != "an array" {
		return nil, fail(path, "%s, want an array", what(raw))
	}
	var a []json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, &tee.ParseError{Path: path, Msg: "invalid JSON array: " + err.Error(), Err: err}
	}
	return a, nil
}

// String decodes the string at path.
func String(raw json.RawMessage, path string) (string, error) {
	if what(raw) != "a string" {
		return "", fail(path, "%s, want a string", what(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &tee.ParseError{Path: path, Msg: "invalid JSON string: " + err.Error(), Err: err}
	}
	if strings.ContainsRune(s, utf8.RuneError) {
		return "", fail(path, "holds U+FFFD or a lone surrogate escape")
	}
	return s, nil
}

// Bool decodes the boolean at path.
func Bool(raw json.RawMessage, path string) (bool, error) {
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fail(path, "%s, want true or false", what(raw))
}

// Uint decodes the whole number at path, in [lo, hi]. It is written as
// digits only: 1.0, 1e1 and -0 are refused.
func Uint(raw json.RawMessage, path string, lo, hi uint64) (uint64, error) {
	if what(raw) != "a number" {
		return 0, fail(path, "%s, want a whole number from %d to %d", what(raw), lo, hi)
	}
	text := string(bytes.TrimSpace(raw))
	v, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fail(path, "%s is out of range [%d, %d]", text, lo, hi)
		}
		return 0, fail(path, "%s is not a whole number from %d to %d", text, lo, hi)
	}
	if v < lo || v > hi {
		return 0, fail(path, "%d is out of range [%d, %d]", v, lo, hi)
	}
	return v, nil
}
