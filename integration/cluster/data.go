package cluster

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/hearthfl/hearth/actors/learning/dataset"
)

// SiteData is what one site holds of a dataset.
type SiteData struct {
	Site             string
	Train, Val, Test int
	ClassCounts      []int // of its training data
}

// Split is how a dataset was dealt to the sites.
type Split struct {
	Dataset string
	Alpha   float64
	Skew    float64 // dataset.LabelSkew of the training shares
	Sites   []SiteData
	// Pooled is the whole training split, for the centralized baseline;
	// TestSet the whole test split.
	Pooled, TestSet *dataset.Set
}

// ValidationShare is the part of each site's training share it holds out
// for validation.
const ValidationShare = 0.1

// PrepareData deals a dataset to the project's sites, as each site's own
// data would be in a real federation: the training split by Dirichlet label
// skew (alpha), 10% of each site's share held out for its local validation,
// and the test split dealt evenly, so that the sites' test scores weighted
// by size are the score on the whole test split. Each site's files go to
// workspace/data/<site>/<dataset>/{train,val,test}.bin, where its kit's
// data_dir points.
func (l *Local) PrepareData(name string, alpha float64, seed int64) (*Split, error) {
	train, test, err := dataset.Load(name)
	if err != nil {
		return nil, err
	}
	shares, err := dataset.DirichletSplit(train, len(l.Sites), alpha, seed)
	if err != nil {
		return nil, err
	}
	tests := deal(test, len(l.Sites), seed)
	split := &Split{Dataset: name, Alpha: alpha, Skew: dataset.LabelSkew(shares), Pooled: train, TestSet: test}
	for i, site := range l.Sites {
		tr, val := holdOut(shares[i], ValidationShare, seed+int64(i))
		dir := filepath.Join(l.Workspace, dataDir, site, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		for file, s := range map[string]*dataset.Set{"train.bin": tr, "val.bin": val, "test.bin": tests[i]} {
			if err := writeSet(filepath.Join(dir, file), s); err != nil {
				return nil, err
			}
		}
		split.Sites = append(split.Sites, SiteData{Site: site, Train: tr.Rows(), Val: val.Rows(), Test: tests[i].Rows(), ClassCounts: tr.ClassCounts()})
	}
	return split, nil
}

// holdOut moves a shuffled fraction of s (at least one sample) into a
// second set.
func holdOut(s *dataset.Set, fraction float64, seed int64) (rest, held *dataset.Set) {
	idx := rand.New(rand.NewPCG(uint64(seed), 0x5eed)).Perm(s.Rows())
	n := max(1, int(fraction*float64(s.Rows())))
	return pick(s, idx[n:]), pick(s, idx[:n])
}

// deal deals s's rows to n sets, shuffled, as evenly as possible.
func deal(s *dataset.Set, n int, seed int64) []*dataset.Set {
	idx := rand.New(rand.NewPCG(uint64(seed), 0xdea1)).Perm(s.Rows())
	out := make([]*dataset.Set, n)
	for i := range out {
		var mine []int
		for j := i; j < len(idx); j += n {
			mine = append(mine, idx[j])
		}
		out[i] = pick(s, mine)
	}
	return out
}

func pick(s *dataset.Set, rows []int) *dataset.Set {
	out := &dataset.Set{Classes: s.Classes, Features: s.Features, Name: s.Name,
		X: make([]float32, 0, len(rows)*s.Features), Y: make([]int, 0, len(rows))}
	for _, r := range rows {
		out.X = append(out.X, s.Row(r)...)
		out.Y = append(out.Y, s.Y[r])
	}
	return out
}

func writeSet(path string, s *dataset.Set) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := s.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
