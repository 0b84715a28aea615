package participant

import (
	"crypto/ecdh"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/hejob"
	"github.com/hearthfl/hearth/actors/learning/he"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/actors/sealing"
	"github.com/hearthfl/hearth/actors/swarm"
	"github.com/hearthfl/hearth/bus/bridge"
	"github.com/hearthfl/hearth/bus/envelope"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// A site's part in a FedAvg job under homomorphic encryption (the flow is
// actors/hejob's). The site trusts the server with nothing here: it checks
// every party's statement against that party's certificate, computes every
// weight itself from the parties' signed commitments, encrypts only under
// the key it computed itself, and decrypts only sums of at least t signed
// updates that it adds up itself, one sum per round.

// heJob is a joined job's homomorphic encryption.
type heJob struct {
	nonce  []byte
	key    *hearthv1.SealingKey // this site's binding, for the job
	params he.Params
	// samples are the training samples the site committed to when it
	// joined: its commitment to the key carries them, and every party's
	// weight follows from them.
	samples int64
	// The setup, once the server proposed it.
	parties []string
	index   int
	t       int
	certs   map[string][]byte          // each party's certificate, from its checked binding
	seal    map[string]*ecdh.PublicKey // and its sealing key
	party   *he.Party
	// Once the commitments are in: every party's, and every party's
	// weight from them.
	commitments []he.Commitment
	weight      float64
	weights     map[string]float64 // every party's, from the signed commitments
	// Sending the threshold shares: the server's request, answered once
	// every other party took its share.
	sharing bool
	// Once the key is made.
	pk  *he.PublicKey
	enc *he.Encryptor
	// The newest round's encrypted update, committed to and not revealed
	// but against the round's commitments; written by the training
	// goroutine, read by the actor.
	mu      sync.Mutex
	pending *pendingUpdate
}

// pendingUpdate is a round's encrypted update as committed to.
type pendingUpdate struct {
	round      int64
	weight     float64
	ct         []byte
	commitment *hearthv1.HESigned
	// revealed is the update as revealed, against the one set of the
	// round's commitments it is ever revealed against.
	revealed *hearthv1.HESigned
	against  [32]byte
}

func (h *heJob) setupID() he.SetupID { return h.party.Setup() }

// newHEJob makes a joined HE job's state: a sealing-key binding for the
// job, which the server hands the other parties.
func (p *Participant) newHEJob(jobID, nonceHex string, samples int64) (*heJob, error) {
	if p.cfg.Signer == nil || p.cfg.SealKey == nil || p.cfg.Bridge == nil {
		return nil, errors.New("this site is not set up for homomorphic encryption (no sealing key)")
	}
	nonce, err := hex.DecodeString(nonceHex)
	if err != nil {
		return nil, fmt.Errorf("job nonce: %w", err)
	}
	params, err := he.NewParams()
	if err != nil {
		return nil, err
	}
	key, err := sealing.BindKey(p.cfg.Signer, jobID, p.cfg.SealKey)
	if err != nil {
		return nil, err
	}
	return &heJob{nonce: nonce, key: key, params: params, samples: samples}, nil
}

// heFromServer checks a server's HE message: from the server, for an HE job
// this site is in. It answers the refusal itself.
func (p *Participant) heFromServer(ctx actor.Context, jobID, what string) (*joined, string, bool) {
	from, ok := p.fromServer(ctx)
	if !ok {
		return nil, "", false
	}
	j := p.jobs[jobID]
	if j == nil || j.he == nil {
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_UNKNOWN_JOB, "this site is in no job "+envelope.Clip(jobID, 64)+" under homomorphic encryption"))
		return nil, "", false
	}
	return j, from.Sender.Name, true
}

