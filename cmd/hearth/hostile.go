//go:build hostile

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/hejob"
	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/he"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/participant"
	"github.com/hearthfl/hearth/bus/envelope"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/bus/stream"
	"github.com/hearthfl/hearth/plugins/attest"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// This file is built only with `-tags hostile`, for the integration tests:
// a site built so plays a compromised site that holds a valid key and
// lies. No release build contains it. The attack is named by the job: a
// job whose name is "<anything>-<attack>-<anything>" gets that attack from
// every site of this build (a job that names none gets honest answers):
//
//	claim     commits to and reports 10^12 training samples
//	signflip  sends global - (update - global): its training, reversed
//	boost     sends global + 30 (update - global)
//	huge      sends 1e30 in every parameter (finite, overflows a float32 sum)
//	shape     reports a data shape of one feature more than it has
//	metrics   reports a validation accuracy of 7 over 10^9 samples
//	testclaim commits to 10^12 test samples and reports a perfect test score on them
//	swarmclaim in a swarm round another site aggregates, sends every other holder
//	          a model of zeros for the round, as if it aggregated it, and an
//	          update, as if they did
//	hereplay  under homomorphic encryption, sends its first round's signed
//	          update commitment again in every later round
//	heweight  under homomorphic encryption, commits at three times its
//	          weight, validly signed (the ciphertext as computed)
//	hequit    stops answering training tasks from round 3 on (a site gone
//	          offline before it commits to anything)
//
// A site of this build with HEARTH_HOSTILE_SLOW_CAST set to a duration
// takes each chunk of a cast it receives (the round's model, as a swarm
// holder) only after that long: a holder that paces the cast on purpose.
//
// An aggregation host of this build with HEARTH_HOSTILE_EVIDENCE_AFTER=N
// set answers its first N evidence requests honestly and every later one
// with evidence of another launch measurement, as if another guest had
// been started in its place.
//
// A server of this build plays a compromised server that taps the hub: with
// HEARTH_HOSTILE_TAP set to a file, it subscribes to every Hearth subject
// with its own connection (which no permission restricts) and appends each
// message there: uint32be(len(subject)) subject uint32be(len(data)) data.
//
// hostileStreams is the site's streams, which HEARTH_HOSTILE_SLOW_CAST
// slows down as a cast's recipient.
func hostileStreams(m *stream.Manager) participant.Streams {
	d, err := time.ParseDuration(os.Getenv("HEARTH_HOSTILE_SLOW_CAST"))
	if err != nil || d <= 0 {
		return m
	}
	return slowCast{Manager: m, delay: d}
}

// slowCast receives casts a chunk per delay.
type slowCast struct {
	*stream.Manager
	delay time.Duration
}

func (s slowCast) Receive(ctx context.Context, sender string, man *hearthv1.StreamManifest, sink stream.Sink) (stream.Stats, error) {
	if !man.GetCast() {
		return s.Manager.Receive(ctx, sender, man, sink)
	}
	return s.Manager.Receive(ctx, sender, man, stream.SinkFunc(func(i int, off int64, data []byte) error {
		time.Sleep(s.delay)
		return sink.WriteChunk(i, off, data)
	}))
}

// hostileSigner is the site's own signer, which heweight signs its lie with.
var hostileSigner *envelope.Signer

func hostileSigns(s *envelope.Signer) { hostileSigner = s }

// firstEncrypted keeps each job's first encrypted update, for hereplay.
var firstEncrypted sync.Map

// hostileSite is the participant's Outgoing hook in this build.
func hostileSite(m *job.Manifest, global *model.Model, answer proto.Message) error {
	attack := ""
	if parts := strings.Split(m.Name, "-"); len(parts) >= 2 {
		attack = parts[1]
	}
	switch a := answer.(type) {
	case *hearthv1.JobJoined:
		switch attack {
		case "claim":
			a.TrainSamples = 1e12
		case "shape":
			a.Features++
		case "testclaim":
			a.TestSamples = 1e12
		}
	case *hearthv1.EvaluateResult:
		if attack == "testclaim" {
			a.Test = &hearthv1.Metrics{Samples: 1e12, Accuracy: 1, Loss: 0}
		}
	case *hearthv1.TrainResult:
		switch attack {
		case "claim":
			a.Samples = 1e12
		case "metrics":
			a.Validation = &hearthv1.Metrics{Samples: 1e9, Loss: 0, Accuracy: 7}
		case "hequit":
			if a.Round >= 3 {
				return fmt.Errorf("hostile: this site answers no more training tasks")
			}
		case "hereplay":
			if first, seen := firstEncrypted.LoadOrStore(a.JobId, a.Encrypted); seen {
				a.Encrypted = first.(*hearthv1.HESigned)
			}
		case "heweight":
			if a.Encrypted == nil || len(a.Encrypted.Payload) < 8 || hostileSigner == nil {
				return nil
			}
			w := math.Float64frombits(binary.BigEndian.Uint64(a.Encrypted.Payload)) // the commitment's weight
			payload := append(binary.BigEndian.AppendUint64(nil, math.Float64bits(min(1, 3*w))), a.Encrypted.Payload[8:]...)
			var setup he.SetupID
			copy(setup[:], a.Encrypted.Setup)
			st, err := hejob.Sign(hostileSigner, a.JobId, hejob.KindUpdateCommitment, a.Round, setup, payload)
			if err != nil {
				return fmt.Errorf("hostile: %w", err)
			}
			a.Encrypted = st
		case "signflip", "boost", "huge":
			if a.Update == nil {
				return nil // a streamed update: offered as computed
			}
			u, err := job.FromWire(a.Update)
			if err != nil {
				return fmt.Errorf("hostile: %w", err)
			}
			for i, t := range u.Tensors {
				g := global.Tensors[i].Data
				for k := range t.Data {
					switch attack {
					case "signflip":
						t.Data[k] = g[k] - (t.Data[k] - g[k])
					case "boost":
						t.Data[k] = g[k] + 30*(t.Data[k]-g[k])
					case "huge":
						t.Data[k] = 1e30
					}
				}
			}
			a.Update = job.ToWire(u)
		}
	}
	return nil
}

