// Package online is what init and join do in the cluster through its API
// server: upload-config's ConfigMaps, upload-certs' sealed Secret, the
// bootstrap token with its RBAC and cluster-info, mark-control-plane, and
// the add-ons (CoreDNS, kube-proxy, the pod network). Each step takes an
// API (the clients, a printer, whether it is a dry run) and plain arguments,
// never a workflow's state, so that init's and join's phases, apply, reset
// and renewal can all call it.
package online

import (
	"context"
	"fmt"
	"strings"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/phases/workflow"
)

// API is how the online steps reach the cluster: the clients, where they
// say what happened, and whether this is a dry run (the clients are then
// fakes and nothing is changed).
type API struct {
	Kube kubernetes.Interface
	// Ext is the apiextensions client, set only for steps that apply CRDs.
	Ext    apiextensionsclient.Interface
	Out    *workflow.Printer
	DryRun bool
}

// Apply creates or updates objs in order and prints what changed.
func (a API) Apply(ctx context.Context, tag string, objs ...apiclient.Object) error {
	_, err := a.ApplyAndReport(ctx, tag, false, objs)
	return err
}

// ApplyAndReport applies objs and prints one line per object: "Created X",
// "Updated X" or (unless quiet) "Using existing X"; in a dry run "Would
// create or update X". It returns how many objects changed.
func (a API) ApplyAndReport(ctx context.Context, tag string, quiet bool, objs []apiclient.Object) (int, error) {
	cs := apiclient.Clients{Kube: a.Kube, Ext: a.Ext}
	changed := 0
	for _, o := range objs {
		res, err := cs.Apply(ctx, o)
		if err != nil {
			return changed, err
		}
		if res != apiclient.Unchanged && !a.DryRun {
			changed++
		}
		if res != apiclient.Unchanged || !quiet || a.DryRun {
			a.Report(tag, res, apiclient.Describe(o))
		}
	}
	return changed, nil
}

// Report prints what happened to one object: "Created X", "Updated X",
// "Using existing X"; in a dry run "Would create or update X".
func (a API) Report(tag string, res apiclient.Result, what string) {
	switch {
	case a.DryRun:
		a.Out.Printf("dryrun", "Would create or update %s", what)
	case res == apiclient.Created:
		a.Out.Printf(tag, "Created %s", what)
	case res == apiclient.Updated:
		a.Out.Printf(tag, "Updated %s", what)
	default:
		a.Out.Printf(tag, "Using existing %s", what)
	}
}

// plural is "1 object" / "2 objects".
func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", what)
	}
	return fmt.Sprintf("%d %ss", n, strings.TrimSuffix(what, "s"))
}
