package phases

import (
	"context"
	"sync"

	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/transport"
)

// What a run reads from a host more than once, read once: over SSH each
// read is a round trip. The caches travel in the context, tied to the host
// they are about, because checks and helpers see only a transport.Host.

type (
	checkRunKey struct{}
)

// checkRun is what the checks of one RunChecks share.
type checkRun struct {
	host transport.Host

	portsMu   sync.Mutex
	portsRead bool
	ports     map[int]bool
	portsErr  error
}

func withCheckRun(ctx context.Context, h transport.Host) context.Context {
	return context.WithValue(ctx, checkRunKey{}, &checkRun{host: h})
}

// checkRunOf returns the checkRun of ctx when it is about h, or nil.
func checkRunOf(ctx context.Context, h transport.Host) *checkRun {
	if r, ok := ctx.Value(checkRunKey{}).(*checkRun); ok && hostutil.SameHost(r.host, h) {
		return r
	}
	return nil
}
