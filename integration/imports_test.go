package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// module is the path of Hearth's module; the rules speak of its folders.
const module = "github.com/hearthfl/hearth"

// TestImportRules pins the architecture's import boundaries (DESIGN.md,
// "Folders") on the build list that `go list -deps` reports: what the
// packages and binaries link, not what their tests import. Each rule is a
// subtest and carries its reason; a failure names every offending import
// with the chain that leads to it from the package that breaks the rule.
func TestImportRules(t *testing.T) {
	const hearth = module + "/cmd/hearth"
	list := goList(t, nil, "./...")
	if bad := list.failed(); len(bad) > 0 { // a rule would pass unchecked
		t.Fatalf("go list could not load:\n\t%s", strings.Join(bad, "\n\t"))
	}
	tests := []struct {
		name string
		why  string
		rule importRule
	}{
		{
			name: "bus knows no learning",
			why: "the bus carries signed envelopes for any protocol; learning (actors/) is built on it, never the reverse: " +
				"bus/node is handed the protocol table (node.Options.Protocol) instead of importing actors/protocol",
			rule: importRule{from: under("bus"), to: under("actors")},
		},
		{
			name: "bus imports no policies",
			why: "what a policy file means is the policy engines' business; where it lies in a kit is bus/kit's, " +
				"and provisioning is handed the default files (policies.Defaults) by cmd/hearth",
			rule: importRule{from: under("bus"), to: under("policies")},
		},
		{
			name: "policies decide from values",
			why: "a policy engine parses, then decides from values: it reaches no connection, kit or envelope; " +
				"bus/pki's identities (names, orgs, kinds, roles) are such values",
			rule: importRule{from: under("policies"), to: func(p string) bool { return under("bus")(p) && !under("bus/pki")(p) }},
		},
		{
			name: "policies start no plugins",
			why: "a policy engine parses a site's files into values (privacy.json's plugin entries included) and decides; " +
				"running the binaries they pin is plugins/filter's job, which cmd/hearth hands the participant (privacy.PluginFilters)",
			rule: importRule{from: under("policies"), to: func(p string) bool { return under("plugins")(p) || p == "github.com/hashicorp/go-plugin" }},
		},
		{
			name: "only bus embeds nats-server",
			why: "everything that touches the NATS server sits behind bus's small API (Hub, Leaf, Conn), " +
				"so that the server's options, permissions and TLS are set in one place",
			rule: importRule{
				from:   func(p string) bool { return inModule(p) && !under("bus")(p) },
				to:     func(p string) bool { return p == natsServer || strings.HasPrefix(p, natsServer+"/") },
				direct: true,
			},
		},
		{
			name: "actors reach NATS only through bus",
			why: "actors exchange typed messages with the bridge and keep durable state behind small store interfaces; " +
				"subjects, connections and JetStream's mechanics (bus/jetstore) stay under bus/, where permissions are set",
			rule: importRule{
				from:   under("actors"),
				to:     func(p string) bool { return p == natsClient || strings.HasPrefix(p, natsClient+"/") },
				direct: true,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bad := list.breaks(tt.rule); len(bad) > 0 {
				t.Errorf("%s:\n\t%s", tt.why, strings.Join(bad, "\n\t"))
			}
		})
	}

	t.Run("hearth links no cgo", func(t *testing.T) {
		// Why: hearth is one static binary that a site copies onto any
		// Linux host and that builds without a C toolchain; cgo-only code
		// (go-nvml's GPU evidence collection) sits behind a plugin or a
		// cgo-only build. Built with CGO_ENABLED=0 every package must
		// build (one that needs cgo has all its Go files excluded) and
		// none may link runtime/cgo ...
		off := goList(t, []string{"CGO_ENABLED=0"}, "./cmd/hearth")
		var bad []string
		for _, path := range off.sorted() {
			p := off[path]
			if p.Error != nil {
				bad = append(bad, fmt.Sprintf("%s does not build without cgo: %s (%s)", path, p.Error.Err, off.chainText(hearth, path)))
			}
			if path == "runtime/cgo" || len(p.CgoFiles) > 0 {
				bad = append(bad, "links cgo without cgo: "+off.chainText(hearth, path))
			}
		}
		// ... and, built the default way, no package outside the standard
		// library brings cgo files (the standard library's net and os/user
		// have the pure-Go fallbacks that CGO_ENABLED=0 selects).
		for _, path := range list.linked(t, hearth) {
			if p := list[path]; !p.Standard && len(p.CgoFiles) > 0 {
				bad = append(bad, fmt.Sprintf("cgo files %v: %s", p.CgoFiles, list.chainText(hearth, path)))
			}
		}
		if len(bad) > 0 {
			t.Errorf("the hearth binary must build and link the same with CGO_ENABLED=0:\n\t%s", strings.Join(bad, "\n\t"))
		}
	})

	t.Run("hearth links testing only through a labelled simulator", func(t *testing.T) {
		// Why: a library's test helpers (fake signers, test-only roots)
		// inside the production binary are one mistake away from being
		// trusted. A library's own simulator may be linked where hearth
		// really runs it (go-sev-guest's testing package for a simulated
		// SEV-SNP host, say); each such package is listed here by import
		// path with a label saying what it simulates.
		simulators := map[string]string{
			"github.com/google/go-sev-guest/testing": "simulated SEV-SNP evidence for hearth poc --aggregator attested and tests " +
				"(plugins/attest.SimulatedSNP: go-sev-guest's test device and test-only AMD chain; " +
				"policies/attestation/sevsnp trusts that chain's roots only where a site's policy says \"simulated\": true)",
		}
		// A library that keeps its test helpers in its own package (not a
		// _test file) links testing wherever it is used; each is listed
		// with what those helpers are, none of which hearth calls.
		helpersInside := map[string]string{
			"github.com/hashicorp/go-plugin": "testing.go: TestConn, TestPluginGRPCConn and the like, for plugin authors' tests",
			// Lattigo (CKKS, for homomorphic encryption) keeps test helpers
			// beside its code; they import testify, which imports testing.
			"github.com/tuneinsight/lattigo/v6/schemes/ckks": "precision.go: VerifyTestVectors, a precision check for Lattigo's own tests",
			"github.com/tuneinsight/lattigo/v6/utils/buffer": "utils.go: RequireSerializerCorrect, a round-trip check for Lattigo's own tests",
			"github.com/stretchr/testify/assert":             "testify, imported by Lattigo's test helpers above",
			"github.com/stretchr/testify/require":            "testify, imported by Lattigo's test helpers above",
			"github.com/stretchr/testify/assert/yaml":        "testify, imported by Lattigo's test helpers above",
		}
		var bad []string
		for _, path := range list.linked(t, hearth) {
			if slices.Contains(list[path].Imports, "testing") && simulators[path] == "" && helpersInside[path] == "" {
				bad = append(bad, list.chainText(hearth, path)+" -> testing")
			}
		}
		if len(bad) > 0 {
			t.Errorf("the hearth binary imports testing outside a labelled simulator:\n\t%s", strings.Join(bad, "\n\t"))
		}
	})
}

