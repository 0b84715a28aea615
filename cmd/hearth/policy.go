package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/policies/authz"
)

// The bounds on policy check's requests, on the command line and on
// standard input alike.
const (
	maxRequestLine = 4096   // bytes in one request
	maxRequests    = 10_000 // requests in one run
)

func runPolicy(_ context.Context, c *cli, args []string) error {
	return runSubcommand(c, "policy", args, policyUsage, []subcommand{{"check", policyCheck}, {"lint", policyLint}})
}

func policyUsage(c *cli) {
	fmt.Fprintf(c.stderr, `usage:
  hearth policy check FILE --site-org ORG [--json] [--request REQUEST]...
  hearth policy lint FILE...

lint parses each FILE as a site would at start, by its name
(authorization.json, privacy.json, resources.json, components.json,
attestation.json), and says what it holds or why it does not parse.

check parses FILE, an authorization.json (FLARE's format; see go doc
github.com/hearthfl/hearth/policies/authz), and decides each REQUEST as the
site of org ORG would:

  role,org,name,right[,submitter_org,submitter_name]

e.g. lead,hospital-a,bob,submit_job or org_admin,hospital-a,ann,abort_job,hospital-a,bob.
Without --request, requests are read from standard input, one per line;
blank lines and lines starting with # are skipped. At most %d requests of
%d bytes each. It prints one line per request, "allow: REASON" or
"deny: REASON" (with --json, one JSON object per line).
Exit status: 0 when the policy and every request parse, whatever the
decisions; 2 when the policy or a request does not parse, or on a usage error.
`, maxRequests, maxRequestLine)
}

// inputError is a policy or request policy check could not parse: the
// exit status is 2, as for a usage error, and the message is the error's.
type inputError struct{ err error }

func (e inputError) Error() string   { return e.err.Error() }
func (e inputError) Unwrap() []error { return []error{e.err, errUsage} }

// requestFlags collects the repeated --request flag.
type requestFlags []string

func (r *requestFlags) String() string { return strings.Join(*r, " ") }

func (r *requestFlags) Set(s string) error {
	*r = append(*r, s)
	return nil
}

// checkedRequest is one request of policy check, where it came from, and
// its decision; its JSON is a line of --json output.
type checkedRequest struct {
	Source        string `json:"source"` // "--request 2" or "line 7"
	Role          string `json:"role"`
	Org           string `json:"org"`
	Name          string `json:"name"`
	Right         string `json:"right"`
	SiteOrg       string `json:"site_org"`
	SubmitterOrg  string `json:"submitter_org,omitempty"`
	SubmitterName string `json:"submitter_name,omitempty"`
	Decision      string `json:"decision"` // allow or deny
	Reason        string `json:"reason"`
}

func policyCheck(c *cli, args []string) error {
	fs := newFlags(c, "policy check", "FILE --site-org ORG [--json] [--request REQUEST]...")
	siteOrg := fs.String("site-org", "", "the org of the site that decides (required)")
	var requests requestFlags
	fs.Var(&requests, "request", "a request, role,org,name,right[,submitter_org,submitter_name]; repeatable (default: one per line on standard input)")
	asJSON := fs.Bool("json", false, "print one JSON object per request")
	rest, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	if strings.TrimSpace(*siteOrg) == "" {
		fs.Usage()
		return errUsageMsg("policy check needs --site-org")
	}
	policy, err := authz.ParseFile(rest[0])
	if err != nil {
		return inputError{err}
	}

	var checked []checkedRequest
	if len(requests) > 0 {
		if len(requests) > maxRequests {
			return inputError{fmt.Errorf("policy check: more than %d requests", maxRequests)}
		}
		for i, r := range requests {
			cr, err := parseRequest(r)
			if err != nil {
				return inputError{fmt.Errorf("policy check: --request %d: %w", i+1, err)}
			}
			cr.Source = "--request " + strconv.Itoa(i+1)
			checked = append(checked, cr)
		}
	} else if checked, err = readRequests(c.stdin); err != nil {
		return inputError{err}
	}

	site := policy.At(*siteOrg)
	for i := range checked {
		cr := &checked[i]
		cr.SiteOrg = *siteOrg
		requester, submitter := cr.identities()
		allowed, reason := site.Allow(cr.Right, requester, submitter)
		cr.Decision, cr.Reason = "deny", reason
		if allowed {
			cr.Decision = "allow"
		}
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, cr := range checked {
			if err := enc.Encode(cr); err != nil {
				return err
			}
		}
		return nil
	}
	for _, cr := range checked {
		if _, err := fmt.Fprintf(c.stdout, "%s: %s\n", cr.Decision, cr.Reason); err != nil {
			return err
		}
	}
	return nil
}

// readRequests reads one request per line from r (nil: none), skipping
// blank lines and # comments, within the bounds on line length and count.
func readRequests(r io.Reader) ([]checkedRequest, error) {
	if r == nil {
		return nil, nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxRequestLine+2) // room for "\r\n"
	var checked []checkedRequest
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if len(checked) == maxRequests {
			return nil, fmt.Errorf("policy check: standard input, line %d: more than %d requests", line, maxRequests)
		}
		cr, err := parseRequest(text)
		if err != nil {
			return nil, fmt.Errorf("policy check: standard input, line %d: %w", line, err)
		}
		cr.Source = "line " + strconv.Itoa(line)
		checked = append(checked, cr)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("policy check: standard input, line %d: longer than %d bytes", line+1, maxRequestLine)
		}
		return nil, fmt.Errorf("policy check: read standard input: %w", err)
	}
	return checked, nil
}

// parseRequest parses role,org,name,right[,submitter_org,submitter_name]:
// every field given must be non-empty (spaces around it are dropped), and
// right one of the rights authz knows.
func parseRequest(s string) (checkedRequest, error) {
	if len(s) > maxRequestLine {
		return checkedRequest{}, fmt.Errorf("longer than %d bytes", maxRequestLine)
	}
	if !utf8.ValidString(s) {
		return checkedRequest{}, errors.New("not valid UTF-8")
	}
	const fields = "role,org,name,right,submitter_org,submitter_name"
	f := strings.Split(s, ",")
	if len(f) != 4 && len(f) != 6 {
		return checkedRequest{}, fmt.Errorf("want role,org,name,right[,submitter_org,submitter_name], got %d field(s)", len(f))
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
		if f[i] == "" {
			return checkedRequest{}, fmt.Errorf("%s is empty", strings.Split(fields, ",")[i])
		}
	}
	if !authz.Right(f[3]).Valid() {
		return checkedRequest{}, fmt.Errorf("unknown right %s (see go doc github.com/hearthfl/hearth/policies/authz)", strconv.Quote(f[3]))
	}
	cr := checkedRequest{Role: f[0], Org: f[1], Name: f[2], Right: f[3]}
	if len(f) == 6 {
		cr.SubmitterOrg, cr.SubmitterName = f[4], f[5]
	}
	return cr, nil
}

// identities are the requester, an admin, and the job's submitter (nil
// without one) of a parsed request.
func (cr *checkedRequest) identities() (pki.Identity, *pki.Identity) {
	requester := pki.Identity{Name: cr.Name, Org: cr.Org, Kind: pki.KindAdmin, Role: pki.Role(cr.Role)}
	if cr.SubmitterOrg == "" && cr.SubmitterName == "" {
		return requester, nil
	}
	return requester, &pki.Identity{Name: cr.SubmitterName, Org: cr.SubmitterOrg, Kind: pki.KindAdmin}
}
