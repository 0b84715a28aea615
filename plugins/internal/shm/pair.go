package shm

import (
	"errors"
	"fmt"
)

// Pair is a host's two shared memory files for a plugin's calls, in a
// private folder: In, which the host writes and the plugin maps, and
// Out, which the plugin writes. A call whose sizes differ from the last
// one's gets new files (new names, so a plugin that kept a mapping of the
// old ones never sees the new data). Not safe for concurrent use: the
// client that owns it serializes its calls.
type Pair struct {
	Dir     string // the private folder the files are made in
	In, Out *Region
	seq     int
}

// Ensure makes sure In and Out have these sizes, making new files when
// they differ.
func (p *Pair) Ensure(inSize, outSize int64) error {
	if p.In != nil && int64(len(p.In.Data)) == inSize && int64(len(p.Out.Data)) == outSize {
		return nil
	}
	if err := p.Close(); err != nil {
		return fmt.Errorf("shared memory: %w", err)
	}
	p.seq++
	in, err := Create(p.Dir, fmt.Sprintf("in-%d", p.seq), inSize)
	if err != nil {
		return err
	}
	out, err := Create(p.Dir, fmt.Sprintf("out-%d", p.seq), outSize)
	if err != nil {
		in.Close()
		return err
	}
	p.In, p.Out = in, out
	return nil
}

// Close unmaps and removes both files; the folder stays.
func (p *Pair) Close() error {
	var errs []error
	for _, r := range []*Region{p.In, p.Out} {
		if r != nil {
			errs = append(errs, r.Close())
		}
	}
	p.In, p.Out = nil, nil
	return errors.Join(errs...)
}
