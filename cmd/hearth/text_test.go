package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"

	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

func TestTermText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "optdigits-fedavg", "optdigits-fedavg"},
		{"printable unicode", "Krankenhaus Zürich 病院", "Krankenhaus Zürich 病院"},
		{"newline", "a\nb", `a\nb`},
		{"carriage return and tab", "a\rb\tc", `a\rb\tc`},
		{"ANSI clear screen", "\x1b[2J\x1b[Hok", `\x1b[2J\x1b[Hok`},
		{"C1 CSI", "a\u009b31mb", `a\u009b31mb`},
		{"DEL and NUL", "a\x7f\x00b", `a\x7f\x00b`},
		{"bidi override", "abc\u202edcba", `abc\u202edcba`},
		{"bidi isolate", "\u2066x\u2069", `\u2066x\u2069`},
		{"zero width and BOM", "a\u200bb\ufeff", `a\u200bb\ufeff`},
		{"line separator", "a\u2028b", `a\u2028b`},
		{"invalid UTF-8", "a\xff\xfeb", `a\xff\xfeb`},
		{"backslash doubled, so escapes cannot be forged", `a\nb`, `a\\nb`},
		{"private use beyond the BMP", "a\U000F0000b", `a\U000f0000b`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := termText(tt.in)
			if got != tt.want {
				t.Fatalf("termText(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, r := range got {
				if !unicode.IsPrint(r) {
					t.Fatalf("termText(%q) = %q still holds %U", tt.in, got, r)
				}
			}
		})
	}
}

// hostile is a job name or reason a participant could make the server
// relay: a newline and a fake row, a screen clear and a bidi override.
const hostile = "x\njob-666  evil  finished  5/5  admin@hearth.local  99.00%\x1b[2J\u202eevil"

func TestAdminPrintsHostileTextOnOneLine(t *testing.T) {
	job := &hearthv1.JobInfo{Id: "job-1", Name: hostile, Status: hearthv1.JobStatus_JOB_STATUS_FAILED, Rounds: 5,
		Submitter: "lead\x1b]0;title\x07", Reason: "failed:\n" + hostile,
		History: []*hearthv1.RoundSummary{{Round: 1, Missing: []string{"site-1\nsite-9"}}}}
	tests := []struct {
		name  string
		print func(w *bytes.Buffer)
		lines int
	}{
		{"list", func(w *bytes.Buffer) { printJobList(w, []*hearthv1.JobInfo{job}) }, 2},
		{"status", func(w *bytes.Buffer) { printJob(w, job) }, 4}, // job line, reason, round header, one round
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			tt.print(&out)
			text := out.String()
			if n := strings.Count(text, "\n"); n != tt.lines {
				t.Fatalf("%d lines, want %d:\n%s", n, tt.lines, text)
			}
			for _, bad := range []string{"\x1b", "\u202e", "\x07"} {
				if strings.Contains(text, bad) {
					t.Errorf("output holds %q raw:\n%q", bad, text)
				}
			}
			if !strings.Contains(text, `x\njob-666`) || !strings.Contains(text, `\x1b[2J\u202eevil`) {
				t.Errorf("the hostile name is not shown escaped:\n%s", text)
			}
		})
	}
}

func TestSafeErrorEscapesRelayedText(t *testing.T) {
	base := errors.New("server refused")
	err := safeError(fmt.Errorf("submit: %w: job %s", base, hostile))
	if strings.ContainsAny(err.Error(), "\n\x1b\u202e") {
		t.Fatalf("error text holds control characters: %q", err)
	}
	if !errors.Is(err, base) {
		t.Fatal("safeError lost the wrapped error")
	}
	if safeError(nil) != nil {
		t.Fatal("safeError(nil) is not nil")
	}
	if again := safeError(err); again != err {
		t.Fatal("safeError wrapped twice")
	}
	if err := safeError(errUsageMsg("bad")); exitCode(err) != 2 {
		t.Fatalf("exit code of an escaped usage error %d, want 2", exitCode(err))
	}
}

// TestAdminShowsASwarmJob: a swarm job's status names each round's
// aggregator and failovers, the cross-site table and where the model is,
// with an aggregator's hostile name escaped.
func TestAdminShowsASwarmJob(t *testing.T) {
	info := &hearthv1.JobInfo{Id: "job-1", Name: "swarm", Workflow: "swarm", Status: hearthv1.JobStatus_JOB_STATUS_FINISHED, Rounds: 1,
		History:       []*hearthv1.RoundSummary{{Round: 1, Answered: []string{"site-1", "site-2"}, Aggregator: "site-2\x1b[2J", Attempts: 2, Failovers: []string{"site-1: gone"}}},
		ModelLocation: "at the sites: site-1, site-2",
		CrossSite: []*hearthv1.CrossSiteMetrics{{Model: "global", Site: "site-1", Metrics: &hearthv1.Metrics{Samples: 9, Accuracy: 0.9}},
			{Model: "site-2", Site: "site-1", Metrics: &hearthv1.Metrics{Samples: 9, Accuracy: 0.8}}}}
	var out bytes.Buffer
	printJob(&out, info)
	text := out.String()
	for _, want := range []string{"AGGREGATOR", `site-2\x1b[2J`, "site-1: gone", "90.00%", "80.00%", "model: at the sites: site-1, site-2"} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\x1b") {
		t.Errorf("an escape sequence printed raw:\n%q", text)
	}
}
