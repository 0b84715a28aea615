package coordinator

import (
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/actors/siteanswer"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/pki"
	"github.com/hearthfl/hearth/bus/stream"
	"github.com/hearthfl/hearth/plugins/authn"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// Requester sends a signed request and waits for the answer; *bridge.Bridge
// is one.
type Requester interface {
	Request(ctx context.Context, to string, msg proto.Message) (*bridge.Reply, error)
}

// Receiver pulls a stream offered to this console; *stream.Manager is one.
type Receiver interface {
	Receive(ctx context.Context, sender string, man *hearthv1.StreamManifest, sink stream.Sink) (stream.Stats, error)
}

// Client is the admin console's side of the coordinator: every call is a
// signed request to the server, authorized there and audited.
type Client struct {
	Bus     Requester
	Streams Receiver // pulls large models (Download); nil: none
	Server  string   // the server's participant name
	// SignJob signs a manifest with the admin's key (job.Sign over the
	// admin's kit); the key itself stays with the caller.
	SignJob func(manifest []byte) (*hearthv1.SignedJob, error)
	// SignPreflight signs a manifest for a dry run (job.SignPreflight),
	// which no site would run.
	SignPreflight func(manifest []byte) (*hearthv1.SignedJob, error)
	// Credentials, if set, makes the admin's sealed per-site credentials
	// (see actors/credential)
	// for a signed job and a command (submit, or a dry run's preflight);
	// Submit and Preflight attach them.
	Credentials func(ctx context.Context, signed *hearthv1.SignedJob, cmd authn.Command) ([]*hearthv1.SealedCredential, error)
	Timeout     time.Duration // per call; default 30s
	// FollowPatience is how long Follow keeps polling while status
	// requests fail, once one has answered; default DefaultFollowPatience.
	FollowPatience time.Duration
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
			return fmt.Errorf("server: %s: %s", bridge.CodeName(remote.Code), remote.Message)
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
	signed, creds, err := c.sign(ctx, dir, authn.CommandSubmit)
	if err != nil {
		return "", err
	}
	return c.SubmitSigned(ctx, signed, creds...)
}

// PreflightRow is one site's pre-flight answer as the console checked it:
// Signed when the site signed it (for this job), else the server's word
// (a site it could not ask) or, with Problem, an answer that did not
// verify.
type PreflightRow struct {
	Answer  *hearthv1.PreflightAnswer
	Signed  bool
	Problem string
}

// Preflight signs the manifest in dir and asks every site it deploys to
// whether it would run it; nothing runs. Each site's answer is checked
// against trust: the server relays them and cannot change one.
func (c *Client) Preflight(ctx context.Context, dir string, trust *pki.Trust) ([]PreflightRow, error) {
	signed, creds, err := c.sign(ctx, dir, authn.CommandPreflight)
	if err != nil {
		return nil, err
	}
	var rep hearthv1.PreflightReport
	if err := c.Call(ctx, &hearthv1.SubmitJob{Job: signed, Credentials: creds, DryRun: true}, &rep); err != nil {
		return nil, err
	}
	var rows []PreflightRow
	hash, now := job.Hash(signed), time.Now()
	for _, sa := range rep.Signed {
		a, err := siteanswer.VerifyPreflight(sa, trust, hash, now)
		if err != nil {
			rows = append(rows, PreflightRow{Answer: &hearthv1.PreflightAnswer{Site: "?"}, Problem: err.Error()})
			continue
		}
		rows = append(rows, PreflightRow{Answer: a, Signed: true})
	}
	for _, a := range rep.Sites {
		rows = append(rows, PreflightRow{Answer: a})
	}
	slices.SortFunc(rows, func(a, b PreflightRow) int { return strings.Compare(a.Answer.Site, b.Answer.Site) })
	return rows, nil
}

// sign signs the job in dir and seals the admin's credentials for cmd.
func (c *Client) sign(ctx context.Context, dir string, cmd authn.Command) (*hearthv1.SignedJob, []*hearthv1.SealedCredential, error) {
	manifest, err := os.ReadFile(filepath.Join(dir, job.ManifestFile))
	if err != nil {
		return nil, nil, fmt.Errorf("job folder: %w", err)
	}
	sign := c.SignJob
	if cmd == authn.CommandPreflight {
		sign = c.SignPreflight
	}
	if sign == nil {
		return nil, nil, errors.New("admin console: no job signer")
	}
	signed, err := sign(manifest)
	if err != nil {
		return nil, nil, err
	}
	if signed.Code, err = jobCode(dir, manifest); err != nil {
		return nil, nil, err
	}
	var creds []*hearthv1.SealedCredential
	if c.Credentials != nil {
		if creds, err = c.Credentials(ctx, signed, cmd); err != nil {
			return nil, nil, err
		}
	}
	return signed, creds, nil
}

// jobCode reads the code a manifest pins from the job's folder, and
// refuses it unless it is what the manifest pins (its SHA-256, printed).
func jobCode(dir string, manifest []byte) ([]*hearthv1.JobFile, error) {
	m, err := job.ParseManifest(manifest)
	if err != nil || !m.Trainer.Custom() {
		return nil, err
	}
	path := filepath.Join(dir, m.Trainer.Script)
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("job folder: the manifest's script: %w", err)
	}
	if !info.Mode().IsRegular() || info.Size() > job.MaxCodeBytes {
		return nil, fmt.Errorf("job folder: %s: want a regular file of at most %d bytes", m.Trainer.Script, job.MaxCodeBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("job folder: %w", err)
	}
	code := []*hearthv1.JobFile{{Name: m.Trainer.Script, Data: data}}
	if err := job.CheckCode(m, code); err != nil {
		return nil, fmt.Errorf("%w (pin it in the manifest: trainer.script_sha256)", err)
	}
	return code, nil
}

// SubmitSigned submits an already signed job, with the credentials sealed
// for the sites that authenticate their admins.
func (c *Client) SubmitSigned(ctx context.Context, signed *hearthv1.SignedJob, creds ...*hearthv1.SealedCredential) (string, error) {
	var acc hearthv1.JobAccepted
	if err := c.Call(ctx, &hearthv1.SubmitJob{Job: signed, Credentials: creds}, &acc); err != nil {
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
// failing fails Follow; later ones may fail for up to FollowPatience in a
// row (a server busy moving gigabytes can answer late).
func (c *Client) Follow(ctx context.Context, id string, every time.Duration, round func(*hearthv1.RoundSummary)) (*hearthv1.JobInfo, error) {
	seen := 0
	t := time.NewTicker(every)
	defer t.Stop()
	var last *hearthv1.JobInfo
	var failingSince time.Time
	patience := c.FollowPatience
	if patience <= 0 {
		patience = DefaultFollowPatience
	}
	for {
		info, err := c.Status(ctx, id)
		if err == nil {
			last, failingSince = info, time.Time{}
		} else {
			if last == nil {
				return nil, err // no such job, forbidden, no server: at once
			}
			// A busy server (a round moving gigabytes) may answer late:
			// keep following until it has failed for FollowPatience.
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) > patience {
				return last, fmt.Errorf("job %s: status failing for %v: %w", id, patience, err)
			}
			info = last
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

// DefaultFollowPatience is Client.FollowPatience's default.
const DefaultFollowPatience = 30 * time.Second

// Ended reports whether a job in status s has ended.
func Ended(s hearthv1.JobStatus) bool {
	return s != hearthv1.JobStatus_JOB_STATUS_SUBMITTED && s != hearthv1.JobStatus_JOB_STATUS_RUNNING
}

// Files Download writes.
const (
	ModelFile       = "model.pb"          // the global model, protobuf hearth.v1.Model
	LargeModelFile  = "model.f32"         // a large global model: float32 values, little-endian
	LargeLayoutFile = "model_layout.json" // the tensors of model.f32, in order
	MetricsFile     = "metrics.json"      // the job's state and per-round metrics
)

// Download fetches a job's result into dir: its latest global model, as
// ModelFile, or for a model too large for one envelope as LargeModelFile
// with LargeLayoutFile (pulled as a stream, each chunk checked against the
// server's signed manifest), and MetricsFile.
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
		if err := os.WriteFile(filepath.Join(dir, ModelFile), data, 0o644); err != nil {
			return nil, err
		}
	}
	if res.ModelStream != nil {
		if err := c.pullModel(ctx, &res, dir); err != nil {
			return nil, fmt.Errorf("job %s: model: %w", id, err)
		}
	}
	metrics, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(res.Info)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, MetricsFile), append(metrics, '\n'), 0o644); err != nil {
		return nil, err
	}
	return &res, nil
}

// pullModel receives a large model's stream into LargeModelFile and writes
// its layout beside it.
func (c *Client) pullModel(ctx context.Context, res *hearthv1.JobResult, dir string) error {
	if c.Streams == nil {
		return errors.New("the server offers the model as a stream, and this console receives none")
	}
	layout, size, err := job.LayoutFromWire(res.Layout)
	if err != nil {
		return err
	}
	if size != res.ModelStream.GetTotalBytes() {
		return fmt.Errorf("a %d-byte stream for a layout of %d bytes", res.ModelStream.GetTotalBytes(), size)
	}
	path := filepath.Join(dir, LargeModelFile)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = c.Streams.Receive(ctx, c.Server, res.ModelStream, stream.SinkFunc(func(_ int, offset int64, data []byte) error {
		_, err := f.WriteAt(data, offset)
		return err
	}))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	type tensor struct {
		Name  string `json:"name"`
		Shape []int  `json:"shape"`
	}
	doc := struct {
		Dtype   string   `json:"dtype"`
		Order   string   `json:"byte_order"`
		Tensors []tensor `json:"tensors"`
	}{Dtype: "float32", Order: "little"}
	for _, t := range layout {
		doc.Tensors = append(doc.Tensors, tensor{Name: t.Name, Shape: t.Shape})
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, LargeLayoutFile), append(data, '\n'), 0o644)
}

