package dashboard

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hearthfl/hearth/policies/resources"
)

// The GPUs and memory per GPU an org admin gives for a site, and whether
// it aggregates, reach the site's kit as its resources.json: approval
// hands provisioning the default policy files with resources.json
// replaced by the site's offer, so the kit's local/resources.json.default
// (in the root-signed manifest) carries them, "aggregate" written either
// way. A site that does not aggregate refuses a swarm job naming it among
// its aggregators (actors/participant). The site may still write its own
// local/resources.json over it, as over any default.

// resourcesFile is the resources policy's file name (policies/resources).
const resourcesFile = "resources.json"

// siteOffer is the site's resources as policies/resources parses them.
func siteOffer(st *Site) (resources.Offer, []byte, error) {
	aggregates := st.Aggregates
	o := resources.Offer{GPUs: st.GPUs, MemPerGPU: float64(st.GPUMemoryGiB), Aggregate: &aggregates}
	data, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return o, nil, err
	}
	data = append(data, '\n')
	if _, err := resources.Parse(data); err != nil { // the site would refuse to start
		return o, nil, fmt.Errorf("site %s: %w", st.Name, err)
	}
	return o, data, nil
}

// withSiteResources copies the root files of defaults into a temporary
// folder with resources.json replaced by st's offer, and returns it as a
// file system and a function that removes it.
func withSiteResources(defaults fs.FS, st *Site) (fs.FS, func(), error) {
	_, offer, err := siteOffer(st)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "hearth-site-defaults-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	entries, err := fs.ReadDir(defaults, ".")
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	for _, e := range entries {
		if e.Name() == resourcesFile || !e.Type().IsRegular() {
			continue // resources.json is the site's; WriteDefaultPolicies refuses anything not regular anyway
		}
		data, err := fs.ReadFile(defaults, e.Name())
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644)
		}
		if err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, resourcesFile), offer, 0o644); err != nil {
		cleanup()
		return nil, nil, err
	}
	return os.DirFS(dir), cleanup, nil
}