// natsServer is the embedded NATS server's module; natsClient the client's.
const (
	natsServer = "github.com/nats-io/nats-server/v2"
	natsClient = "github.com/nats-io/nats.go"
)

// importRule forbids packages matching from to depend on packages matching
// to: through any chain of imports, or, when direct, by importing one
// themselves.
type importRule struct {
	from, to func(importPath string) bool
	direct   bool
}

// under matches the module's folder dir and everything below it.
func under(dir string) func(string) bool {
	root := module + "/" + dir
	return func(p string) bool { return p == root || strings.HasPrefix(p, root+"/") }
}

// inModule matches the module's own packages.
func inModule(p string) bool { return p == module || strings.HasPrefix(p, module+"/") }

// listedPackage is what the rules read of one package in `go list -json`.
type listedPackage struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
	CgoFiles   []string
	Error      *struct{ Err string }
}

// buildList is `go list -deps` output by import path.
type buildList map[string]*listedPackage

// goList runs `go list -deps -e -json` on patterns at the module root with
// env added to the test's environment. A package that go list could not
// load carries its Error; see failed.
func goList(t *testing.T, env []string, patterns ...string) buildList {
	t.Helper()
	args := append([]string{"list", "-deps", "-e", "-json=ImportPath,Standard,Imports,Deps,CgoFiles,Error"}, patterns...)
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	l := buildList{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go %s: decode: %v", strings.Join(args, " "), err)
		}
		l[p.ImportPath] = &p
	}
	if len(l) == 0 {
		t.Fatalf("go %s listed no packages", strings.Join(args, " "))
	}
	return l
}

// failed lists the packages go list could not load, with their errors.
func (l buildList) failed() []string {
	var out []string
	for _, path := range l.sorted() {
		if p := l[path]; p.Error != nil {
			out = append(out, path+": "+p.Error.Err)
		}
	}
	return out
}

// sorted is the list's import paths in order, for stable reports.
func (l buildList) sorted() []string {
	paths := make([]string, 0, len(l))
	for p := range l {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths
}

// linked is path and everything it links.
func (l buildList) linked(t *testing.T, path string) []string {
	t.Helper()
	p, ok := l[path]
	if !ok {
		t.Fatalf("%s is not in the build list", path)
	}
	return append([]string{path}, p.Deps...)
}

// breaks lists the imports that break r, one line each: "importer ->
// imported", with the chain that leads to the importer from the nearest
// package the rule is about when the importer is not one itself. An
// import reached from several packages is reported once.
func (l buildList) breaks(r importRule) []string {
	seen := map[string]bool{}
	var out []string
	for _, from := range l.sorted() {
		if !r.from(from) {
			continue
		}
		var reached []string
		if r.direct {
			reached = l[from].Imports
		} else {
			reached = l[from].Deps
		}
		for _, to := range reached {
			if !r.to(to) {
				continue
			}
			chain := l.chain(from, to)
			if len(chain) < 2 {
				continue
			}
			for i := len(chain) - 2; i > 0; i-- {
				if r.from(chain[i]) {
					chain = chain[i:]
					break
				}
			}
			edge := chain[len(chain)-2] + " -> " + to
			if seen[edge] {
				continue
			}
			seen[edge] = true
			line := edge
			if len(chain) > 2 {
				line += " (via " + strings.Join(chain, " -> ") + ")"
			}
			out = append(out, line)
		}
	}
	return out
}

// chain is the shortest import chain from one package to another, both
// included, or nil if from does not reach to.
func (l buildList) chain(from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var c []string
			for ; p != ""; p = prev[p] {
				c = append(c, p)
			}
			slices.Reverse(c)
			return c
		}
		lp, ok := l[p]
		if !ok {
			continue
		}
		for _, next := range lp.Imports {
			if _, seen := prev[next]; !seen {
				prev[next] = p
				queue = append(queue, next)
			}
		}
	}
	return nil
}

// chainText is chain as "a -> b -> c", or a note that there is none.
func (l buildList) chainText(from, to string) string {
	if c := l.chain(from, to); c != nil {
		return strings.Join(c, " -> ")
	}
	return to + " (no import chain from " + from + ")"
}
