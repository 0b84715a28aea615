package linkrelay

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Rate is a link's rate in bytes per second, one direction.
type Rate float64

// The rates the relay plays: below MinRate a bench round of even a small
// model takes minutes; above MaxRate the relay itself, copying on this
// machine's cores, would be the limit rather than the rate it was told.
const (
	MinRate Rate = 1e6 / 8  // 1 Mbit/s
	MaxRate Rate = 1e12 / 8 // 1 Tbit/s
)

// rateUnits are the units ParseRate reads: bits (decimal prefixes, as
// links are sold) and bytes (decimal and binary), each per second.
var rateUnits = []struct {
	suffix string
	bytes  float64 // bytes per second in one unit
}{
	{"Tbit", 1e12 / 8}, {"Gbit", 1e9 / 8}, {"Mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"Kbit", 1e3 / 8},
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
}

// ParseRate reads a link rate: a positive number and a unit, bits
// ("1Gbit", "100Mbit", "2.5Gbit") or bytes ("500MB", "64MiB"), optionally
// followed by "/s". A bare number or an ambiguous unit ("Mb", "mb") is
// refused: whether it means bits or bytes is a factor of eight.
func ParseRate(s string) (Rate, error) {
	text := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	if text == "" {
		return 0, fmt.Errorf("rate %q: empty; want a number and a unit, e.g. 1Gbit or 500MB", s)
	}
	for _, u := range rateUnits {
		num, ok := strings.CutSuffix(text, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("rate %q: %q is not a number", s, num)
		}
		r := Rate(v * u.bytes)
		switch {
		case v <= 0:
			return 0, fmt.Errorf("rate %q: must be positive", s)
		case r < MinRate:
			return 0, fmt.Errorf("rate %q: below the slowest link the relay plays, %s", s, MinRate)
		case r > MaxRate:
			return 0, fmt.Errorf("rate %q: above the fastest link the relay plays, %s (leave the link out to measure loopback)", s, MaxRate)
		}
		return r, nil
	}
	i := strings.IndexFunc(text, func(c rune) bool { return (c < '0' || c > '9') && c != '.' })
	if i < 0 {
		return 0, fmt.Errorf("rate %q: no unit; say bits or bytes per second, e.g. 1Gbit or 500MB", s)
	}
	return 0, fmt.Errorf("rate %q: unknown unit %q; want Tbit, Gbit, Mbit, kbit (bits) or GB, MB, KB, GiB, MiB, KiB (bytes), per second", s, strings.TrimSpace(text[i:]))
}

// String is the rate in bits per second and in bytes per second, e.g.
// "1 Gbit/s (125 MB/s)".
func (r Rate) String() string {
	bits := float64(r) * 8
	var b string
	switch {
	case bits >= 1e12:
		b = strconv.FormatFloat(bits/1e12, 'g', 4, 64) + " Tbit/s"
	case bits >= 1e9:
		b = strconv.FormatFloat(bits/1e9, 'g', 4, 64) + " Gbit/s"
	case bits >= 1e6:
		b = strconv.FormatFloat(bits/1e6, 'g', 4, 64) + " Mbit/s"
	default:
		b = strconv.FormatFloat(bits/1e3, 'g', 4, 64) + " kbit/s"
	}
	return fmt.Sprintf("%s (%s MB/s)", b, strconv.FormatFloat(float64(r)/1e6, 'g', 4, 64))
}
