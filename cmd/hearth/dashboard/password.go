package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// MinPasswordLength is the shortest password an account may set.
const MinPasswordLength = 12

// maxPasswordLength bounds what is hashed (argon2 takes any length; a
// megabyte "password" would only cost the server).
const maxPasswordLength = 256

// HashParams are argon2id's parameters. They are stored with each hash, so
// changing them applies to passwords set afterwards and every stored hash
// still verifies.
type HashParams struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultHashParams are RFC 9106's second recommended option's memory with
// two passes and two lanes (the project's machines have 2 cores): 64 MiB.
var DefaultHashParams = HashParams{Time: 2, Memory: 64 * 1024, Threads: 2}

const (
	saltLen = 16
	hashLen = 32
)

// Validate refuses parameters too weak to be memory-hard.
func (p HashParams) Validate() error {
	if p.Time < 1 || p.Threads < 1 || p.Memory < 8*uint32(p.Threads) {
		return fmt.Errorf("argon2id parameters t=%d m=%d p=%d: need t >= 1, p >= 1, m >= 8p KiB", p.Time, p.Memory, p.Threads)
	}
	return nil
}

// hashPassword returns the PHC string of password under p with a fresh
// salt: $argon2id$v=19$m=...,t=...,p=...$salt$hash (unpadded base64).
func hashPassword(password string, p HashParams) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, hashLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

var errBadHash = errors.New("malformed password hash")

// checkPassword reports whether password matches the PHC string encoded,
// comparing in constant time.
func checkPassword(password, encoded string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false, errBadHash
	}
	var p HashParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return false, errBadHash
	}
	if err := p.Validate(); err != nil {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// checkNewPassword says what is wrong with a password being set.
func checkNewPassword(password, confirm string) error {
	switch {
	case password != confirm:
		return errors.New("the two passwords differ")
	case len([]rune(password)) < MinPasswordLength:
		return fmt.Errorf("the password must have at least %d characters", MinPasswordLength)
	case len(password) > maxPasswordLength:
		return fmt.Errorf("the password must have at most %d bytes", maxPasswordLength)
	}
	return nil
}
