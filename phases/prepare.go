package phases

import (
	"strings"

	"github.com/kubeboot/kubeboot/phases/prepare"
	"github.com/kubeboot/kubeboot/phases/workflow"
)

// PrepareOptions are the options of the prepare phase.
type PrepareOptions struct {
	// Bundle is the absolute path, on the node, of an offline bundle
	// (kubeboot bundle create) to install from (--bundle). Empty: the
	// distribution's packages.
	Bundle string
}

// preparer is prepare's view of this run: one state for all its steps, and
// the host and configuration as they are now (join's discovery replaces
// the configuration after the run's Prepare).
func (d *Data) preparer() *prepare.Data {
	if d.prepare == nil {
		d.prepare = &prepare.Data{}
	}
	p := d.prepare
	p.Host, p.Cfg, p.Out, p.DryRun, p.Bundle, p.Facts = d.Host, d.Cfg, d.Out, d.DryRun, d.Prepare.Bundle, d.Facts
	p.Role = bundleRoleOf(d, p.Plan)
	return p
}

// PreparePhase is kubeboot's `prepare` (package prepare), first in init
// and join.
func PreparePhase() *Phase { return workflow.Adapt(prepare.Phase(), (*Data).preparer) }

// bundleRoleOf is the role the run prepares the node for: join's tells;
// init is a control plane unless it runs only prepare (and preflight).
func bundleRoleOf(d *Data, plan []string) string {
	if d.Join != nil {
		if isControlPlane(d) {
			return prepare.RoleControlPlane
		}
		return prepare.RoleWorker
	}
	for _, p := range plan {
		top, _, _ := strings.Cut(p, "/")
		if top != "prepare" && top != "preflight" {
			return prepare.RoleControlPlane
		}
	}
	return prepare.RoleUnknown
}
