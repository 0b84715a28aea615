package coordinator

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/aggregator"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/hejob"
	"github.com/hearthfl/hearth/actors/learning/he"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	"github.com/hearthfl/hearth/actors/sealing"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// A FedAvg job under homomorphic encryption (the manifest's he section;
// the flow is actors/hejob's): after the join the workflow has the joined
// sites make the job's collective key (keying), and each round, instead of
// handing updates to the aggregator, it keeps the sites' signed ciphertexts,
// adds them, has t sites decrypt the sum (decrypting) and hands the
// aggregator only the decrypted mean. The server holds no key that opens
// one site's update, and no site decrypts anything but a sum of at least t
// sites' updates that it adds up itself.

// heState is the workflow's part of an HE job: the setup and its key, and
// the open round's ciphertexts. Model values it holds only as the
// decrypted mean on its way to the aggregator.
type heState struct {
	params he.Params
	keys   map[string]*hearthv1.SealingKey // each joined site's binding, checked at the join
	// The setup: its parties in name order, threshold, id, step, attempt.
	parties  []string
	index    map[string]int
	t        int
	setup    he.SetupID
	step     heStep
	attempts int
	values   int                 // the model's values
	layout   []model.TensorShape // and its tensors
	// What the parties said, by party index.
	commitments []*hearthv1.HESigned
	committed   []he.Commitment
	shares      []*hearthv1.HESigned
	pk          *he.PublicKey
	weights     map[string]float64 // each party's weight, a fraction of 1
	answered    map[string]bool    // the parties that answered the step
	// The open round: the sites' update commitments, the set the updates
	// are revealed against (its sites, in order, and its digest), the
	// reveals.
	roundCommits map[string]*hearthv1.HESigned
	revealSet    []string
	revealDigest [32]byte
	updates      map[string]*hearthv1.HESigned
	cts          map[string]*he.Ciphertext
	sum          *he.Ciphertext
	weightSum    float64
	active       []string
	decShares    map[string]*he.DecryptionShare
	decSigned    map[string]*hearthv1.HESigned
	revealW      map[string]float64 // each contributor's weight, as it signed it
	// proof is the last round's decryption, which the next round's tasks
	// carry for each site to check the global model against.
	proof  *hearthv1.HEProof
	failed map[string]bool // parties that failed to decrypt this round
}

type heStep int

const (
	heCommitting heStep = iota
	heExchanging
	heKeying
	heReady
)

// heSum names the decrypted mean the aggregator folds: one update, the
// round's sum.
const heSum = "(sum of the encrypted updates)"

// maxKeyingAttempts bounds how often a setup is redone without the parties
// that failed it.
const maxKeyingAttempts = 3

func newHEState() (*heState, error) {
	params, err := he.NewParams()
	if err != nil {
		return nil, err
	}
	return &heState{params: params, keys: map[string]*hearthv1.SealingKey{}}, nil
}

// takeKey checks a joining site's sealing-key binding: its certificate
// checks what the site signs in the job, and its threshold shares are
// sealed to the key.
func (w *workflow) takeKey(site string, k *hearthv1.SealingKey) error {
	if _, err := sealing.VerifyKey(k, w.cfg.Trust, w.id(), site, w.cfg.Now()); err != nil {
		return err
	}
	w.he.keys[site] = k
	return nil
}