// heRefuse audits and answers a refused HE step.
func (p *Participant) heRefuse(ctx actor.Context, j *joined, server, step string, round int64, err error) {
	p.cfg.Log.Warn("homomorphic encryption step refused", "job", j.id, "step", step, "err", err)
	p.audit(auditor.Event{Action: "he.refused", JobID: j.id, Round: round, Peer: server, Detail: map[string]string{"step": step, "reason": err.Error()}})
	ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, fmt.Sprintf("%s refused %s: %v", p.cfg.Self.Name, step, err)))
}

// heSetup checks the proposed setup against the signed job and the
// parties' bindings, makes this site's party, and answers its signed
// commitment.
func (p *Participant) heSetup(ctx actor.Context, m *hearthv1.HESetup) {
	j, server, ok := p.heFromServer(ctx, m.JobId, "setup")
	if !ok {
		return
	}
	if err := p.takeSetup(j, m); err != nil {
		p.heRefuse(ctx, j, server, "the key setup", 0, err)
		return
	}
	h := j.he
	st, err := hejob.Sign(p.cfg.Signer, j.id, hejob.KindCommitment, 0, h.setupID(), hejob.CommitmentPayload(h.party.Commitment(), h.samples))
	if err != nil {
		p.heRefuse(ctx, j, server, "the key setup", 0, err)
		return
	}
	p.audit(auditor.Event{Action: "he.setup", JobID: j.id, Peer: server, PeerEvent: m.AuditEvent, Detail: map[string]string{
		"parties": strings.Join(h.parties, ","), "threshold": fmt.Sprint(h.t), "setup": h.setupID().String()}})
	ctx.Respond(&hearthv1.HECommitted{JobId: j.id, Commitment: st})
}

func (p *Participant) takeSetup(j *joined, m *hearthv1.HESetup) error {
	h := j.he
	if h.party != nil && h.pk != nil {
		return errors.New("the job's key is made; another setup needs the job joined again")
	}
	if len(m.Parties) > he.MaxParties || len(m.Keys) != len(m.Parties) {
		return fmt.Errorf("%d parties with %d keys", len(m.Parties), len(m.Keys))
	}
	index, err := hejob.CheckParties(m.Parties, p.cfg.Self.Name, func(s string) bool { return deployedHere(j.manifest.Sites, s) })
	if err != nil {
		return err
	}
	t, err := hejob.Threshold(j.manifest.HE.Threshold, len(m.Parties))
	if err != nil {
		return err
	}
	if int(m.Threshold) != t {
		return fmt.Errorf("threshold %d; the signed job gives %d for %d parties", m.Threshold, t, len(m.Parties))
	}
	if len(m.Parties) < j.manifest.MinSites {
		return fmt.Errorf("%d parties, fewer than the job's min_sites %d", len(m.Parties), j.manifest.MinSites)
	}
	certs, seal := map[string][]byte{}, map[string]*ecdh.PublicKey{}
	now := p.cfg.Now()
	for i, site := range m.Parties {
		k := m.Keys[i]
		pub, err := sealing.VerifyKey(k, p.cfg.Trust, j.id, site, now)
		if err != nil {
			return err
		}
		if i == index && !slices.Equal(k.PublicKey, h.key.PublicKey) {
			return errors.New("the setup gives this site a sealing key that is not its own")
		}
		certs[site], seal[site] = k.Certificate, pub
	}
	if len(m.Salt) != hejob.SaltSize {
		return fmt.Errorf("a setup salt of %d bytes, want %d", len(m.Salt), hejob.SaltSize)
	}
	seed := hejob.Seed(h.nonce, m.Salt, m.Parties, t)
	party, err := he.NewParty(h.params, index, len(m.Parties), t, seed)
	if err != nil {
		return err
	}
	h.parties, h.index, h.t, h.certs, h.seal, h.party = slices.Clone(m.Parties), index, t, certs, seal, party
	h.commitments, h.pk, h.enc, h.sharing = nil, nil, nil, false
	p.peers.setHE(j.id, m.Parties, p.cfg.Self.Name)
	return nil
}

