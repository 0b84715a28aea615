package checker_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hearthfl/hearth/plugins/checker"
	checkerv1 "github.com/hearthfl/hearth/schemas/hearth/plugin/checker/v1"
)

// recording is a checker that keeps what it is asked and answers what it
// is told.
type recording struct {
	mu       sync.Mutex
	config   []byte
	jobs     []checker.Job
	decision checker.Decision
	err      error
}

func (r *recording) Configure(_ context.Context, config []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.config = config
	return r.err
}

func (r *recording) Check(_ context.Context, j checker.Job) (checker.Decision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs = append(r.jobs, j)
	return r.decision, r.err
}

// shim connects the kind's host side to impl over go-plugin's in-process
// gRPC test connection, and returns the host side's Checker and the raw
// gRPC client.
func shim(t *testing.T, impl checker.Checker) (checker.Checker, checkerv1.CheckerClient) {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, plugin.PluginSet{checker.PluginName: checker.Glue(impl)})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(checker.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(checker.Checker), checkerv1.NewCheckerClient(client.Conn)
}

// TestShimCarriesJobs shows every field of a job and a decision crossing
// the wire unchanged.
func TestShimCarriesJobs(t *testing.T) {
	rec := &recording{decision: checker.Decision{Allowed: true, Reason: "looked at it"}}
	host, _ := shim(t, rec)
	if err := host.Configure(t.Context(), []byte(`{"deny":["socket"]}`)); err != nil {
		t.Fatal(err)
	}
	if string(rec.config) != `{"deny":["socket"]}` {
		t.Fatalf("config arrived as %q", rec.config)
	}
	two := sampleJob()
	two.Code = append(two.Code, checker.File{Name: "helpers.py", Data: []byte("x = 1\n")})
	for _, j := range []checker.Job{sampleJob(), two, {Site: "site-1", JobID: "j", Workflow: "swarm", Trainer: "mlp"}} {
		d, err := host.Check(t.Context(), j)
		if err != nil {
			t.Fatal(err)
		}
		if d != rec.decision {
			t.Fatalf("decision %+v arrived as %+v", rec.decision, d)
		}
		if got := rec.jobs[len(rec.jobs)-1]; !reflect.DeepEqual(got, j) {
			t.Fatalf("job %+v arrived as %+v", j, got)
		}
	}
}

// TestShimRefusesAnswersOutsideTheContract: every decision the contract
// does not allow is refused with ErrContract and the rule it breaks; a
// checker's error arrives as its answer, never as a decision.
func TestShimRefusesAnswersOutsideTheContract(t *testing.T) {
	tests := []struct {
		name     string
		decision checker.Decision
		err      error
		want     string
		contract bool
	}{
		{name: "a refusal without a reason", decision: checker.Decision{}, want: "a refusal without a reason", contract: true},
		{name: "a reason too long", decision: checker.Decision{Reason: strings.Repeat("r", checker.MaxReason+1)}, want: "a reason of 513 bytes, more than 512", contract: true},
		{name: "an allow's reason too long", decision: checker.Decision{Allowed: true, Reason: strings.Repeat("r", 600)}, want: "600 bytes", contract: true},
		{name: "a line break", decision: checker.Decision{Reason: "ok\nAUDIT allowed"}, want: "control character U+000A", contract: true},
		{name: "an escape sequence", decision: checker.Decision{Reason: "\x1b[2Jok"}, want: "U+001B", contract: true},
		{name: "a bidirectional override", decision: checker.Decision{Reason: "evil\u202eexe.py"}, want: "U+202E", contract: true},
		{name: "the checker's error", err: errors.New("policy file unreadable"), want: "checker plugin: check: policy file unreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, _ := shim(t, &recording{decision: tt.decision, err: tt.err})
			d, err := host.Check(t.Context(), sampleJob())
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, checker.ErrContract) != tt.contract {
				t.Fatalf("Check = %+v, %v; want an error saying %q (ErrContract: %v)", d, err, tt.want, tt.contract)
			}
			if d != (checker.Decision{}) {
				t.Fatalf("a decision %+v came with the error", d)
			}
		})
	}
	// An allow may carry a reason, or none; a refusal's reason may be
	// any printable UTF-8 up to the bound.
	for _, d := range []checker.Decision{{Allowed: true}, {Reason: strings.Repeat("é", checker.MaxReason/2)}} {
		host, _ := shim(t, &recording{decision: d})
		if got, err := host.Check(t.Context(), sampleJob()); err != nil || got != d {
			t.Fatalf("Check = %+v, %v; want %+v", got, err, d)
		}
	}
}

// TestShimBoundsJobs: a job beyond the contract's bounds is refused
// before any checker sees it, on the host side and (sent raw) on the
// plugin side.
func TestShimBoundsJobs(t *testing.T) {
	tests := []struct {
		name string
		job  checker.Job
		want string
	}{
		{"a manifest too large", (checker.Job{Manifest: make([]byte, checker.MaxManifestBytes+1)}), "a manifest of 16385 bytes"},
		{"code too large", (checker.Job{Code: []checker.File{{Name: "a.py", Data: make([]byte, checker.MaxCodeBytes)}, {Name: "b.py", Data: []byte("x")}}}), "code of 262145 bytes"},
		{"too many files", (checker.Job{Code: make([]checker.File, checker.MaxCodeFiles+1)}), "17 code files"},
		{"a file without a name", (checker.Job{Code: []checker.File{{Data: []byte("x")}}}), "code file 0 has no name"},
		{"a site name too long", (checker.Job{Site: strings.Repeat("s", checker.MaxField+1)}), "site: 1025 bytes"},
		{"a name not UTF-8", (checker.Job{Submitter: "\xff"}), "submitter: not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recording{decision: checker.Decision{Allowed: true}}
			host, raw := shim(t, rec)
			if _, err := host.Check(t.Context(), tt.job); !errors.Is(err, checker.ErrJob) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check: %v; want ErrJob saying %q", err, tt.want)
			}
			if tt.name != "a name not UTF-8" { // protobuf itself refuses to send that
				req := &checkerv1.CheckRequest{Site: tt.job.Site, Manifest: tt.job.Manifest}
				for _, f := range tt.job.Code {
					req.Code = append(req.Code, &checkerv1.File{Name: f.Name, Data: f.Data})
				}
				if _, err := raw.Check(t.Context(), req); status.Code(err) != codes.InvalidArgument {
					t.Fatalf("raw Check: %v; want InvalidArgument", err)
				}
			}
			if len(rec.jobs) != 0 {
				t.Fatalf("the checker was asked %d times", len(rec.jobs))
			}
		})
	}
}

// TestValidReason: a refusal needs a reason, an allow does not; a reason
// is UTF-8.
func TestValidReason(t *testing.T) {
	if err := checker.ValidReason("imports socket at train.py line 2", false); err != nil {
		t.Fatal(err)
	}
	if err := checker.ValidReason("", true); err != nil {
		t.Fatalf("an allow without a reason: %v", err)
	}
	if err := checker.ValidReason("\xff", false); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Fatalf("invalid UTF-8: %v", err)
	}
}