// startKeying begins a setup among the joined sites, or says why there can
// be none.
func (w *workflow) startKeying(ctx actor.Context) error {
	h := w.he
	h.attempts++
	parties := w.sites()
	t, err := hejob.Threshold(w.manifest.HE.Threshold, len(parties))
	if err != nil {
		return fmt.Errorf("homomorphic encryption: %w", err)
	}
	if h.layout == nil {
		if h.layout, err = trainer.Layout(w.manifest.Trainer.Spec(), int(w.shapeFeatures), int(w.shapeLabels)); err != nil {
			return err
		}
		h.values = int(model.LayoutBytes(h.layout) / 4)
	}
	if err := hejob.CheckModel(h.values, len(parties), t); err != nil {
		return fmt.Errorf("homomorphic encryption: %w", err)
	}
	h.parties, h.t, h.index = parties, t, map[string]int{}
	for i, p := range parties {
		h.index[p] = i
	}
	salt := make([]byte, hejob.SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	h.setup = he.SetupOf(h.params, hejob.Seed(w.rec.Job.Nonce, salt, parties, t), len(parties), t)
	h.step, h.answered = heCommitting, map[string]bool{}
	h.commitments, h.committed, h.shares = make([]*hearthv1.HESigned, len(parties)), make([]he.Commitment, len(parties)), make([]*hearthv1.HESigned, len(parties))
	w.phase, w.pending, w.missing, w.reasons = keying, map[string]bool{}, nil, nil
	ev := w.audit(auditor.Event{Action: "he.setup", JobID: w.id(), Detail: map[string]string{
		"parties": strings.Join(parties, ","), "threshold": fmt.Sprint(t), "setup": h.setup.String(), "attempt": fmt.Sprint(h.attempts)}})
	keys := make([]*hearthv1.SealingKey, len(parties))
	for i, p := range parties {
		keys[i] = h.keys[p]
	}
	for _, p := range parties {
		w.ask(ctx, p, &hearthv1.HESetup{JobId: w.id(), Parties: parties, Threshold: int32(t), Keys: keys, AuditEvent: ev, Salt: salt})
	}
	return nil
}

// heAnswer takes a party's answer to a step of the setup or of a round's
// decryption.
func (w *workflow) heAnswer(site string, m proto.Message) {
	h := w.he
	i, ok := h.index[site]
	if !ok || (w.phase != keying && w.phase != revealing && w.phase != decrypting) {
		w.refuse(site, "he.refused", fmt.Sprintf("an unexpected %T", m), "")
		return
	}
	var err error
	switch m := m.(type) {
	case *hearthv1.HECommitted:
		err = w.heCommitted(site, i, m)
	case *hearthv1.HEShared:
		err = w.heShared(site, i, m)
	case *hearthv1.HEReady:
		if h.step != heKeying || w.phase != keying {
			err = fmt.Errorf("a key id answering no key")
		} else if id := h.pk.ID(); !bytes.Equal(m.KeyId, id[:]) {
			err = fmt.Errorf("its collective key is %x, the others' %s", clipBytes(m.KeyId), h.pk.ID())
		}
	case *hearthv1.HERevealed:
		err = w.heRevealed(site, m)
	case *hearthv1.HEDecryptionShare:
		err = w.heDecryptionShare(site, i, m)
	}
	if err != nil {
		w.refuse(site, "he.refused", err.Error(), "")
		return
	}
	h.answered[site] = true
}

func clipBytes(b []byte) []byte { return b[:min(len(b), 16)] }

func (w *workflow) statement(st *hearthv1.HESigned, site, kind string, round int64) error {
	k := w.he.keys[site]
	return hejob.Verify(st, hejob.Expect{JobID: w.id(), Site: site, Kind: kind, Round: round, Setup: w.he.setup}, k.GetCertificate(), w.cfg.Trust, w.cfg.Now())
}

func (w *workflow) heCommitted(site string, i int, m *hearthv1.HECommitted) error {
	h := w.he
	if h.step != heCommitting || w.phase != keying {
		return fmt.Errorf("a commitment after the commitments")
	}
	if err := w.statement(m.Commitment, site, hejob.KindCommitment, 0); err != nil {
		return err
	}
	c, samples, err := hejob.ParseCommitment(m.Commitment.Payload)
	if err != nil {
		return err
	}
	if samples != w.rec.Joined[site] {
		return fmt.Errorf("committed %d training samples to the key, %d when it joined", samples, w.rec.Joined[site])
	}
	h.commitments[i], h.committed[i] = m.Commitment, c
	return nil
}

func (w *workflow) heShared(site string, i int, m *hearthv1.HEShared) error {
	h := w.he
	if h.step != heExchanging || w.phase != keying {
		return fmt.Errorf("a key share out of turn")
	}
	if err := w.statement(m.Share, site, hejob.KindKeyShare, 0); err != nil {
		return err
	}
	h.shares[i] = m.Share
	return nil
}

// keyingNext moves the setup on once every party answered its step; a
// setup that lost a party is redone without it.
func (w *workflow) keyingNext(ctx actor.Context) {
	h := w.he
	var lost []string
	for _, p := range h.parties {
		if !h.answered[p] {
			lost = append(lost, p)
		}
	}
	switch {
	case len(lost) > 0 && h.step == heCommitting:
		w.redoKeying(ctx, lost) // only those that made no commitment are left out
		return
	case len(lost) > 0:
		// Past the commitments a failure is not redone without the site
		// that reported it: a hostile party that refuses another's
		// threshold share would have honest sites left out until its
		// colluders were a majority of those left. The job fails, with
		// who said what.
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("homomorphic encryption: the key setup failed at %s: %s",
			strings.Join(lost, ", "), strings.Join(w.reasons, "; ")))
		return
	}
	h.answered = map[string]bool{}
	switch h.step {
	case heCommitting:
		h.step = heExchanging
		for _, p := range h.parties {
			w.ask(ctx, p, &hearthv1.HEKeyExchange{JobId: w.id(), Commitments: h.commitments})
		}
	case heExchanging:
		pk, err := w.collectiveKey()
		if err != nil {
			w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, "homomorphic encryption: "+err.Error())
			return
		}
		h.pk, h.step = pk, heKeying
		for _, p := range h.parties {
			w.ask(ctx, p, &hearthv1.HEKeys{JobId: w.id(), Shares: h.shares})
		}
	case heKeying:
		h.step = heReady
		samples := map[string]int64{}
		for _, p := range h.parties {
			samples[p] = w.rec.Joined[p]
		}
		h.weights = hejob.Weights(samples, w.manifest.Aggregation.ShareCap(len(h.parties)))
		w.weights = aggregator.CappedWeights(w.rec.Joined, w.maxShare())
		w.audit(auditor.Event{Action: "he.keyed", JobID: w.id(), Detail: map[string]string{
			"parties": strings.Join(h.parties, ","), "threshold": fmt.Sprint(h.t), "key": h.pk.ID().String()}})
		w.cfg.Log.Info("collective key made", "job", w.id(), "parties", len(h.parties), "threshold", h.t, "key", h.pk.ID().String())
		w.phase = joining
		w.beginModel(ctx)
	}
}