// verify checks one party's statement of kind.
func (p *Participant) verifyStatement(j *joined, st *hearthv1.HESigned, site, kind string, round int64) error {
	h := j.he
	return hejob.Verify(st, hejob.Expect{JobID: j.id, Site: site, Kind: kind, Round: round, Setup: h.setupID()}, h.certs[site], p.cfg.Trust, p.cfg.Now())
}

// heKeyExchange checks every party's signed commitment, computes this
// site's weight from them, sends each other party its threshold share
// sealed to it, and, once all were taken, answers its signed public key
// share.
func (p *Participant) heKeyExchange(ctx actor.Context, m *hearthv1.HEKeyExchange) {
	j, server, ok := p.heFromServer(ctx, m.JobId, "key exchange")
	if !ok {
		return
	}
	share, err := p.takeCommitments(j, m)
	if err != nil {
		p.heRefuse(ctx, j, server, "the key exchange", 0, err)
		return
	}
	h := j.he
	st, err := hejob.Sign(p.cfg.Signer, j.id, hejob.KindKeyShare, 0, h.setupID(), share)
	if err != nil {
		p.heRefuse(ctx, j, server, "the key exchange", 0, err)
		return
	}
	h.sharing = true
	reply, left := ctx.Sender(), len(h.parties)-1
	var failed []string
	setup := h.setupID()
	for _, ts := range h.party.ThresholdShares() {
		to := h.parties[ts.To()]
		raw, err := ts.MarshalBinary()
		if err != nil {
			p.heRefuse(ctx, j, server, "the key exchange", 0, err)
			return
		}
		timeout := j.manifest.RoundTimeout
		future := ctx.RequestFuture(p.cfg.Bridge, &bridge.Ask{To: to, Msg: &hearthv1.HEThresholdShare{JobId: j.id, Share: raw}, JobID: j.id,
			Timeout: timeout, SealTo: h.seal[to]}, timeout+time.Second)
		ctx.ReenterAfter(future, func(res any, err error) {
			if err == nil {
				err = takenError(res, j.id)
			}
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", to, err))
			}
			if left--; left > 0 {
				return
			}
			if cur := p.jobs[j.id]; cur != j || !h.sharing || h.setupID() != setup {
				return // left, or another setup began
			}
			h.sharing = false
			if len(failed) > 0 {
				reason := "threshold shares not taken: " + strings.Join(failed, "; ")
				p.audit(auditor.Event{Action: "he.refused", JobID: j.id, Peer: server, Detail: map[string]string{"step": "the key exchange", "reason": reason}})
				ctx.Send(reply, failure(hearthv1.FailureCode_FAILURE_CODE_UNAVAILABLE, reason))
				return
			}
			p.audit(auditor.Event{Action: "he.shared", JobID: j.id, Peer: server, Detail: map[string]string{
				"parties": strings.Join(h.parties, ","), "weight": fmt.Sprintf("%.6f", h.weight)}})
			ctx.Send(reply, &hearthv1.HEShared{JobId: j.id, Share: st})
		})
	}
}

// takenError reads a party's answer to a threshold share.
func takenError(res any, jobID string) error {
	switch r := res.(type) {
	case *bridge.Failed:
		return r.Err
	case *bridge.Reply:
		if t, ok := r.Msg.(*hearthv1.HEShareTaken); !ok || t.JobId != jobID {
			return fmt.Errorf("answered %T", r.Msg)
		}
		return nil
	}
	return fmt.Errorf("unexpected %T", res)
}

