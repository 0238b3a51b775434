package hostutil

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"strings"
	"sync"

	"github.com/kubeboot/kubeboot/transport"
)

// systemPath is where executables are looked for, in order. A remote
// host's PATH depends on how kubeboot logged in, so it is fixed here.
var systemPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// LookPath finds an executable file named exe in systemPath. It returns an
// error wrapping fs.ErrNotExist when there is none. Within a Runner's run
// or a RunChecks, on the host it is for, each executable is looked up once
// (until ForgetPaths: something was installed).
func LookPath(ctx context.Context, h transport.Host, exe string) (string, error) {
	c := pathCacheOf(ctx, h)
	if c == nil {
		return statPath(ctx, h, exe)
	}
	if r, ok := c.get(exe); ok {
		return r.path, r.err
	}
	p, err := statPath(ctx, h, exe)
	if ctx.Err() == nil {
		c.put(exe, lookResult{p, err})
	}
	return p, err
}

func statPath(ctx context.Context, h transport.Host, exe string) (string, error) {
	for _, dir := range systemPath {
		p := path.Join(dir, exe)
		fi, err := h.Stat(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			continue
		}
		if fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", NotInPathError(exe)
}

// NotInPathError says an executable is not in systemPath; it is an
// fs.ErrNotExist.
type NotInPathError string

func (e NotInPathError) Error() string {
	return fmt.Sprintf("%s not found in %s", string(e), strings.Join(systemPath, ":"))
}

func (NotInPathError) Is(target error) bool { return target == fs.ErrNotExist }

type pathCacheKey struct{}

// pathCache holds LookPath's answers for one host. What installs
// executables (installFile, installPackages) calls ForgetPaths.
type pathCache struct {
	host transport.Host

	mu    sync.Mutex
	found map[string]lookResult
}

type lookResult struct {
	path string
	err  error
}

// WithPathCache returns a context in which LookPath answers for h from a
// cache (ctx itself when it already has one for h).
func WithPathCache(ctx context.Context, h transport.Host) context.Context {
	if pathCacheOf(ctx, h) != nil {
		return ctx
	}
	return context.WithValue(ctx, pathCacheKey{}, &pathCache{host: h})
}

// pathCacheOf returns the pathCache of ctx when it is about h, or nil.
func pathCacheOf(ctx context.Context, h transport.Host) *pathCache {
	if c, ok := ctx.Value(pathCacheKey{}).(*pathCache); ok && SameHost(c.host, h) {
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

// ForgetPaths drops every LookPath answer of ctx's run: an executable may
// have been installed.
func ForgetPaths(ctx context.Context) {
	if c, ok := ctx.Value(pathCacheKey{}).(*pathCache); ok {
		c.mu.Lock()
		c.found = nil
		c.mu.Unlock()
	}
}

// SameHost reports whether a and b are the same Host value (false for a
// Host value that cannot be compared, rather than a panic).
func SameHost(a, b transport.Host) bool {
	if a == nil || b == nil {
		return false
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Type() != vb.Type() || !va.Comparable() || !vb.Comparable() {
		return false
	}
	return va.Equal(vb)
}
