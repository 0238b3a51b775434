package phases

import (
	"context"
	"reflect"
	"sync"

	"github.com/kubeboot/kubeboot/transport"
)

// What a run reads from a host more than once, read once: over SSH each
// read is a round trip. The caches travel in the context, tied to the host
// they are about, because checks and helpers see only a transport.Host.

type (
	checkRunKey  struct{}
	pathCacheKey struct{}
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
	if r, ok := ctx.Value(checkRunKey{}).(*checkRun); ok && sameHost(r.host, h) {
		return r
	}
	return nil
}

// pathCache holds lookPath's answers for one host. What installs
// executables (installFile, installPackages) calls forgetPaths.
type pathCache struct {
	host transport.Host

	mu    sync.Mutex
	found map[string]lookResult
}

type lookResult struct {
	path string
	err  error
}

func withPathCache(ctx context.Context, h transport.Host) context.Context {
	return context.WithValue(ctx, pathCacheKey{}, &pathCache{host: h})
}

// pathCacheOf returns the pathCache of ctx when it is about h, or nil.
func pathCacheOf(ctx context.Context, h transport.Host) *pathCache {
	if c, ok := ctx.Value(pathCacheKey{}).(*pathCache); ok && sameHost(c.host, h) {
		return c
	}
	return nil
}

func (c *pathCache) get(exe string) (lookResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.found[exe]
	return r, ok
}

func (c *pathCache) put(exe string, r lookResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.found == nil {
		c.found = map[string]lookResult{}
	}
	c.found[exe] = r
}

// forgetPaths drops every lookPath answer of ctx's run: an executable may
// have been installed.
func forgetPaths(ctx context.Context) {
	if c, ok := ctx.Value(pathCacheKey{}).(*pathCache); ok {
		c.mu.Lock()
		c.found = nil
		c.mu.Unlock()
	}
}

// sameHost reports whether a and b are the same Host value (false for a
// Host value that cannot be compared, rather than a panic).
func sameHost(a, b transport.Host) bool {
	if a == nil || b == nil {
		return false
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Type() != vb.Type() || !va.Comparable() || !vb.Comparable() {
		return false
	}
	return va.Equal(vb)
}