// CredentialKeys asks the server for the credential keys of sites (every
// site's when none is named) and verifies each binding against trust at
// now: only a key a site's certificate signed for credentials is returned.
// missing says why each other site gave none (not connected, authenticates
// nobody, a binding that does not verify).
func (c *Client) CredentialKeys(ctx context.Context, trust *pki.Trust, sites []string, now time.Time) (keys map[string]*ecdh.PublicKey, missing map[string]string, err error) {
	var got hearthv1.CredentialKeys
	if err := c.Call(ctx, &hearthv1.GetCredentialKeys{Sites: sites}, &got); err != nil {
		return nil, nil, err
	}
	keys, missing = map[string]*ecdh.PublicKey{}, map[string]string{}
	for s, why := range got.Missing {
		missing[s] = why
	}
	for _, k := range got.Keys {
		site := k.GetSite()
		if len(sites) > 0 && !slices.Contains(sites, site) {
			continue
		}
		pub, err := sealing.VerifyKey(k, trust, sealing.Credentials, site, now)
		if err != nil {
			missing[site] = err.Error()
			continue
		}
		keys[site] = pub
	}
	return keys, missing, nil
}

// List is the newest jobs, without their round histories (Status has
// them).
func (c *Client) List(ctx context.Context) (*hearthv1.JobList, error) {
	var list hearthv1.JobList
	return &list, c.Call(ctx, &hearthv1.ListJobs{}, &list)
}

// Connections asks the server which of the project's sites and
// aggregation hosts have their leaf connection up now.
func (c *Client) Connections(ctx context.Context) (*hearthv1.Connections, error) {
	var out hearthv1.Connections
	return &out, c.Call(ctx, &hearthv1.GetConnections{}, &out)
}