// collectiveKey checks the parties' key shares against their commitments
// and adds them up: the key every party must arrive at too.
func (w *workflow) collectiveKey() (*he.PublicKey, error) {
	h := w.he
	shares := make([]*he.PublicKeyShare, len(h.parties))
	for i, st := range h.shares {
		shares[i] = new(he.PublicKeyShare)
		if err := shares[i].UnmarshalBinary(st.Payload); err != nil {
			return nil, fmt.Errorf("key share of %s: %w", h.parties[i], err)
		}
	}
	if err := he.VerifyShares(h.committed, shares); err != nil {
		return nil, err
	}
	return he.AggregatePublicKey(shares)
}

// redoKeying leaves out the parties that failed the setup and begins
// another among the rest, or fails the job.
func (w *workflow) redoKeying(ctx actor.Context, lost []string) {
	for _, p := range lost {
		delete(w.rec.Joined, p)
		w.rec.Info.Commitments = slices.DeleteFunc(w.rec.Info.Commitments, func(c *hearthv1.SiteCommitment) bool { return c.Site == p })
	}
	reasons := strings.Join(w.reasons, "; ")
	if n := len(w.rec.Joined); n < w.manifest.MinSites || w.he.attempts >= maxKeyingAttempts {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("homomorphic encryption: the key setup failed (attempt %d; %d sites left, min_sites %d): %s",
			w.he.attempts, n, w.manifest.MinSites, reasons))
		return
	}
	w.audit(auditor.Event{Action: "he.setup.redone", JobID: w.id(), Detail: map[string]string{"without": strings.Join(lost, ","), "reasons": reasons}})
	if err := w.startKeying(ctx); err != nil {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, err.Error())
	}
}

// heResult takes a site's commitment to its encrypted update: signed by
// the site for this round of this setup, at the weight its commitment to
// the key gives it.
func (w *workflow) heResult(site string, m *hearthv1.TrainResult) error {
	h := w.he
	if m.Update != nil || m.UpdateStream != nil {
		return fmt.Errorf("an update in the clear in a job under homomorphic encryption")
	}
	if _, ok := h.index[site]; !ok {
		return fmt.Errorf("not a party to the job's key")
	}
	if err := w.statement(m.Encrypted, site, hejob.KindUpdateCommitment, w.round); err != nil {
		return err
	}
	weight, _, err := hejob.ParseUpdateCommitment(m.Encrypted.Payload)
	switch {
	case err != nil:
		return err
	case !hejob.SameWeight(weight, h.weights[site]):
		return fmt.Errorf("encrypted at weight %g; its committed samples give %g", weight, h.weights[site])
	}
	h.roundCommits[site] = m.Encrypted
	return nil
}

