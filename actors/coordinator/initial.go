package coordinator

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hearthfl/hearth/actors/job"
	"github.com/hearthfl/hearth/actors/learning/model"
	hearthv1 "github.com/hearthfl/hearth/schemas/hearth/v1"
)

// A job that brings its own trainer (a PyTorch script) has a model whose
// layout only the script knows, and the server runs no job code: each
// site's trainer prepares an initial model when the site joins, and sends
// it in its JobJoined. The layout most joined sites report is the job's;
// a site whose layout differs is left out, as one whose data's shape
// differs is. Round 0 is the model of the first site by name with that
// layout. Which site's values those are matters as little as any one
// site's update: every site trains from it and sends its own.

// initials are the initial models the joined sites reported.
type initials struct {
	layouts map[string][32]byte // by site: its layout's digest
	first   map[[32]byte]firstInitial
	chosen  *model.Model // once settled
}

// firstInitial is the model of the first site, by name, with one layout.
type firstInitial struct {
	site  string
	model *model.Model
}

// takeInitial takes a joining site's initial model: required, checked
// and decoded, for a job with its own trainer; refused for any other.
func (e *engine) takeInitial(site string, w *hearthv1.Model) error {
	if !e.manifest.Trainer.Custom() {
		if w != nil {
			return errors.New("an initial model for a job whose trainer is built in: the server makes that one")
		}
		return nil
	}
	if w == nil {
		return errors.New("no initial model: a job with its own trainer starts from the sites' (JobJoined.initial_model)")
	}
	if n := wireBytes(w); n > job.InlineLimit {
		return fmt.Errorf("an initial model of %d bytes, more than %d", n, job.InlineLimit)
	}
	m, err := job.FromWire(w)
	if err != nil {
		return fmt.Errorf("initial model: %w", err)
	}
	if err := m.Validate(); err != nil { // finite values, consistent shapes
		return fmt.Errorf("initial model: %w", err)
	}
	if e.initials == nil {
		e.initials = &initials{layouts: map[string][32]byte{}, first: map[[32]byte]firstInitial{}}
	}
	d := layoutDigest(model.LayoutOf(m))
	e.initials.layouts[site] = d
	if f, ok := e.initials.first[d]; !ok || site < f.site {
		e.initials.first[d] = firstInitial{site: site, model: m}
	}
	return nil
}

// wireBytes is the bytes of a wire model's values.
func wireBytes(w *hearthv1.Model) int64 {
	var n int64
	for _, t := range w.Tensors {
		n += int64(len(t.Data))
	}
	return n
}

// settleInitial decides a job's initial model from its joined sites'
// (see initials): the layout more than half of them report; the sites
// with another left out. No majority fails the job.
func (e *engine) settleInitial() error {
	if !e.manifest.Trainer.Custom() || e.initials == nil {
		return nil
	}
	in := e.initials
	votes := map[[32]byte]int{}
	for site, d := range in.layouts {
		if _, ok := e.rec.Joined[site]; ok { // still joined (its data's shape agreed)
			votes[d]++
		}
	}
	var won [32]byte
	total, best := 0, 0
	for d, n := range votes {
		total += n
		if n > best {
			won, best = d, n
		}
	}
	if total == 0 {
		return nil // nobody left: the quorum check says so
	}
	if 2*best <= total {
		var seen []string
		for _, site := range sorted(mapKeys(in.layouts)) {
			seen = append(seen, fmt.Sprintf("%s: %s", site, describeLayout(in.first[in.layouts[site]].model)))
		}
		return fmt.Errorf("the joined sites' trainers disagree on the model's layout and none has a majority: %s", strings.Join(seen, "; "))
	}
	for site, d := range in.layouts {
		if _, ok := e.rec.Joined[site]; ok && d != won {
			delete(e.rec.Joined, site)
			e.rec.Info.Commitments = slices.DeleteFunc(e.rec.Info.Commitments, func(c *hearthv1.SiteCommitment) bool { return c.Site == site })
			e.refuse(site, "join.refused", fmt.Sprintf("its trainer's model is %s; the job's (%s's) is %s", describeLayout(in.first[d].model),
				in.first[won].site, describeLayout(in.first[won].model)), "")
		}
	}
	in.chosen = in.first[won].model
	in.first = nil
	return nil
}

// layoutDigest is a digest of a model's tensor names and shapes.
func layoutDigest(layout []model.TensorShape) [32]byte {
	h := sha256.New()
	var b [8]byte
	for _, t := range layout {
		binary.BigEndian.PutUint64(b[:], uint64(len(t.Name)))
		h.Write(b[:])
		h.Write([]byte(t.Name))
		binary.BigEndian.PutUint64(b[:], uint64(len(t.Shape)))
		h.Write(b[:])
		for _, d := range t.Shape {
			binary.BigEndian.PutUint64(b[:], uint64(d))
			h.Write(b[:])
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// describeLayout says a model's size in a few words.
func describeLayout(m *model.Model) string {
	if m == nil {
		return "no model"
	}
	return fmt.Sprintf("%d tensors, %d parameters", len(m.Tensors), m.NumParams())
}
