// Command hearth-filter-noop is a privacy filter plugin that passes the
// update through unchanged: the smallest filter a site can pin in its
// local/privacy.json, and what `hearth bench --site-filter` measures the
// plugin boundary with (the model into shared memory and back, the gRPC
// call, the host's checks).
package main

import (
	"context"

	"github.com/hearthfl/hearth/actors/learning/model"
	"github.com/hearthfl/hearth/plugins/filter"
)

type noop struct{}

func (noop) Configure(context.Context, []byte, filter.Direction) error { return nil }

func (noop) Apply(_ context.Context, _ filter.Direction, _, local *model.Model) (*model.Model, filter.Report, error) {
	return local, filter.Report{}, nil
}

func main() { filter.Serve(noop{}) }