// takeCommitments checks the n signed commitments (this site's own among
// them, unchanged), computes this site's weight from their committed
// samples, and returns its public key share's encoding.
func (p *Participant) takeCommitments(j *joined, m *hearthv1.HEKeyExchange) ([]byte, error) {
	h := j.he
	switch {
	case h.party == nil:
		return nil, errors.New("no setup proposed")
	case h.commitments != nil:
		return nil, errors.New("the commitments were taken already")
	case len(m.Commitments) != len(h.parties):
		return nil, fmt.Errorf("%d commitments for %d parties", len(m.Commitments), len(h.parties))
	}
	commitments := make([]he.Commitment, len(h.parties))
	samples := map[string]int64{}
	for i, site := range h.parties {
		if err := p.verifyStatement(j, m.Commitments[i], site, hejob.KindCommitment, 0); err != nil {
			return nil, err
		}
		c, n, err := hejob.ParseCommitment(m.Commitments[i].Payload)
		if err != nil {
			return nil, fmt.Errorf("commitment of %s: %w", site, err)
		}
		commitments[i], samples[site] = c, n
	}
	if commitments[h.index] != h.party.Commitment() || samples[p.cfg.Self.Name] != h.samples {
		return nil, errors.New("this site's own commitment is not the one it made")
	}
	share, err := h.party.PublicKeyShare(commitments)
	if err != nil {
		return nil, err
	}
	raw, err := share.MarshalBinary()
	if err != nil {
		return nil, err
	}
	h.commitments = commitments
	h.weights = hejob.Weights(samples, j.manifest.Aggregation.ShareCap(len(h.parties)))
	h.weight = h.weights[p.cfg.Self.Name]
	return raw, nil
}

// heThresholdShare takes another party's threshold share: it must come
// sealed from that party, for this site, in the setup under way.
func (p *Participant) heThresholdShare(ctx actor.Context, m *hearthv1.HEThresholdShare) {
	o, _ := bridge.OriginOf(ctx)
	if o.JobID != m.JobId {
		p.refuseMismatch(ctx, o, m.JobId)
		return
	}
	if err := p.takeThresholdShare(p.jobs[m.JobId], o.Sender.Name, o.Sealed, m); err != nil {
		p.audit(auditor.Event{Action: "he.refused", JobID: m.JobId, Peer: o.Sender.Name, Detail: map[string]string{"step": "a threshold share", "reason": err.Error()}})
		ctx.Respond(failure(hearthv1.FailureCode_FAILURE_CODE_REFUSED, err.Error()))
		return
	}
	ctx.Respond(&hearthv1.HEShareTaken{JobId: m.JobId})
}

// takeThresholdShare adds a party's threshold share (from sender, sealed
// or not) to this site's party in job j (nil: none here).
func (p *Participant) takeThresholdShare(j *joined, sender string, sealed bool, m *hearthv1.HEThresholdShare) error {
	switch {
	case !sealed:
		return errors.New("a threshold share must come sealed to this site's key")
	case j == nil || j.he == nil || j.he.party == nil:
		return errors.New("no key setup under way for job " + envelope.Clip(m.JobId, 64))
	}
	h := j.he
	from := slices.Index(h.parties, sender)
	if from < 0 || from == h.index {
		return errors.New("not another party to the setup")
	}
	s := new(he.ThresholdShare)
	if err := s.UnmarshalBinary(m.Share); err != nil {
		return err
	}
	if s.From() != from {
		return fmt.Errorf("the share of party %d, sent by party %d", s.From(), from)
	}
	return h.party.AddThresholdShare(s)
}

// heKeys checks every party's key share against its commitment and makes
// the collective key; it answers the key's id.
func (p *Participant) heKeys(ctx actor.Context, m *hearthv1.HEKeys) {
	j, server, ok := p.heFromServer(ctx, m.JobId, "keys")
	if !ok {
		return
	}
	if err := p.takeKeys(j, m); err != nil {
		p.heRefuse(ctx, j, server, "the collective key", 0, err)
		return
	}
	id := j.he.pk.ID()
	p.audit(auditor.Event{Action: "he.keyed", JobID: j.id, Peer: server, Detail: map[string]string{"key": id.String(), "threshold": fmt.Sprint(j.he.t)}})
	ctx.Respond(&hearthv1.HEReady{JobId: j.id, KeyId: id[:]})
}