// startReveal hands the round's contributors its update commitments, for
// each to reveal its ciphertext against.
func (w *workflow) startReveal(ctx actor.Context) {
	h := w.he
	var set []string
	for _, s := range sorted(w.answered) {
		if h.roundCommits[s] != nil {
			set = append(set, s)
		}
	}
	if len(set) < h.t {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %d encrypted updates, fewer than the %d whose sum may be decrypted: %s",
			w.round, len(set), h.t, strings.Join(w.reasons, "; ")))
		return
	}
	commits := make([]*hearthv1.HESigned, len(set))
	for i, s := range set {
		commits[i] = h.roundCommits[s]
	}
	h.revealSet, h.revealDigest = set, hejob.CommitmentsDigest(commits)
	h.updates, h.cts, h.sum, h.revealW = map[string]*hearthv1.HESigned{}, map[string]*he.Ciphertext{}, nil, map[string]float64{}
	w.phase, w.pending = revealing, map[string]bool{}
	for _, s := range set {
		w.ask(ctx, s, &hearthv1.HEReveal{JobId: w.id(), Round: w.round, Commitments: commits})
	}
}

// heRevealed takes a contributor's revealed update: signed for the round,
// against this reveal's set, the ciphertext it committed to, under the
// job's key, of the model's size, one site's.
func (w *workflow) heRevealed(site string, m *hearthv1.HERevealed) error {
	h := w.he
	if w.phase != revealing || !slices.Contains(h.revealSet, site) || m.Round != w.round {
		return fmt.Errorf("a reveal it was not asked for (round %d)", m.Round)
	}
	if err := w.statement(m.Update, site, hejob.KindUpdate, w.round); err != nil {
		return err
	}
	u, err := hejob.ParseUpdate(m.Update.Payload)
	if err == nil {
		err = hejob.CheckReveal(u, h.roundCommits[site], h.revealDigest)
	}
	if err != nil {
		return err
	}
	ct := u.Ciphertext
	switch {
	case ct.Key() != h.pk.ID():
		return fmt.Errorf("encrypted under key %s, not the job's %s", ct.Key(), h.pk.ID())
	case ct.Len() != h.values:
		return fmt.Errorf("an update of %d values, the model has %d", ct.Len(), h.values)
	case ct.Summands() != 1:
		return fmt.Errorf("a ciphertext that is a sum of %d updates", ct.Summands())
	}
	h.updates[site], h.cts[site], h.revealW[site] = m.Update, ct, u.Weight
	w.bytes += int64(proto.Size(m.Update))
	return nil
}

// revealNext goes on to the decryption once every contributor revealed.
// One that did not fails the job: the others revealed against the round's
// whole set, and a site reveals against one set only, for a second, smaller
// set would let two groups of t decrypt two sums of the round (each site
// only one, a colluder in both), whose difference is a site's update.
func (w *workflow) revealNext(ctx actor.Context) {
	h := w.he
	var lost []string
	for _, s := range h.revealSet {
		if h.cts[s] == nil {
			lost = append(lost, s)
		}
	}
	if len(lost) > 0 {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %s committed to an encrypted update and did not reveal it, so the round cannot be decrypted: %s",
			w.round, strings.Join(lost, ", "), strings.Join(w.reasons, "; ")))
		return
	}
	w.startDecrypt(ctx)
}

// beginRound clears the open round's commitments and ciphertexts.
func (h *heState) beginRound() {
	h.roundCommits, h.revealSet = map[string]*hearthv1.HESigned{}, nil
	h.updates, h.cts, h.sum, h.weightSum = map[string]*hearthv1.HESigned{}, map[string]*he.Ciphertext{}, nil, 0
	h.active, h.decShares, h.failed = nil, nil, map[string]bool{}
}

// startDecrypt adds the round's ciphertexts and asks t parties for their
// decryption shares of the sum: the contributors first, then any other
// party; one that fails is replaced by another (the parties decrypt the same
// sum again for another active set, nothing else).
func (w *workflow) startDecrypt(ctx actor.Context) {
	h := w.he
	contributors := h.revealSet // every one revealed
	if len(contributors) < h.t {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %d encrypted updates, fewer than the %d whose sum may be decrypted: %s",
			w.round, len(contributors), h.t, strings.Join(w.reasons, "; ")))
		return
	}
	if h.sum == nil {
		cts := make([]*he.Ciphertext, len(contributors))
		h.weightSum = 0
		for i, s := range contributors {
			cts[i] = h.cts[s]
			h.weightSum += h.revealW[s] // as signed, in the order the sites add them up too
		}
		sum, err := he.Sum(cts...)
		if err != nil {
			w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %v", w.round, err))
			return
		}
		h.sum = sum
	}
	candidates := slices.DeleteFunc(append(slices.Clone(contributors), h.parties...), func(p string) bool {
		_, party := h.index[p]
		return !party || h.failed[p] || !w.reachable(p)
	})
	var active []string
	for _, p := range candidates {
		if !slices.Contains(active, p) && len(active) < h.t {
			active = append(active, p)
		}
	}
	if len(active) < h.t {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: %d sites can decrypt, the threshold is %d: %s",
			w.round, len(active), h.t, strings.Join(w.reasons, "; ")))
		return
	}
	slices.SortFunc(active, func(a, b string) int { return h.index[a] - h.index[b] })
	indices := make([]int32, len(active))
	for i, p := range active {
		indices[i] = int32(h.index[p])
	}
	updates, commits := make([]*hearthv1.HESigned, len(contributors)), make([]*hearthv1.HESigned, len(contributors))
	for i, s := range contributors {
		updates[i], commits[i] = h.updates[s], h.roundCommits[s]
	}
	h.active, h.decShares, h.decSigned, h.answered = active, map[string]*he.DecryptionShare{}, map[string]*hearthv1.HESigned{}, map[string]bool{}
	w.phase, w.pending = decrypting, map[string]bool{}
	w.audit(auditor.Event{Action: "he.decrypt", JobID: w.id(), Round: w.round, Detail: map[string]string{
		"contributors": strings.Join(contributors, ","), "active": strings.Join(active, ",")}})
	ask := &hearthv1.HEDecrypt{JobId: w.id(), Round: w.round, Updates: updates, Active: indices, Commitments: commits}
	for _, p := range active {
		w.bytes += int64(proto.Size(ask))
		w.ask(ctx, p, ask)
	}
}