// hostileSwarm is the participant's OnSwarmTask hook in this build.
func hostileSwarm(m *job.Manifest, task *hearthv1.SwarmTask, basis *model.Model, send func(to string, m proto.Message, oneWay bool)) {
	if parts := strings.Split(m.Name, "-"); len(parts) < 2 || parts[1] != "swarmclaim" {
		return
	}
	zeros := basis.Clone()
	for _, t := range zeros.Tensors {
		clear(t.Data)
	}
	wire := job.ToWire(zeros)
	for _, h := range task.Holders {
		if h == task.Aggregator {
			continue
		}
		send(h, &hearthv1.SwarmModel{JobId: task.JobId, Round: task.Round, Attempt: task.Attempt, Global: wire}, false)
		send(h, &hearthv1.SwarmUpdate{JobId: task.JobId, Round: task.Round, Attempt: task.Attempt, Update: wire, Samples: 1000}, false)
	}
	// And the round's real aggregator, before this site's own update, one
	// of another layout (its first tensor renamed): one-way, which no
	// member sends, and as a request.
	if len(zeros.Tensors) > 0 {
		zeros.Tensors[0].Name += "-hostile"
		misshapen := &hearthv1.SwarmUpdate{JobId: task.JobId, Round: task.Round, Attempt: task.Attempt, Update: job.ToWire(zeros), Samples: 1000}
		send(task.Aggregator, misshapen, true)
		send(task.Aggregator, misshapen, false)
	}
}

// hostileServer taps the hub in this build (see above).
func hostileServer(n *node.Node, getenv func(string) string) (func(), error) {
	path := getenv("HEARTH_HOSTILE_TAP")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("hostile tap: %w", err)
	}
	nc, err := n.Hub.Connect(nats.Name("hostile-tap"))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("hostile tap: %w", err)
	}
	var mu sync.Mutex
	sub, err := nc.Subscribe("hearth.>", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		var b []byte
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.Subject)))
		b = append(b, m.Subject...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.Data)))
		f.Write(append(b, m.Data...))
	})
	if err == nil {
		err = sub.SetPendingLimits(-1, -1)
	}
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		f.Close()
		return nil, fmt.Errorf("hostile tap: %w", err)
	}
	n.Log().Warn("hostile build: tapping every message on the hub", "file", path)
	return func() {
		nc.Drain()
		mu.Lock()
		f.Close()
		mu.Unlock()
	}, nil
}

// hostileEvidence changes the host's evidence after
// HEARTH_HOSTILE_EVIDENCE_AFTER requests.
func hostileEvidence(e participant.Evidence) participant.Evidence {
	after, err := strconv.Atoi(os.Getenv("HEARTH_HOSTILE_EVIDENCE_AFTER"))
	h, ok := e.(*hostCollectors)
	if err != nil || after < 0 || !ok || h.snp == nil {
		return e
	}
	opts := attest.PocSNP()
	opts.Measurement[0] ^= 0xff
	other, err := attest.SimulatedSNP(opts)
	if err != nil {
		panic(err)
	}
	return &changingEvidence{honest: h, changed: &hostCollectors{snp: other, gpu: h.gpu, simulated: true}, after: int64(after)}
}

type changingEvidence struct {
	honest, changed participant.Evidence
	after           int64
	n               atomic.Int64
}

func (c *changingEvidence) Evidence(ctx context.Context, key, nonce []byte) (*hearthv1.AttestationEvidence, error) {
	if c.n.Add(1) > c.after {
		return c.changed.Evidence(ctx, key, nonce)
	}
	return c.honest.Evidence(ctx, key, nonce)
}
