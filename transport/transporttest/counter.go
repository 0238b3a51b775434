package transporttest

import (
	"context"
	"io/fs"
	"sort"
	"strconv"
	"sync"

	"github.com/kubeboot/kubeboot/transport"
)

// Call kinds a Counter counts: the transport.Host methods (Name aside).
const (
	KindRun       = "Run"
	KindReadFile  = "ReadFile"
	KindWriteFile = "WriteFile"
	KindStat      = "Stat"
	KindReadDir   = "ReadDir"
	KindMkdirAll  = "MkdirAll"
	KindRemove    = "Remove"
)

// Counter is a transport.Host that counts the calls made through it to
// another Host, by kind and by path (the command's first argument for Run),
// so that a test can say how many round trips a workflow costs over SSH.
// Every method is safe for concurrent use.
type Counter struct {
	transport.Host

	mu     sync.Mutex
	byKind map[string]int
	byPath map[[2]string]int
}

var _ transport.Host = (*Counter)(nil)

// NewCounter counts the calls made to h.
func NewCounter(h transport.Host) *Counter {
	return &Counter{Host: h, byKind: map[string]int{}, byPath: map[[2]string]int{}}
}

func (c *Counter) count(kind, p string) {
	if kind != KindRun {
		p = clean(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byKind[kind]++
	c.byPath[[2]string{kind, p}]++
}

// Total is the number of calls counted.
func (c *Counter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.byKind {
		n += k
	}
	return n
}

// Kinds returns the number of calls of every kind made at least once.
func (c *Counter) Kinds() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.byKind))
	for k, n := range c.byKind {
		out[k] = n
	}
	return out
}

// Calls is the number of calls of kind on p (a path, or the program for
// KindRun).
func (c *Counter) Calls(kind, p string) int {
	if kind != KindRun {
		p = clean(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byPath[[2]string{kind, p}]
}

// Most lists the n (kind, path) pairs called most often, as "ReadFile
// /etc/kubernetes/pki/ca.crt: 3", for a failing test to show where the
// calls went.
func (c *Counter) Most(n int) []string {
	c.mu.Lock()
	type row struct {
		key [2]string
		n   int
	}
	rows := make([]row, 0, len(c.byPath))
	for k, v := range c.byPath {
		rows = append(rows, row{k, v})
	}
	c.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].n != rows[j].n {
			return rows[i].n > rows[j].n
		}
		if rows[i].key[0] != rows[j].key[0] {
			return rows[i].key[0] < rows[j].key[0]
		}
		return rows[i].key[1] < rows[j].key[1]
	})
	var out []string
	for i := 0; i < len(rows) && i < n; i++ {
		out = append(out, rows[i].key[0]+" "+rows[i].key[1]+": "+strconv.Itoa(rows[i].n))
	}
	return out
}

// Reset forgets every call counted so far.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byKind = map[string]int{}
	c.byPath = map[[2]string]int{}
}

// Run implements transport.Host.
func (c *Counter) Run(ctx context.Context, cmd transport.Cmd) (transport.Result, error) {
	prog := ""
	if len(cmd.Args) > 0 {
		prog = cmd.Args[0]
	}
	c.count(KindRun, prog)
	return c.Host.Run(ctx, cmd)
}

// ReadFile implements transport.Host.
func (c *Counter) ReadFile(ctx context.Context, p string) ([]byte, error) {
	c.count(KindReadFile, p)
	return c.Host.ReadFile(ctx, p)
}

// WriteFile implements transport.Host.
func (c *Counter) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	c.count(KindWriteFile, p)
	return c.Host.WriteFile(ctx, p, data, mode)
}

// Stat implements transport.Host.
func (c *Counter) Stat(ctx context.Context, p string) (fs.FileInfo, error) {
	c.count(KindStat, p)
	return c.Host.Stat(ctx, p)
}

// ReadDir implements transport.Host.
func (c *Counter) ReadDir(ctx context.Context, p string) ([]fs.DirEntry, error) {
	c.count(KindReadDir, p)
	return c.Host.ReadDir(ctx, p)
}

// MkdirAll implements transport.Host.
func (c *Counter) MkdirAll(ctx context.Context, p string, mode fs.FileMode) error {
	c.count(KindMkdirAll, p)
	return c.Host.MkdirAll(ctx, p, mode)
}

// Remove implements transport.Host.
func (c *Counter) Remove(ctx context.Context, p string) error {
	c.count(KindRemove, p)
	return c.Host.Remove(ctx, p)
}
