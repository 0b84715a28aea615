// Package filter holds Hearth's built-in privacy filters, run in process:
// exclude_vars, percentile_privacy and svt_privacy (NVIDIA FLARE's three
// privacy filters, nvflare/app_common/filters, for parity), gaussian_privacy
// (client-level differential privacy on the update) and quantize (a codec's
// precision loss, shown in process). A site's privacy scope names them
// (policies/privacy parses its privacy.json into their configurations);
// a job may add its own after the site's.
//
// # The contract
//
// A Filter's Apply(global, local) works on the diff local - global, as
// FLARE's filters work on weight diffs, and returns the filtered local
// model: global + filtered diff, a new model with local's layout, sharing
// no memory with its inputs, which it never changes. A value a filter
// leaves alone comes out exactly as it went in; values it changes are
// computed in float64 (the diff included, so that it cannot overflow;
// quantize alone takes the float32 diff the wire would carry) and rounded
// to float32 once. Inputs are refused when malformed or
// non-finite (errors wrapping model.ErrInvalid) or of different layouts
// (model.ErrLayout), and no filter returns a NaN or an infinity
// (ErrNonFinite). A nil global is a reference of zeros, so that a filter on
// task data entering the site, with no earlier model to compare with,
// works on the values themselves (as FLARE's do on WEIGHTS). Each Apply
// returns a Report of what it did, for the audit: counts, cutoffs, norms,
// noise scales and the privacy spent, never the noise drawn. New builds a
// filter from its configuration (ExcludeVars, Percentile, SVT, Gaussian,
// Quantize), after Validate; RunChain applies several in order, checking
// the inputs once, and RunChainInto writes the chain's output into a
// buffer the caller keeps (a FilterInto, such as a plugin filter, at the
// end of the chain writes it there itself).
//
// # exclude_vars
//
// The tensors named by a list of exact names, or whose names a regular
// expression matches anywhere (Python's re.search; Go's MatchString), are
// not sent: they hold the global's values in the output (zeros for a nil
// global), and Report.Mask and Report.Excluded say which. The integrator
// must aggregate them without this site: averaging the global's values in
// would pull the other sites' updates towards the old model. RunChain
// takes them out of what later filters see.
//
// Patterns are Go's RE2, not Python's re; a FLARE file's pattern means the
// same only within their common syntax. RE2 refuses backreferences,
// lookahead and lookbehind, possessive quantifiers, \Z and the (?x)
// verbose flag (so such a pattern fails at parse, not silently). Some
// constructs compile in both and mean something else: \d, \w, \s and \b
// are ASCII in Go and Unicode in Python's str patterns; x{,n} is 0 to n
// repetitions in Python 3 and literal text in Go; $ matches only at the
// very end in Go, also before a final newline in Python.
//
// FLARE's ExcludeVars silently does nothing when it is given no names, an
// empty pattern or a value of another type; here that is refused.
//
// # percentile_privacy
//
// FLARE's PercentilePrivacy (Shokri and Shmatikov, CCS 2015), same
// parameters and algorithm: x = diff/steps; cutoff = the percentile of |x|
// over every value of the model (numpy.percentile's default linear
// interpolation: the value at (n-1)*percentile/100 of the sorted values);
// values with -cutoff < x < cutoff become 0; the rest are clipped to
// [-gamma, gamma]; the diff sent is x*steps. Scalar tensors count towards
// the cutoff and pass unchanged, as in FLARE. Steps is an argument (FLARE
// reads NUM_STEPS_CURRENT_ROUND from the result, default 1). It is a
// heuristic with no formal guarantee (Report.Privacy is nil).
//
// Differences: FLARE returns the data unfiltered when gamma ≤ 0 or the
// percentile is outside [0, 100]; Hearth refuses such arguments. Hearth
// compares x with the cutoff in float64, as numpy 2 does; numpy 1 rounds
// the cutoff to float32 first, so a value within a float32 rounding of the
// cutoff may fall the other way there.
//
// # svt_privacy
//
// FLARE's SVTPrivacy (the current svt_privacy.py, its standard path), the
// sparse vector technique of Lyu, Su and Li ("Understanding the Sparse
// Vector Technique for Differential Privacy", VLDB 2017, Algorithm 1,
// non-monotonic queries), with x = diff/steps and n values:
//
//	c        = min(ceil(n*fraction), n)                  values to release
//	eps_t    = epsilon / (1 + (2c)^(2/3)),  eps_q = epsilon - eps_t
//	eps_r    = c*noise_var                               (FLARE's legacy rule)
//	T        = tau + Lap(gamma/eps_t)                    the noisy threshold, drawn once
//	accept   value k when |clip(x_k, ±gamma)| + Lap(2*gamma*c/eps_q) ≥ T,
//	         asking the values in a random order, pass after pass over
//	         those not yet accepted, and halting at the c-th acceptance
//	         (at most MaxSVTPasses passes, else ErrNoProgress)
//	release  c draws among the c accepted (with replacement, or all c):
//	         clip(x_k, ±gamma) + Lap(2*gamma*c/eps_r) = Lap(2*gamma/noise_var),
//	         times steps; every other value's diff is 0
//
// The accounting is FLARE's: pure ε-DP with δ = 0, ε = eps_t + eps_q +
// eps_r per application, summed over rounds (its "pure_dp_sum" ledger),
// in Report.Privacy. Of the three, eps_r = c*noise_var dominates: FLARE's
// defaults (noise_var 0.1, fraction 0.1) spend ε = 0.01n per round, 10,000
// for a model of a million values; a real guarantee needs far larger noise
// than the defaults give.
//
// Differences: FLARE does not halt at c. Each of its passes accepts every
// value that crosses (with its defaults the first pass accepts about half
// of all values) and it then samples c of them; but the query noise is
// calibrated for c positive answers, each costing eps_q/c, so FLARE's
// ledger understates the cost by a factor of accepted/c on eps_q, and the
// true figure would depend on the data. Halting at the c-th, as the
// textbook algorithm does, makes the stated ε exact; the random order
// (independent of the data) keeps the values from being favoured by their
// place in the model. Since the answers are independent given T, Hearth
// answers a whole pass and keeps a uniform subset of the positives it
// still needs, which has the same distribution. When one pass is enough
// and replace is false, that is also the distribution of FLARE's output;
// FLARE's replace=true draws from all it accepted. Scalar tensors are values like any other here (FLARE
// passes them through unprotected and notes that its ledger does not cover
// them). The noisy threshold and the noise drawn are not logged or
// reported (FLARE logs the threshold and the noise's maximum); the passes
// are bounded. FLARE draws from numpy's global Mersenne Twister; Hearth
// from ChaCha8 seeded from crypto/rand, one generator per filter (WithSeed
// for tests). The Laplace noise is float64 arithmetic on that generator's
// exponentials, with the floating-point caveats of every implementation
// (Mironov, CCS 2012).
//
// # gaussian_privacy
//
// The Gaussian mechanism on the whole update, client-level DP (as in
// McMahan et al., "Learning Differentially Private Recurrent Language
// Models", ICLR 2018, with the noise added at the site): the diff is
// clipped to L2 norm C as one vector (dp.ClipFactor) and N(0, (sigma*C)^2)
// noise is added to every value from the filter's dp.Source. Report
// carries sigma*C, C, the norm before clipping, and Privacy.Mechanism, one
// step at sampling rate 1 with noise multiplier sigma, for the site's
// dp.Accountant, which converts the sum of its rounds to (ε, δ) at the
// scope's δ. That statement is for the neighbouring relation the accountant
// assumes: the site's contribution present or absent (an update against a
// zero update, sensitivity C). Against the replacement of the site's data
// by any other (two updates of norm C each, sensitivity 2C) the same noise
// is worth a noise multiplier of sigma/2.
//
// # quantize
//
// The float32 diff, in the model's order, is encoded with a codec of
// actors/learning/quantize chunk by chunk (ChunkValues values, bus/stream's
// 1 MiB chunk) and decoded again; the output is global + the decoded diff,
// and Report.Effect has the encoded size and the error. It only shows the
// precision loss in process: moving the encoded bytes is the transport's
// work. A diff a codec cannot carry (float16 above 65504) is ErrNonFinite.
// FLARE's quantization filters (ModelQuantizer, ModelDequantizer) are a
// pair around the wire, not one filter; they are not mapped to this one.
package filter