// takeKeys checks the parties' signed key shares, makes the collective key
// from them (this site's own share in it, every share matching its
// commitment) and the encryptor under it, once the site holds its
// threshold share.
func (p *Participant) takeKeys(j *joined, m *hearthv1.HEKeys) error {
	h := j.he
	switch {
	case h.commitments == nil || h.sharing:
		return errors.New("the key shares came before the threshold shares were sent")
	case h.pk != nil:
		return errors.New("the key is made already")
	case len(m.Shares) != len(h.parties):
		return fmt.Errorf("%d key shares for %d parties", len(m.Shares), len(h.parties))
	}
	shares := make([]*he.PublicKeyShare, len(h.parties))
	for i, site := range h.parties {
		if err := p.verifyStatement(j, m.Shares[i], site, hejob.KindKeyShare, 0); err != nil {
			return err
		}
		shares[i] = new(he.PublicKeyShare)
		if err := shares[i].UnmarshalBinary(m.Shares[i].Payload); err != nil {
			return fmt.Errorf("key share of %s: %w", site, err)
		}
	}
	pk, err := h.party.PublicKey(h.commitments, shares)
	if err != nil {
		return err
	}
	if !h.party.Ready() {
		return errors.New("threshold shares of some parties never came")
	}
	enc, err := he.NewEncryptor(h.params, pk)
	if err != nil {
		return err
	}
	h.pk, h.enc = pk, enc
	return nil
}

// checkHETraining says whether the site may train round from global in an
// HE job. It refuses before the job's key is made; a round it released an
// encrypted update of before (under any key setup, across re-joins and
// restarts: the ledger); and a global model it released one from before,
// in any round (the model as received, and as its incoming filters made
// it, filtered): training again would give a server two sums of nearly
// the same updates to decrypt, one without a site, whose difference is
// that site's update. It returns what the release is recorded under.
func (p *Participant) checkHETraining(j *joined, round int64, received, filtered *model.Model) ([]string, error) {
	if j.he.enc == nil {
		return nil, errors.New("this site holds no key for the job yet (its key setup is not done)")
	}
	keys := []string{releaseKey(round), hex.EncodeToString(swarm.Digest(received))}
	if filtered != received {
		keys = append(keys, hex.EncodeToString(swarm.Digest(filtered)))
	}
	for _, k := range keys {
		if p.cfg.Ledger.ReleasedFrom(j.nonce, k) {
			return nil, fmt.Errorf("an encrypted update was released before from this round or this global model (%s): training again would let two sums of it be decrypted, one without this site", k)
		}
	}
	return keys, nil
}

// releaseKey is a round's key in the ledger's releases.
func releaseKey(round int64) string { return fmt.Sprintf("round %d", round) }

// encryptUpdate encrypts the site's update for round, weighted, under the
// job's key, keeps it for the reveal, and returns the signed commitment to
// it (its weight and the ciphertext's hash), which is all that leaves now.
func (p *Participant) encryptUpdate(j *joined, round int64, update *model.Model) (*hearthv1.HESigned, error) {
	h := j.he
	if h.enc == nil {
		return nil, errors.New("this site holds no key for the job (it may have restarted since the key was made)")
	}
	flat := make([]float32, 0, update.NumParams())
	for _, t := range update.Tensors {
		flat = append(flat, t.Data...)
	}
	ct, err := h.enc.Encrypt(flat, h.weight)
	if err != nil {
		return nil, err
	}
	raw, err := ct.MarshalBinary()
	if err != nil {
		return nil, err
	}
	st, err := hejob.Sign(p.cfg.Signer, j.id, hejob.KindUpdateCommitment, round, h.setupID(), hejob.UpdateCommitmentPayload(h.weight, raw))
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.pending = &pendingUpdate{round: round, weight: h.weight, ct: raw, commitment: st}
	h.mu.Unlock()
	return st, nil
}

