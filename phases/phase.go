package phases

import (
	"context"

	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
)

// The phases of init and join are workflow phases that share Data.
type (
	Phase  = workflow.Phase[*Data]
	Runner = workflow.Runner[*Data]
)

// newRunner is a workflow of ps. Each run looks executables up once
// (LookPath), until something installs one.
func newRunner(command string, ps ...*Phase) *Runner {
	return &Runner{Command: command, Phases: ps, Context: runContext}
}

func runContext(ctx context.Context, d *Data) context.Context {
	return hostutil.WithPathCache(ctx, d.Host)
}
