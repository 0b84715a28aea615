package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/hearthfl/hearth/actors/learning/dp"
)

func runPrivacy(_ context.Context, c *cli, args []string) error {
	return runSubcommand(c, "privacy", args, privacyUsage, []subcommand{
		{"epsilon", privacyEpsilon},
		{"sigma", privacySigma},
	})
}

func privacyUsage(c *cli) {
	fmt.Fprint(c.stderr, `usage:
  hearth privacy epsilon --sampling-rate Q --noise-multiplier S --steps T --delta D [--json]
  hearth privacy sigma   --epsilon E --sampling-rate Q --steps T --delta D [--json]

epsilon prints the (ε, δ) guarantee of T steps of the Poisson-subsampled
Gaussian mechanism (DP-SGD: each record sampled with probability Q, noise of
S times the clipping norm), by the RDP accountant of
github.com/hearthfl/hearth/actors/learning/dp, and the RDP order that gave it.
sigma prints the smallest noise multiplier that keeps ε within E.
For DP-SGD, Q = batch size / records and T = epochs · ceil(records / batch size).
Exit status: 0 with an answer; 2 for a usage error or an input out of range;
1 when no noise multiplier up to the largest allowed reaches E.
`)
}

// privacyAnswer is what privacy epsilon and privacy sigma print; its JSON
// is their --json output.
type privacyAnswer struct {
	Epsilon         float64  `json:"epsilon"`
	Delta           float64  `json:"delta"`
	Order           float64  `json:"order"` // the RDP order that gave Epsilon
	SamplingRate    float64  `json:"sampling_rate"`
	NoiseMultiplier float64  `json:"noise_multiplier"`
	Steps           int64    `json:"steps"`
	TargetEpsilon   *float64 `json:"target_epsilon,omitempty"` // sigma only
	Note            string   `json:"note,omitempty"`
}

// privacyFlags are the flags both subcommands share.
type privacyFlags struct {
	q, delta *float64
	steps    *int64
	asJSON   *bool
}

func registerPrivacyFlags(fs *flag.FlagSet) privacyFlags {
	return privacyFlags{
		q:      fs.Float64("sampling-rate", 0, "Q: the probability that a step samples a record, in (0, 1] (required)"),
		steps:  fs.Int64("steps", 0, "T: the number of steps (required)"),
		delta:  fs.Float64("delta", 0, "D: the δ of the guarantee, in (0, 1), e.g. 1e-5 (required)"),
		asJSON: fs.Bool("json", false, "print one JSON object"),
	}
}

// requireFlags reports, as a usage error, the first of names not set on fs.
func requireFlags(fs *flag.FlagSet, command string, names ...string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var missing []string
	for _, n := range names {
		if !set[n] {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) > 0 {
		fs.Usage()
		return errUsageMsg(fmt.Sprintf("%s needs %s", command, strings.Join(missing, ", ")))
	}
	return nil
}

func privacyEpsilon(c *cli, args []string) error {
	fs := newFlags(c, "privacy epsilon", "--sampling-rate Q --noise-multiplier S --steps T --delta D [--json]")
	f := registerPrivacyFlags(fs)
	sigma := fs.Float64("noise-multiplier", 0, "S: the noise's standard deviation over the clipping norm (required)")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	if err := requireFlags(fs, "privacy epsilon", "sampling-rate", "noise-multiplier", "steps", "delta"); err != nil {
		return err
	}
	m := dp.Mechanism{SamplingRate: *f.q, NoiseMultiplier: *sigma, Steps: *f.steps}
	g, err := m.Epsilon(*f.delta)
	if err != nil {
		return privacyError(err)
	}
	return printPrivacy(c, *f.asJSON, privacyAnswer{Epsilon: g.Epsilon, Delta: g.Delta, Order: g.Order,
		SamplingRate: m.SamplingRate, NoiseMultiplier: m.NoiseMultiplier, Steps: m.Steps, Note: orderNote(g)})
}

func privacySigma(c *cli, args []string) error {
	fs := newFlags(c, "privacy sigma", "--epsilon E --sampling-rate Q --steps T --delta D [--json]")
	f := registerPrivacyFlags(fs)
	target := fs.Float64("epsilon", 0, "E: the largest ε allowed (required)")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	if err := requireFlags(fs, "privacy sigma", "epsilon", "sampling-rate", "steps", "delta"); err != nil {
		return err
	}
	sigma, err := dp.NoiseMultiplier(*target, *f.delta, *f.q, *f.steps)
	if err != nil {
		return privacyError(err)
	}
	m := dp.Mechanism{SamplingRate: *f.q, NoiseMultiplier: sigma, Steps: *f.steps}
	g, err := m.Epsilon(*f.delta)
	if err != nil {
		return privacyError(err)
	}
	return printPrivacy(c, *f.asJSON, privacyAnswer{Epsilon: g.Epsilon, Delta: g.Delta, Order: g.Order,
		SamplingRate: m.SamplingRate, NoiseMultiplier: sigma, Steps: m.Steps, TargetEpsilon: target, Note: orderNote(g)})
}

// privacyError makes an input out of range a usage error (exit 2), as
// policy check does with input it cannot parse.
func privacyError(err error) error {
	if errors.Is(err, dp.ErrParameter) {
		return inputError{err}
	}
	return err
}

// orderNote warns when the best order of a positive ε is at an end of
// dp.DefaultOrders: a longer list might give a smaller ε.
func orderNote(g dp.Guarantee) string {
	if g.Epsilon == 0 {
		return ""
	}
	orders := dp.DefaultOrders()
	switch g.Order {
	case orders[0]:
		return "the best RDP order is the smallest one tried; ε might be smaller with smaller orders"
	case orders[len(orders)-1]:
		return "the best RDP order is the largest one tried; ε might be smaller with larger orders"
	}
	return ""
}

func printPrivacy(c *cli, asJSON bool, a privacyAnswer) error {
	if asJSON {
		return json.NewEncoder(c.stdout).Encode(a)
	}
	var b strings.Builder
	if a.TargetEpsilon != nil {
		fmt.Fprintf(&b, "noise multiplier σ = %.6g keeps ε ≤ %g\n", a.NoiseMultiplier, *a.TargetEpsilon)
	}
	fmt.Fprintf(&b, "ε = %.6g at δ = %g (RDP order %g)\n", a.Epsilon, a.Delta, a.Order)
	fmt.Fprintf(&b, "sampling rate q = %g, noise multiplier σ = %.6g, steps T = %d\n", a.SamplingRate, a.NoiseMultiplier, a.Steps)
	if a.Note != "" {
		fmt.Fprintf(&b, "note: %s\n", a.Note)
	}
	_, err := fmt.Fprint(c.stdout, b.String())
	return err
}
