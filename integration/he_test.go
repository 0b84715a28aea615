package integration

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// TestHomomorphicEncryption: FedAvg under threshold homomorphic encryption
// among five site processes, site-5 of the hostile build. The sites make a
// key whose secret no one holds, the server adds their encrypted updates
// and three of them decrypt each round's sum. The job learns as the same
// job in the clear does; what the server sees on the hub (its hostile
// build taps it with its own connection) holds no update in the clear
// (commitments, then ciphertexts) and only sealed threshold shares; and site-5's lies, validly signed, are
// refused and audited while the others go on.
func TestHomomorphicEncryption(t *testing.T) {
	tap := filepath.Join(t.TempDir(), "tap.bin")
	lp := startLearningWith(t, projectSpec{provisioned: 5, running: 5, hostile: map[string]bool{"site-5": true}, tap: tap})
	sites := []string{"site-1", "site-2", "site-3", "site-4", "site-5"}
	run := func(t *testing.T, attack string, he bool) *hearthv1.JobInfo {
		t.Helper()
		manifest := poisonJob(attack, "")
		if he {
			manifest += "he: {}\n"
		}
		info := lp.waitEnd(t, lp.submit(t, manifest), 120*time.Second)
		if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED {
			t.Fatalf("job %s: %s", info.Status, info.Reason)
		}
		return info
	}

	var honestID string
	t.Run("learns as the same job in the clear", func(t *testing.T) {
		plain := run(t, "honest", false)
		info := run(t, "honest", true)
		honestID = info.Id
		for _, r := range info.History {
			if len(r.Answered) != 5 {
				t.Fatalf("round %d: %v answered, %v missing", r.Round, r.Answered, r.Missing)
			}
		}
		acc, plainAcc := info.Test.GetAccuracy(), plain.Test.GetAccuracy()
		if acc < 0.93 || math.Abs(acc-plainAcc) > 0.002 {
			t.Fatalf("test accuracy %.4f under encryption, %.4f in the clear", acc, plainAcc)
		}
		keyed := auditOf(t, lp.project, "server", func(r auditor.Record) bool { return r.Action == "he.keyed" && r.JobID == info.Id })
		decrypted := auditOf(t, lp.project, "server", func(r auditor.Record) bool { return r.Action == "he.decrypted" && r.JobID == info.Id })
		if len(keyed) != 1 || keyed[0].Detail["threshold"] != "3" || len(decrypted) != len(info.History) {
			t.Fatalf("server audit: %d keyed (%v), %d rounds decrypted of %d", len(keyed), keyed, len(decrypted), len(info.History))
		}
		shares := 0
		for _, s := range sites {
			shares += len(auditOf(t, lp.project, s, func(r auditor.Record) bool { return r.Action == "he.decryption_share" && r.JobID == info.Id }))
		}
		if shares != 3*len(info.History) {
			t.Fatalf("the sites audit %d decryption shares for %d rounds at threshold 3", shares, len(info.History))
		}
		last := info.History[len(info.History)-1]
		t.Logf("under encryption: test accuracy %.2f%% (in the clear %.2f%%), last round %v and %d bytes (in the clear %v and %d bytes)",
			100*acc, 100*plainAcc, time.Duration(last.DurationMicros)*time.Microsecond, last.BytesMoved,
			time.Duration(plain.History[len(plain.History)-1].DurationMicros)*time.Microsecond, plain.History[len(plain.History)-1].BytesMoved)
	})

	for _, tc := range []struct{ name, attack, reason string }{
		{"a replayed update is refused", "hereplay", "for round 1, not"},
		{"an inflated weight is refused", "heweight", "encrypted at weight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := run(t, tc.attack, true)
			if acc := info.Test.GetAccuracy(); acc < 0.9 {
				t.Fatalf("test accuracy %.4f", acc)
			}
			refused := auditOf(t, lp.project, "server", func(r auditor.Record) bool {
				return r.Action == "result.refused" && r.JobID == info.Id && r.Peer == "site-5" && strings.Contains(r.Detail["reason"], tc.reason)
			})
			for _, r := range info.History {
				wantOut := r.Round > 1 || tc.attack == "heweight"
				if slices.Contains(r.Answered, "site-5") == wantOut || len(r.Answered) < 4 {
					t.Fatalf("round %d: answered %v", r.Round, r.Answered)
				}
			}
			want := len(info.History)
			if tc.attack == "hereplay" {
				want--
			}
			if len(refused) != want {
				t.Fatalf("%d refusals of site-5 audited (%q), want %d", len(refused), tc.reason, want)
			}
		})
	}

	lp.server.Stop(10 * time.Second) // the tap file is complete
	data, err := os.ReadFile(tap)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for len(data) > 0 && honestID != "" {
		subject, body := tapRecord(t, &data)
		var env hearthv1.Envelope
		if proto.Unmarshal(body, &env) != nil {
			continue
		}
		var h hearthv1.Header
		if err := proto.Unmarshal(env.Header, &h); err != nil {
			t.Fatal(err)
		}
		if h.JobId != honestID {
			continue
		}
		switch h.MessageType {
		case "hearth.v1.TrainResult":
			var res hearthv1.TrainResult
			if err := proto.Unmarshal(env.Body, &res); err != nil {
				t.Fatal(err)
			}
			if res.Update != nil || res.UpdateStream != nil || res.GetEncrypted().GetKind() != "update_commitment" {
				t.Fatalf("a TrainResult on %s with an update in the clear, or without its commitment", subject)
			}
		case "hearth.v1.HERevealed":
			var rev hearthv1.HERevealed
			if err := proto.Unmarshal(env.Body, &rev); err != nil {
				t.Fatal(err)
			}
			if len(rev.GetUpdate().GetPayload()) < 60_000 {
				t.Fatalf("a revealed update on %s of %d bytes: not a ciphertext", subject, len(rev.GetUpdate().GetPayload()))
			}
		case "hearth.v1.HEThresholdShare":
			var sb hearthv1.SealedBody
			if h.BodyEncoding != hearthv1.BodyEncoding_BODY_ENCODING_SEALED || proto.Unmarshal(env.Body, &sb) != nil || !strings.HasPrefix(subject, "hearth.peer.") {
				t.Fatalf("a threshold share on %s, encoding %s: not sealed site to site", subject, h.BodyEncoding)
			}
		}
		seen[h.MessageType]++
	}
	if honestID != "" && (seen["hearth.v1.TrainResult"] < 5 || seen["hearth.v1.HERevealed"] != seen["hearth.v1.TrainResult"] || seen["hearth.v1.HEThresholdShare"] != 5*4) {
		t.Fatalf("the tap saw %v of the job: not its traffic", seen)
	}
	t.Logf("the tap saw of the encrypted job: %v", seen)
}

