package phases

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubeboot/kubeboot/apiclient"
)

// The online phases' shared helpers: applying objects through the API and
// saying what happened, one line per object.

// clients returns the API clients; the apiextensions one only when asked.
func clients(ctx context.Context, d *Data, withExt bool) (apiclient.Clients, error) {
	c, err := d.Client(ctx)
	if err != nil {
		return apiclient.Clients{}, err
	}
	cs := apiclient.Clients{Kube: c}
	if withExt {
		if cs.Ext, err = d.ExtensionsClient(ctx); err != nil {
			return cs, err
		}
	}
	return cs, nil
}

// applyObjects creates or updates objs in order and prints what changed.
func applyObjects(ctx context.Context, d *Data, tag string, objs ...apiclient.Object) error {
	_, err := applyAndReport(ctx, d, tag, false, false, objs)
	return err
}

// applyAndReport applies objs and prints one line per object: "Created X",
// "Updated X" or (unless quiet) "Using existing X"; in a dry run "Would
// create or update X". It returns how many objects changed.
func applyAndReport(ctx context.Context, d *Data, tag string, withExt, quiet bool, objs []apiclient.Object) (int, error) {
	cs, err := clients(ctx, d, withExt)
	if err != nil {
		return 0, err
	}
	changed := 0
	for _, o := range objs {
		res, err := cs.Apply(ctx, o)
		if err != nil {
			return changed, err
		}
		desc := apiclient.Describe(o)
		switch {
		case d.DryRun:
			d.Out.Printf("dryrun", "Would create or update %s", desc)
		case res == apiclient.Created:
			changed++
			d.Out.Printf(tag, "Created %s", desc)
		case res == apiclient.Updated:
			changed++
			d.Out.Printf(tag, "Updated %s", desc)
		case !quiet:
			d.Out.Printf(tag, "Using existing %s", desc)
		}
	}
	return changed, nil
}

// plural is "1 object" / "2 objects".
func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", what)
	}
	return fmt.Sprintf("%d %ss", n, strings.TrimSuffix(what, "s"))
}