// checkCommitments verifies a round's update commitments as the server
// hands them on: each a party's, in strictly increasing name order, signed
// for the round; it returns them by site.
func (p *Participant) checkRoundCommitments(j *joined, round int64, commitments []*hearthv1.HESigned) (map[string]*hearthv1.HESigned, error) {
	h := j.he
	if len(commitments) < h.t || len(commitments) > len(h.parties) {
		return nil, fmt.Errorf("%d update commitments: want %d to %d", len(commitments), h.t, len(h.parties))
	}
	out := map[string]*hearthv1.HESigned{}
	for i, c := range commitments {
		site := c.GetSite()
		if !slices.Contains(h.parties, site) || (i > 0 && site <= commitments[i-1].GetSite()) {
			return nil, fmt.Errorf("update commitment of %q: not a party, or out of order", envelope.Clip(site, 64))
		}
		if err := p.verifyStatement(j, c, site, hejob.KindUpdateCommitment, round); err != nil {
			return nil, err
		}
		out[site] = c
	}
	return out, nil
}

// heReveal reveals the site's encrypted update of a round against the
// round's commitments: only once its own is among them, unchanged, and
// against one set only. So no site can commit after seeing its
// ciphertext (a commitment made later is in no set it revealed against),
// and no two sums of the round with it can be decrypted (against
// shrinking sets, two groups of t sharing only a colluder could each
// decrypt one, and their difference would be a site's update). Asked
// again for the same set, it answers the same reveal.
func (p *Participant) heReveal(ctx actor.Context, m *hearthv1.HEReveal) {
	j, server, ok := p.heFromServer(ctx, m.JobId, "reveal")
	if !ok {
		return
	}
	st, err := p.reveal(j, m)
	if err != nil {
		p.heRefuse(ctx, j, server, fmt.Sprintf("the reveal of round %d", m.Round), m.Round, err)
		return
	}
	ctx.Respond(&hearthv1.HERevealed{JobId: j.id, Round: m.Round, Update: st})
}

func (p *Participant) reveal(j *joined, m *hearthv1.HEReveal) (*hearthv1.HESigned, error) {
	h := j.he
	h.mu.Lock()
	pu := h.pending
	h.mu.Unlock()
	if pu == nil || pu.round != m.Round {
		return nil, fmt.Errorf("no encrypted update of round %d here to reveal", m.Round)
	}
	bySite, err := p.checkRoundCommitments(j, m.Round, m.Commitments)
	if err != nil {
		return nil, err
	}
	if own := bySite[p.cfg.Self.Name]; own == nil || !proto.Equal(own, pu.commitment) {
		return nil, errors.New("this site's own commitment is not among them as it made it")
	}
	digest := hejob.CommitmentsDigest(m.Commitments)
	if pu.revealed != nil {
		if pu.against != digest {
			return nil, fmt.Errorf("round %d's update was revealed against another set of commitments: it is revealed against one only", m.Round)
		}
		return pu.revealed, nil
	}
	st, err := hejob.Sign(p.cfg.Signer, j.id, hejob.KindUpdate, m.Round, h.setupID(), hejob.UpdatePayload(pu.weight, digest, pu.ct))
	if err != nil {
		return nil, err
	}
	pu.revealed, pu.against = st, digest
	return st, nil
}

