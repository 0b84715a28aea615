package checker

import (
	"context"
	"fmt"
)

// Local runs a Checker in process under the contract's checks, as Client
// runs a plugin: the job bounded before the checker sees it, the answer
// checked after (ErrContract), the checker's error a failure. A site's
// tests use it, and it is what a plugin costs measured against. It is
// safe for concurrent use when the checker's Check is.
type Local struct {
	name string
	c    Checker
}

// NewLocal configures c with config ({} when nil) and returns it under
// the contract's checks; name names it in errors.
func NewLocal(ctx context.Context, name string, c Checker, config []byte) (*Local, error) {
	if err := checkConfig(config); err != nil {
		return nil, err
	}
	if config == nil {
		config = []byte("{}")
	}
	if err := c.Configure(ctx, config); err != nil {
		return nil, fmt.Errorf("checker %s: configure: %w", name, err)
	}
	return &Local{name: name, c: c}, nil
}

// Check decides j as Client.Check does, in process.
func (l *Local) Check(ctx context.Context, j Job) (Decision, error) {
	if err := CheckJob(j); err != nil {
		return Decision{}, fmt.Errorf("checker %s: %w", l.name, err)
	}
	d, err := l.c.Check(ctx, j)
	if err == nil {
		err = CheckDecision(d)
	}
	if err != nil {
		return Decision{}, fmt.Errorf("checker %s: %w", l.name, err)
	}
	return d, nil
}
