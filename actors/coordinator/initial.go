package coordinator

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/actors/learning/trainer"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// A job that brings its own trainer (a PyTorch script) has a model whose
// layout only the script knows, and the server runs no job code. Each
// site's trainer prepares its model when the site joins, and the site
// reports only its layout's digest: values stay at the site (a script
// could hide the site's data in them; its updates pass the site's filters,
// its initial values would not). The digest most joined sites report is
// the job's, and a site with another is left out, as one whose data's
// shape differs is. The server then asks a site of that majority for the
// layout itself, checks it against the digest, and makes round 0 from it
// (trainer.InitLayout): no one site's values are in it, and a layout that
// a majority of sites' trainers agree on carries nothing of one site's.

// initials are what the joined sites reported of their trainers' models.
type initials struct {
	digests map[string][sha256.Size]byte // by site
	won     [sha256.Size]byte            // once settled: the majority's
	layout  []model.TensorShape          // once fetched: the majority's layout
}

// takeInitial takes a joining site's layout digest: required, for a job
// with its own trainer; refused for any other.
func (e *engine) takeInitial(site string, digest []byte) error {
	if !e.manifest.Trainer.Custom() {
		if digest != nil {
			return errors.New("a layout digest in a job whose trainer is built in: the server makes that model")
		}
		return nil
	}
	if len(digest) != sha256.Size {
		return fmt.Errorf("a layout digest of %d bytes, want the %d of a SHA-256: a job with its own trainer needs the site's (JobJoined.layout_sha256)", len(digest), sha256.Size)
	}
	if e.initials == nil {
		e.initials = &initials{digests: map[string][sha256.Size]byte{}}
	}
	e.initials.digests[site] = [sha256.Size]byte(digest)
	return nil
}

// settleInitial decides a job's layout from its joined sites' digests:
// the one more than half of them report; the sites with another left
// out. No majority fails the job.
func (e *engine) settleInitial() error {
	if !e.manifest.Trainer.Custom() || e.initials == nil {
		return nil
	}
	in := e.initials
	votes := map[[sha256.Size]byte]int{}
	total := 0
	for site, d := range in.digests {
		if _, ok := e.rec.Joined[site]; ok { // still joined (its data's shape agreed)
			votes[d]++
			total++
		}
	}
	if total == 0 {
		return nil // nobody left: the quorum check says so
	}
	best := 0
	for d, n := range votes {
		if n > best || n == best && bytes.Compare(d[:], in.won[:]) < 0 {
			in.won, best = d, n
		}
	}
	if 2*best <= total {
		return fmt.Errorf("the joined sites' trainers disagree on the model's layout and none has a majority: %d sites, %d layouts", total, len(votes))
	}
	for site, d := range in.digests {
		if _, ok := e.rec.Joined[site]; ok && d != in.won {
			e.unjoin(site, fmt.Sprintf("its trainer's model has another layout than %d of the %d joined sites' trainers", best, total))
		}
	}
	return nil
}

// layoutHolders are the joined sites whose trainers reported the job's
// layout, in name order.
func (e *engine) layoutHolders() []string {
	var out []string
	for _, site := range e.sites() {
		if d, ok := e.initials.digests[site]; ok && d == e.initials.won {
			out = append(out, site)
		}
	}
	return out
}

// fetchLayout asks the job's layout holders, in order, for the layout,
// until one answers one of the job's digest within the inline bound; a
// holder that answers anything else is left out. Then done runs on the
// actor, with an error when none did.
func (e *engine) fetchLayout(ctx actor.Context, holders []string, done func(error)) {
	if len(holders) == 0 {
		done(errors.New("no joined site answered its trainer's layout"))
		return
	}
	site := holders[0]
	e.askThen(ctx, site, &hearthv1.GetLayout{JobId: e.id(), LayoutSha256: e.initials.won[:]}, 0, func(res proto.Message, err error) {
		if err == nil {
			err = e.takeLayout(res)
		}
		if err != nil {
			e.unjoin(site, "its trainer's layout: "+err.Error())
			e.fetchLayout(ctx, holders[1:], done)
			return
		}
		done(nil)
	})
}

// takeLayout checks a site's answer to GetLayout against the job's digest
// and bounds, and keeps it.
func (e *engine) takeLayout(res proto.Message) error {
	w, ok := res.(*hearthv1.ModelLayout)
	if !ok {
		return fmt.Errorf("answered %T, not a layout", res)
	}
	layout, size, err := job.LayoutFromWire(w)
	if err != nil {
		return err
	}
	if size > job.InlineLimit {
		return fmt.Errorf("a model of %d bytes, more than the %d a job's own trainer's models may have in this version", size, job.InlineLimit)
	}
	if job.LayoutDigest(layout) != e.initials.won {
		return errors.New("a layout whose SHA-256 is not the one the sites reported")
	}
	e.initials.layout = layout
	return nil
}

// initialFromLayout is round 0 of a job with its own trainer: made by the
// server from the fetched layout, seeded by the job's seed.
func (e *engine) initialFromLayout() (*model.Model, error) {
	if e.initials == nil || e.initials.layout == nil {
		return nil, errors.New("initial model: no joined site's trainer gave its layout")
	}
	return trainer.InitLayout(e.initials.layout, e.manifest.Trainer.Seed)
}