// heDecrypt makes this site's decryption share of one round's sum: every
// update signed by its party for the round, at least t of them (the party
// refuses fewer, and another sum in the same round).
func (p *Participant) heDecrypt(ctx actor.Context, m *hearthv1.HEDecrypt) {
	j, server, ok := p.heFromServer(ctx, m.JobId, "decryption")
	if !ok {
		return
	}
	raw, contributors, err := p.decryptShare(j, m)
	var st *hearthv1.HESigned
	if err == nil { // signed, so that the next round's proof carries it unchanged
		st, err = hejob.Sign(p.cfg.Signer, j.id, hejob.KindDecryptionShare, m.Round, j.he.setupID(), raw)
	}
	if err != nil {
		p.heRefuse(ctx, j, server, fmt.Sprintf("the decryption of round %d", m.Round), m.Round, err)
		return
	}
	p.audit(auditor.Event{Action: "he.decryption_share", JobID: j.id, Round: m.Round, Peer: server, Detail: map[string]string{
		"contributors": strings.Join(contributors, ",")}})
	ctx.Respond(&hearthv1.HEDecryptionShare{JobId: j.id, Round: m.Round, Share: st})
}

// decryptShare makes this site's share of the decryption of a round's
// sum, after checking every update's signature for the round, and names
// the round's contributors.
func (p *Participant) decryptShare(j *joined, m *hearthv1.HEDecrypt) (raw []byte, contributors []string, err error) {
	h := j.he
	switch {
	case h.pk == nil:
		return nil, nil, errors.New("this site holds no key for the job")
	case m.Round < 1 || m.Round > int64(j.manifest.Rounds):
		return nil, nil, fmt.Errorf("round %d is not in the job's 1..%d", m.Round, j.manifest.Rounds)
	case len(m.Updates) > len(h.parties) || len(m.Active) != h.t:
		return nil, nil, fmt.Errorf("%d updates and an active set of %d for %d parties, threshold %d", len(m.Updates), len(m.Active), len(h.parties), h.t)
	}
	cts, contributors, _, err := p.roundUpdates(j, m.Round, m.Commitments, m.Updates)
	if err != nil {
		return nil, nil, err
	}
	active := make([]int, len(m.Active))
	for i, a := range m.Active {
		active[i] = int(a)
	}
	share, err := h.party.DecryptionShare(he.RoundID(m.Round), cts, active)
	if err != nil {
		return nil, nil, err
	}
	raw, err = share.MarshalBinary()
	return raw, contributors, err
}

// roundUpdates checks a round's updates as revealed against its
// commitments, each signed by its party, the ciphertext it committed to,
// bound to that set; it returns the ciphertexts by party index, the
// contributors and the sum of their weights.
func (p *Participant) roundUpdates(j *joined, round int64, commitments, updates []*hearthv1.HESigned) (map[int]*he.Ciphertext, []string, float64, error) {
	h := j.he
	committed, err := p.checkRoundCommitments(j, round, commitments)
	if err != nil {
		return nil, nil, 0, err
	}
	if len(updates) != len(committed) {
		return nil, nil, 0, fmt.Errorf("%d updates for %d commitments", len(updates), len(committed))
	}
	digest := hejob.CommitmentsDigest(commitments)
	cts := map[int]*he.Ciphertext{}
	var contributors []string
	weight := 0.0
	for _, st := range updates {
		i := slices.Index(h.parties, st.GetSite())
		if i < 0 || cts[i] != nil || committed[st.GetSite()] == nil {
			return nil, nil, 0, fmt.Errorf("an update of %q: not a party's, twice, or without its commitment", envelope.Clip(st.GetSite(), 64))
		}
		if err := p.verifyStatement(j, st, st.Site, hejob.KindUpdate, round); err != nil {
			return nil, nil, 0, err
		}
		u, err := hejob.ParseUpdate(st.Payload)
		if err == nil {
			err = hejob.CheckReveal(u, committed[st.Site], digest)
		}
		if err == nil && !hejob.SameWeight(u.Weight, h.weights[st.Site]) {
			err = fmt.Errorf("encrypted at weight %g; its committed samples give %g", u.Weight, h.weights[st.Site])
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("update of %s: %w", st.Site, err)
		}
		cts[i] = u.Ciphertext
		contributors = append(contributors, st.Site)
		weight += u.Weight
	}
	return cts, contributors, weight, nil
}

