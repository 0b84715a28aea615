package resources_test

import (
	"strings"
	"testing"

	"github.com/hearthfl/hearth/policies/resources"
)

func TestParse(t *testing.T) {
	o, err := resources.Parse([]byte(`{"num_of_gpus": 2, "mem_per_gpu_in_GiB": 80}`))
	if err != nil || o.GPUs != 2 || o.MemPerGPU != 80 {
		t.Fatalf("Parse = %+v, %v", o, err)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"an unknown key", `{"num_of_gpus": 1, "gpus": 2}`, "unknown field"},
		{"negative GPUs", `{"num_of_gpus": -1}`, "num_of_gpus -1"},
		{"too many GPUs", `{"num_of_gpus": 5000}`, "num_of_gpus 5000"},
		{"memory out of range", `{"num_of_gpus": 1, "mem_per_gpu_in_GiB": 1e9}`, "mem_per_gpu_in_GiB"},
		{"two values", `{"num_of_gpus": 1} {}`, "more than one"},
		{"oversized", `{"num_of_gpus": 1` + strings.Repeat(" ", 70<<10) + `}`, "bytes"},
		{"not JSON", `num_of_gpus: 1`, "invalid"},
		{"aggregate null", `{"num_of_gpus": 1, "aggregate": null}`, "aggregate is null, want true or false"},
		{"aggregate a string", `{"aggregate": "no"}`, `aggregate is "no"`},
		{"aggregate a number", `{"aggregate": 0}`, "aggregate is 0"},
		{"aggregate in another case", `{"Aggregate": "x"}`, "aggregate is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := resources.Parse([]byte(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestParseAggregate: the optional "aggregate" key, absent meaning true,
// so that a resources.json written before it keeps its meaning.
func TestParseAggregate(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       bool
	}{
		{"absent", `{"num_of_gpus": 2, "mem_per_gpu_in_GiB": 80}`, true},
		{"true", `{"num_of_gpus": 0, "aggregate": true}`, true},
		{"false", `{"num_of_gpus": 1, "mem_per_gpu_in_GiB": 16, "aggregate": false}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := resources.Parse([]byte(tc.text))
			if err != nil || o.Aggregates() != tc.want {
				t.Fatalf("Parse = %+v, %v; Aggregates want %v", o, err, tc.want)
			}
		})
	}
	if o, _ := resources.Parse([]byte(`{"num_of_gpus": 1, "mem_per_gpu_in_GiB": 16, "aggregate": false}`)); o.GPUs != 1 || o.MemPerGPU != 16 {
		t.Fatalf("beside aggregate, the GPUs were lost: %+v", o)
	}
}

func TestAdmitAggregation(t *testing.T) {
	no, yes := false, true
	for _, tc := range []struct {
		name  string
		offer resources.Offer
		named bool
		allow bool
		want  string
	}{
		{"named, aggregate false", resources.Offer{Aggregate: &no}, true, false, `"aggregate": false`},
		{"not named, aggregate false", resources.Offer{Aggregate: &no}, false, true, "does not name this site"},
		{"named, aggregate absent", resources.Offer{}, true, true, "this site aggregates"},
		{"named, aggregate true", resources.Offer{Aggregate: &yes}, true, true, "this site aggregates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.offer.AdmitAggregation(tc.named)
			if d.Allowed != tc.allow || !strings.Contains(d.Reason, tc.want) {
				t.Fatalf("AdmitAggregation = %+v, want %v %q", d, tc.allow, tc.want)
			}
		})
	}
}

func TestAdmit(t *testing.T) {
	offer := resources.Offer{GPUs: 2, MemPerGPU: 40}
	for _, tc := range []struct {
		name  string
		req   resources.Request
		inUse int
		allow bool
		want  string
	}{
		{"no GPU asked", resources.Request{}, 2, true, "needs no GPU"},
		{"one of two free", resources.Request{GPUs: 1, MemPerGPU: 16}, 1, true, "1 of 2 GPUs free"},
		{"more than the site has", resources.Request{GPUs: 3}, 0, false, "needs 3 GPUs, this site offers 2"},
		{"more memory than each has", resources.Request{GPUs: 1, MemPerGPU: 80}, 0, false, "80 GiB per GPU"},
		{"every GPU given to another job", resources.Request{GPUs: 1}, 2, false, "2 of this site's 2 are given to other jobs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := offer.Admit(tc.req, tc.inUse)
			if d.Allowed != tc.allow || !strings.Contains(d.Reason, tc.want) {
				t.Fatalf("Admit = %+v, want %v %q", d, tc.allow, tc.want)
			}
		})
	}
	if d := (resources.Offer{}).Admit(resources.Request{GPUs: 1}, 0); d.Allowed {
		t.Fatal("a CPU-only site admitted a GPU job")
	}
	if err := (resources.Request{MemPerGPU: 8}).Validate(); err == nil {
		t.Fatal("memory without GPUs validated")
	}
}