// TestHomomorphicEncryptionGoesOn: a site that goes offline mid-job (the
// hostile build's site-4 answers no training task from round 3 on, before
// it commits to anything) leaves the rest decrypting without it, the
// threshold (3 of 4) still met, under the key made at the start.
func TestHomomorphicEncryptionGoesOn(t *testing.T) {
	lp := startLearningWith(t, projectSpec{provisioned: 4, running: 4, hostile: map[string]bool{"site-4": true}})
	id := lp.submit(t, poisonJob("hequit", "")+"he: {}\n")
	info := lp.waitEnd(t, id, 120*time.Second)
	if info.Status != hearthv1.JobStatus_JOB_STATUS_FINISHED || info.CompletedRounds != int64(len(info.History)) {
		t.Fatalf("job %s after %d rounds: %s", info.Status, info.CompletedRounds, info.Reason)
	}
	for _, r := range info.History {
		want := []string{"site-1", "site-2", "site-3", "site-4"}
		if r.Round >= 3 {
			want = want[:3]
		}
		if !slices.Equal(r.Answered, want) {
			t.Fatalf("round %d answered %v, missing %v", r.Round, r.Answered, r.Missing)
		}
	}
	keyed := auditOf(t, lp.project, "server", func(r auditor.Record) bool { return r.Action == "he.keyed" && r.JobID == id })
	decrypted := auditOf(t, lp.project, "server", func(r auditor.Record) bool { return r.Action == "he.decrypted" && r.JobID == id })
	if len(keyed) != 1 || keyed[0].Detail["parties"] != "site-1,site-2,site-3,site-4" || keyed[0].Detail["threshold"] != "3" || len(decrypted) != len(info.History) {
		t.Fatalf("keys made: %+v; %d of %d rounds decrypted", keyed, len(decrypted), len(info.History))
	}
	if acc := info.Test.GetAccuracy(); acc < 0.9 {
		t.Fatalf("test accuracy %.4f", acc)
	}
	t.Logf("site-4 offline from round 3; %d rounds decrypted by 3 of 4, test accuracy %.2f%%", len(decrypted), 100*info.Test.GetAccuracy())
}
