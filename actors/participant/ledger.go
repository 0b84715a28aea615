package participant

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Ledger is a site's record of the signed jobs it has taken part in: each
// signed job's nonce with the job id it ran under. A site runs a signed job
// under one id only, so a compromised server cannot replay an old signed
// job (under a new id, with a global model of its choosing); a server
// resuming the same job after a restart keeps its id and is let through,
// until the job ended here: then it is never joined again.
//
// The ledger is an append-only file of JSON lines, fsynced before a join is
// acknowledged. It grows by two short lines a job and is read once at
// start; nothing is dropped from it.
type Ledger struct {
	mu    sync.Mutex
	path  string
	runs  map[string]string  // nonce -> job id
	roles map[string]string  // nonce -> the role the submitter was admitted with
	spent map[string][]Spend // nonce -> what the job's releases spent here, in order
	ended map[string]bool    // nonces whose job ended here
	// released: by nonce, the digests of the global models an encrypted
	// update was released from (jobs under homomorphic encryption).
	released map[string]map[string]bool
	f        *os.File
}

// ErrReplayedJob is returned when a signed job's nonce already ran under
// another job id.
var ErrReplayedJob = errors.New("signed job already ran here")

// maxLedgerLine bounds a ledger line as it is read back.
const maxLedgerLine = 4096

type ledgerEntry struct {
	Nonce    string    `json:"nonce"`
	Job      string    `json:"job"`
	Joined   time.Time `json:"joined,omitzero"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Ended    bool      `json:"ended,omitempty"` // the job ended here: it never runs again
	// Role is the role the site admitted the submitter with: their
	// certificate's, or the one its authentication mapped them to, which a
	// resumed job is decided on again.
	Role string `json:"role,omitempty"`
	// Spent is one release's privacy cost in the job, recorded before the
	// release leaves the site.
	Spent *Spend `json:"spent,omitempty"`
	// ReleasedFrom is the digest (hex) of a global model an encrypted
	// update was released from, recorded before it leaves the site.
	ReleasedFrom string `json:"released_from,omitempty"`
}

// Spend is what one release of a job's update cost in privacy here: a
// Gaussian mechanism for the site's RDP accountant (DP-SGD's round, a
// gaussian filter), or pure ε (an SVT filter).
type Spend struct {
	SamplingRate    float64 `json:"q,omitempty"`
	NoiseMultiplier float64 `json:"sigma,omitempty"`
	Steps           int64   `json:"steps,omitempty"`
	Pure            float64 `json:"pure_epsilon,omitempty"`
}

// OpenLedger opens (creating if needed) the ledger file at path.
func OpenLedger(path string) (*Ledger, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("job ledger: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("job ledger: %w", err)
	}
	l := &Ledger{path: path, runs: map[string]string{}, roles: map[string]string{}, spent: map[string][]Spend{}, ended: map[string]bool{},
		released: map[string]map[string]bool{}, f: f}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, maxLedgerLine), maxLedgerLine)
	for n := 1; sc.Scan(); n++ {
		var e ledgerEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Nonce == "" || e.Job == "" {
			f.Close()
			return nil, fmt.Errorf("job ledger %s: line %d is not an entry: %v", path, n, err)
		}
		if e.Spent != nil {
			l.spent[e.Nonce] = append(l.spent[e.Nonce], *e.Spent)
			continue
		}
		if e.ReleasedFrom != "" {
			l.markReleased(e.Nonce, e.ReleasedFrom)
			continue
		}
		l.runs[e.Nonce] = e.Job
		if e.Role != "" {
			l.roles[e.Nonce] = e.Role
		}
		if e.Ended {
			l.ended[e.Nonce] = true
		}
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("job ledger %s: %w", path, err)
	}
	return l, nil
}

// Known reports whether nonce ran here under job id.
func (l *Ledger) Known(nonce, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runs[nonce] == id
}

// Ended reports whether the job of nonce ended here; it may not be joined
// again, even under its own id.
func (l *Ledger) Ended(nonce string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ended[nonce]
}

// RecordSpend notes, durably, what one release of the job of nonce, id,
// costs in privacy here: call it before the release leaves the site, so
// that no restart or re-join forgets it.
func (l *Ledger) RecordSpend(nonce, id string, s Spend) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.append(ledgerEntry{Nonce: nonce, Job: id, Spent: &s}); err != nil {
		return err
	}
	l.spent[nonce] = append(l.spent[nonce], s)
	return nil
}

// RecordRelease notes, durably, that an encrypted update of the job of
// nonce, id, is released from the global model of digest: call it before
// the update leaves the site. A job under homomorphic encryption never
// trains from that model again, whatever its round or key setup (see
// ReleasedFrom).
func (l *Ledger) RecordRelease(nonce, id, digest string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.append(ledgerEntry{Nonce: nonce, Job: id, ReleasedFrom: digest}); err != nil {
		return err
	}
	l.markReleased(nonce, digest)
	return nil
}

// ReleasedFrom says whether an encrypted update of the job of nonce was
// released from the global model of digest, before a restart or a re-join
// included.
func (l *Ledger) ReleasedFrom(nonce, digest string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.released[nonce][digest]
}

func (l *Ledger) markReleased(nonce, digest string) {
	if l.released[nonce] == nil {
		l.released[nonce] = map[string]bool{}
	}
	l.released[nonce][digest] = true
}

// Spent is what the job of nonce has spent here so far, in order.
func (l *Ledger) Spent(nonce string) []Spend {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.spent[nonce])
}

// End records that the job of nonce, id, ended here.
func (l *Ledger) End(nonce, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended[nonce] {
		return nil
	}
	if err := l.append(ledgerEntry{Nonce: nonce, Job: id, Ended: true}); err != nil {
		return err
	}
	l.ended[nonce] = true
	return nil
}

// Unused says whether nonce has run under no job id here yet; if it has,
// the error (ErrReplayedJob) names the job.
func (l *Ledger) Unused(nonce string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.runs[nonce]; ok {
		return fmt.Errorf("%w as job %s", ErrReplayedJob, prev)
	}
	return nil
}

// RoleOf is the role the submitter of the job with nonce was admitted
// with, "" if none was recorded.
func (l *Ledger) RoleOf(nonce string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.roles[nonce]
}

// Record notes that the signed job with nonce runs here as job id, its
// submitter admitted with role. A nonce that already ran under another id
// is refused with ErrReplayedJob; the same id again (a resumed job) is
// accepted.
func (l *Ledger) Record(nonce, id, role string, now, notAfter time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch prev, ok := l.runs[nonce]; {
	case ok && prev == id:
		return nil
	case ok:
		return fmt.Errorf("%w as job %s", ErrReplayedJob, prev)
	}
	if err := l.append(ledgerEntry{Nonce: nonce, Job: id, Joined: now.UTC(), NotAfter: notAfter.UTC(), Role: role}); err != nil {
		return err
	}
	l.runs[nonce] = id
	if role != "" {
		l.roles[nonce] = role
	}
	return nil
}

// append writes one entry and syncs it (l.mu held).
func (l *Ledger) append(e ledgerEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if len(b) >= maxLedgerLine {
		return fmt.Errorf("job ledger: an entry of %d bytes", len(b))
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("job ledger: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("job ledger: %w", err)
	}
	return nil
}

// Close closes the ledger file.
func (l *Ledger) Close() error { return l.f.Close() }
