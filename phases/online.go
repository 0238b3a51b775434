package phases

import (
	"context"

	"github.com/kubeboot/kubeboot/phases/online"
)

// api returns the run's API clients; the apiextensions one only when asked.
func (d *Data) api(ctx context.Context, withExt bool) (online.API, error) {
	a := online.API{Out: d.Out, DryRun: d.DryRun}
	var err error
	if a.Kube, err = d.Client(ctx); err != nil {
		return a, err
	}
	if withExt {
		if a.Ext, err = d.ExtensionsClient(ctx); err != nil {
			return a, err
		}
	}
	return a, nil
}