func (w *workflow) heDecryptionShare(site string, i int, m *hearthv1.HEDecryptionShare) error {
	h := w.he
	if w.phase != decrypting || !slices.Contains(h.active, site) {
		return fmt.Errorf("a decryption share it was not asked for")
	}
	if m.Round != w.round {
		return fmt.Errorf("a decryption share for round %d during round %d", m.Round, w.round)
	}
	if err := w.statement(m.Share, site, hejob.KindDecryptionShare, w.round); err != nil {
		return err
	}
	s := new(he.DecryptionShare)
	if err := s.UnmarshalBinary(m.Share.Payload); err != nil {
		return err
	}
	if s.From() != i {
		return fmt.Errorf("the decryption share of party %d, not its own (%d)", s.From(), i)
	}
	h.decShares[site], h.decSigned[site] = s, m.Share
	return nil
}

// decryptNext combines the active parties' shares once all answered, and
// hands the aggregator the decrypted mean; a party that failed is replaced.
func (w *workflow) decryptNext(ctx actor.Context) {
	h := w.he
	lost := false
	for _, p := range h.active {
		if h.decShares[p] == nil {
			h.failed[p], lost = true, true
		}
	}
	if lost {
		w.startDecrypt(ctx)
		return
	}
	shares := make([]*he.DecryptionShare, 0, len(h.active))
	for _, p := range h.active {
		shares = append(shares, h.decShares[p])
	}
	values, err := he.Combine(h.params, h.pk, h.sum, shares)
	if err != nil {
		w.finish(ctx, hearthv1.JobStatus_JOB_STATUS_FAILED, fmt.Sprintf("round %d: the decryption shares of %s do not combine: %v",
			w.round, strings.Join(h.active, ", "), err))
		return
	}
	mean := &model.Model{Tensors: make([]model.Tensor, len(h.layout))}
	flat := make([]float32, len(values))
	for i, v := range values {
		flat[i] = float32(v / h.weightSum) // as each site recomputes it (hejob.SameMean)
	}
	off := 0
	for k, s := range h.layout {
		n, _ := model.ShapeSize(s.Shape) // a layout the trainer made
		mean.Tensors[k] = model.Tensor{Name: s.Name, Shape: slices.Clone(s.Shape), Data: flat[off : off+n : off+n]}
		off += n
	}
	proof := &hearthv1.HEProof{Round: w.round}
	for _, s := range h.revealSet {
		proof.Commitments, proof.Updates = append(proof.Commitments, h.roundCommits[s]), append(proof.Updates, h.updates[s])
	}
	for _, p := range h.active {
		proof.Active, proof.Shares = append(proof.Active, int32(h.index[p])), append(proof.Shares, h.decSigned[p])
	}
	h.proof = proof
	w.audit(auditor.Event{Action: "he.decrypted", JobID: w.id(), Round: w.round, Detail: map[string]string{
		"active": strings.Join(h.active, ","), "weight": fmt.Sprintf("%.6f", h.weightSum)}})
	// Weight 1: the one update's mean is itself, bit for bit, as the
	// sites check it.
	ctx.Send(w.agg, &aggregator.Fold{Round: w.round, Site: heSum, Update: mean, Weight: 1})
	w.phase = closing
	w.askAggregator(ctx, &aggregator.Close{Round: w.round})
}