// checkHEGlobal checks the global model a round of an HE job trains from:
// in the first round the model the site makes itself from the signed job;
// later the mean of the previous round's decrypted sum, which the site
// recomputes from the proof (the round's signed commitments and updates
// and t decryption shares). So the server cannot choose the model (one
// altered to be nearly the last would get a release nearly the same as
// the last, the server leaving a site out of it).
func (p *Participant) checkHEGlobal(j *joined, round int64, global *model.Model, proof *hearthv1.HEProof) error {
	h := j.he
	if h.pk == nil {
		return errors.New("this site holds no key for the job yet (its key setup is not done)")
	}
	flat := make([]float32, 0, global.NumParams())
	for _, t := range global.Tensors {
		flat = append(flat, t.Data...)
	}
	if round == 1 {
		init, err := trainer.Init(j.spec, j.train.Features, j.train.Classes)
		if err != nil {
			return err
		}
		if err := init.SameLayout(global); err != nil {
			return fmt.Errorf("the first round's global model: %w", err)
		}
		for k, t := range init.Tensors {
			if !slices.Equal(t.Data, global.Tensors[k].Data) {
				return errors.New("the first round's global model is not the one the signed job makes")
			}
		}
		return nil
	}
	switch {
	case proof == nil || proof.Round != round-1:
		return fmt.Errorf("round %d's global model comes without the decryption of round %d", round, round-1)
	case len(proof.Active) != h.t || len(proof.Shares) != h.t:
		return fmt.Errorf("a decryption of %d shares for an active set of %d, threshold %d", len(proof.Shares), len(proof.Active), h.t)
	}
	cts, _, weight, err := p.roundUpdates(j, proof.Round, proof.Commitments, proof.Updates)
	if err != nil {
		return fmt.Errorf("round %d's decryption: %w", proof.Round, err)
	}
	list := make([]*he.Ciphertext, 0, len(cts))
	for _, i := range slices.Sorted(maps.Keys(cts)) {
		list = append(list, cts[i])
	}
	sum, err := he.Sum(list...)
	if err != nil {
		return err
	}
	active := make([]int, len(proof.Active))
	for k, a := range proof.Active {
		active[k] = int(a)
	}
	shares := make([]*he.DecryptionShare, len(proof.Shares))
	seen := map[string]bool{}
	for k, st := range proof.Shares {
		site := st.GetSite()
		i := slices.Index(h.parties, site)
		if i < 0 || seen[site] {
			return fmt.Errorf("round %d's decryption share of %q: not a party's, or twice", proof.Round, envelope.Clip(site, 64))
		}
		seen[site] = true
		if err := p.verifyStatement(j, st, site, hejob.KindDecryptionShare, proof.Round); err != nil {
			return fmt.Errorf("round %d's decryption: %w", proof.Round, err)
		}
		shares[k] = new(he.DecryptionShare)
		if err := shares[k].UnmarshalBinary(st.Payload); err != nil {
			return fmt.Errorf("round %d's decryption share of %s: %w", proof.Round, site, err)
		}
		if shares[k].From() != i || !slices.Equal(shares[k].Active(), active) {
			return fmt.Errorf("round %d's decryption share of %s: made as party %d for %v, not party %d for %v", proof.Round, site, shares[k].From(), shares[k].Active(), i, active)
		}
	}
	values, err := he.Combine(h.params, h.pk, sum, shares)
	if err != nil {
		return fmt.Errorf("round %d's decryption: %w", proof.Round, err)
	}
	if err := hejob.SameMean(flat, values, weight); err != nil {
		return fmt.Errorf("round %d's global model is not round %d's decrypted mean: %w", round, proof.Round, err)
	}
	return nil
}

// heTypes are what one site may send another in a job under homomorphic
// encryption (Admit).
var heTypes = map[string]bool{
	string(proto.MessageName(&hearthv1.HEThresholdShare{})): true,
}
