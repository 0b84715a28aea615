package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/bus/bridge"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Requester sends a signed request and waits for the answer; *bridge.Bridge
// is one.
type Requester interface {
	Request(ctx context.Context, to string, msg proto.Message) (*bridge.Reply, error)
}

// Client is the admin console's side of the coordinator: every call is a
// signed request to the server, authorized there and audited.
type Client struct {
	Bus    Requester
	Server string // the server's participant name
	// SignJob signs a manifest with the admin's key (job.Sign over the
	// admin's kit); the key itself stays with the caller.
	SignJob func(manifest []byte) (*hearthv1.SignedJob, error)
	Timeout time.Duration // per call; default 30s
}

// Call sends req to the server and decodes its answer into out; a refusal
// by the server comes back as an error naming its code and reason.
func (c *Client) Call(ctx context.Context, req, out proto.Message) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := c.Bus.Request(ctx, c.Server, req)
	if err != nil {
		var remote *bridge.RemoteError
		if errors.As(err, &remote) {
			return fmt.Errorf("server: %s: %s", remote.Code, remote.Message)
		}
		return err
	}
	if proto.MessageName(r.Msg) != proto.MessageName(out) {
		return fmt.Errorf("server answered %s, want %s", proto.MessageName(r.Msg), proto.MessageName(out))
	}
	proto.Merge(out, r.Msg)
	return nil
}

// Submit signs the manifest in dir with the admin's key and submits it.
func (c *Client) Submit(ctx context.Context, dir string) (string, error) {
	manifest, err := os.ReadFile(filepath.Join(dir, job.ManifestFile))
	if err != nil {
		return "", fmt.Errorf("job folder: %w", err)
	}
	if c.SignJob == nil {
		return "", errors.New("admin console: no job signer")
	}
	signed, err := c.SignJob(manifest)
	if err != nil {
		return "", err
	}
	return c.SubmitSigned(ctx, signed)
}

// SubmitSigned submits an already signed job.
func (c *Client) SubmitSigned(ctx context.Context, signed *hearthv1.SignedJob) (string, error) {
	var acc hearthv1.JobAccepted
	if err := c.Call(ctx, &hearthv1.SubmitJob{Job: signed}, &acc); err != nil {
		return "", err
	}
	return acc.JobId, nil
}

// Status is a job's current state.
func (c *Client) Status(ctx context.Context, id string) (*hearthv1.JobInfo, error) {
	var info hearthv1.JobInfo
	return &info, c.Call(ctx, &hearthv1.GetJob{JobId: id}, &info)
}

// Follow polls a job's status every `every`, calling round for each round
// as it closes, until the job has ended or ctx is done. The first request
// failing fails Follow; later ones may fail for up to followPatience in a
// row (a server busy moving gigabytes can answer late).
func (c *Client) Follow(ctx context.Context, id string, every time.Duration, round func(*hearthv1.RoundSummary)) (*hearthv1.JobInfo, error) {
	seen := 0
	t := time.NewTicker(every)
	defer t.Stop()
	var last *hearthv1.JobInfo
	var failingSince time.Time
	for {
		info, err := c.Status(ctx, id)
		switch {
		case err != nil && last == nil:
			return nil, err // no such job, forbidden, no server: at once
		case err != nil && failingSince.IsZero():
			failingSince = time.Now()
			fallthrough
		case err != nil:
			// A busy server (a round moving gigabytes) may answer late:
			// keep following until it has failed for followPatience.
			if time.Since(failingSince) > followPatience {
				return last, fmt.Errorf("job %s: status failing for %v: %w", id, followPatience, err)
			}
			info = last
		default:
			last, failingSince = info, time.Time{}
		}
		for ; seen < len(info.History); seen++ {
			if round != nil {
				round(info.History[seen])
			}
		}
		if Ended(info.Status) {
			return info, nil
		}
		select {
		case <-ctx.Done():
			return info, fmt.Errorf("job %s still %s: %w", id, info.Status, ctx.Err())
		case <-t.C:
		}
	}
}

// followPatience is how long Follow keeps trying while the server's status
// answers fail, once it has had one.
const followPatience = 30 * time.Second

// Ended reports whether a job in status s has ended.
func Ended(s hearthv1.JobStatus) bool {
	return s != hearthv1.JobStatus_JOB_STATUS_SUBMITTED && s != hearthv1.JobStatus_JOB_STATUS_RUNNING
}

// Download fetches a job's result and writes model.pb (the final global
// model, protobuf hearth.v1.Model) and metrics.json into dir.
func (c *Client) Download(ctx context.Context, id, dir string) (*hearthv1.JobResult, error) {
	var res hearthv1.JobResult
	if err := c.Call(ctx, &hearthv1.DownloadJob{JobId: id}, &res); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if res.Model != nil {
		data, err := proto.Marshal(res.Model)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "model.pb"), data, 0o644); err != nil {
			return nil, err
		}
	}
	metrics, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(res.Info)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "metrics.json"), append(metrics, '\n'), 0o644); err != nil {
		return nil, err
	}
	return &res, nil
}
