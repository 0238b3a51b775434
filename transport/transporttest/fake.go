// Package transporttest provides Fake, an in-memory transport.Host for tests:
// a file tree with real file-system semantics and scripted commands, so that
// phases and preflight checks can be tested without touching the machine
// running the tests.
package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubeboot/kubeboot/transport"
)

// HandlerFunc answers a command run on a Fake. cmd.Stdin, when the caller
// set one, has already been read in full and is replayed from memory;
// cmd.Stdout and Stderr are the caller's writers (a handler may stream to
// them; what it returns in the Result goes there too).
type HandlerFunc func(cmd transport.Cmd) (transport.Result, error)

// Run is one command that ran on a Fake.
type Run struct {
	Args     []string
	Stdin    []byte
	ReadOnly bool
}

// String renders the command as transport.Quote does.
func (r Run) String() string { return transport.Quote(r.Args) }

// Fake is an in-memory transport.Host. The zero value is not usable; call New.
// Every method is safe for concurrent use.
type Fake struct {
	name string

	mu       sync.Mutex
	entries  map[string]*entry // cleaned absolute path → file or directory
	handlers map[string]HandlerFunc
	runs     []Run
}

type entry struct {
	data    []byte
	mode    fs.FileMode // includes fs.ModeDir for directories
	modTime time.Time
}

var _ transport.Host = (*Fake)(nil)

// New returns an empty host (only "/" exists) called name.
func New(name string) *Fake {
	f := &Fake{
		name:     name,
		entries:  map[string]*entry{},
		handlers: map[string]HandlerFunc{},
	}
	f.entries["/"] = &entry{mode: fs.ModeDir | 0o755, modTime: time.Now()}
	return f
}

// clean makes p absolute and clean; relative paths are taken from "/".
func clean(p string) string { return path.Clean("/" + p) }

// SetFile creates or replaces a file, creating its parent directories. mode
// may carry type bits (fs.ModeSocket for a container runtime socket,
// fs.ModeNamedPipe, ...); a directory mode is not allowed, use SetDir.
func (f *Fake) SetFile(p string, data []byte, mode fs.FileMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p = clean(p)
	if err := f.mkdirAllLocked(path.Dir(p), 0o755); err != nil {
		panic("transporttest: SetFile " + p + ": " + err.Error())
	}
	if e, ok := f.entries[p]; ok && e.mode.IsDir() {
		panic("transporttest: SetFile " + p + ": is a directory")
	}
	f.entries[p] = &entry{data: append([]byte(nil), data...), mode: mode &^ fs.ModeDir, modTime: time.Now()}
}

// SetDir creates a directory and its parents (0755).
func (f *Fake) SetDir(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.mkdirAllLocked(clean(p), 0o755); err != nil {
		panic("transporttest: SetDir " + p + ": " + err.Error())
	}
}

// File returns a file's contents and mode; ok is false when there is no
// file (or only a directory) at path.
func (f *Fake) File(p string) (data []byte, mode fs.FileMode, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, found := f.entries[clean(p)]
	if !found || e.mode.IsDir() {
		return nil, 0, false
	}
	return append([]byte(nil), e.data...), e.mode, true
}

// Paths lists every file (not directories), sorted.
func (f *Fake) Paths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for p, e := range f.entries {
		if !e.mode.IsDir() {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Snapshot is every file's path, mode and contents, one after another: two
// snapshots are equal when nothing on the fake changed.
func (f *Fake) Snapshot() string {
	var b strings.Builder
	for _, p := range f.Paths() {
		data, mode, _ := f.File(p)
		b.WriteString(p + " " + mode.String() + " " + string(data) + "\n")
	}
	return b.String()
}

// Handle routes commands whose quoted form (transport.Quote of the
// arguments) starts with prefix to fn. When several prefixes match, the
// longest wins. Handling the same prefix again replaces the handler.
func (f *Fake) Handle(prefix string, fn func(cmd transport.Cmd) (transport.Result, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[prefix] = fn
}

// Commands lists the commands that ran, quoted, in order.
func (f *Fake) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.runs))
	for i, r := range f.runs {
		out[i] = r.String()
	}
	return out
}

// Runs lists the commands that ran, with their stdin, in order.
func (f *Fake) Runs() []Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Run, len(f.runs))
	for i, r := range f.runs {
		out[i] = Run{Args: append([]string(nil), r.Args...), Stdin: append([]byte(nil), r.Stdin...), ReadOnly: r.ReadOnly}
	}
	return out
}

// Reply is a handler that prints stdout and succeeds.
func Reply(stdout string) HandlerFunc {
	return func(transport.Cmd) (transport.Result, error) {
		return transport.Result{Stdout: []byte(stdout)}, nil
	}
}

// Exit is a handler that fails with the exit code and stderr. The Fake fills
// in the host name and arguments of the *transport.ExitError.
func Exit(code int, stderr string) HandlerFunc {
	return func(transport.Cmd) (transport.Result, error) {
		return transport.Result{Stderr: []byte(stderr)}, &transport.ExitError{ExitCode: code, Stderr: stderr}
	}
}

// Name implements transport.Host.
func (f *Fake) Name() string { return f.name }

// Run implements transport.Host: the command is recorded, then answered by
// the handler with the longest matching prefix. An unhandled command fails
// like a missing program: exit status 127, "command not found".
func (f *Fake) Run(ctx context.Context, c transport.Cmd) (transport.Result, error) {
	if err := ctx.Err(); err != nil {
		return transport.Result{}, err
	}
	if len(c.Args) == 0 {
		return transport.Result{}, errors.New("run: empty command")
	}
	if c.ReadOnly && !transport.ReadOnlyCommand(c.Args) {
		// As DryRun does: a wrong label would change a real host in a
		// dry run.
		return transport.Result{}, fmt.Errorf("%s: %s is marked read-only but is not on transport.ReadOnlyCommand's list", f.name, transport.Quote(c.Args))
	}
	var stdin []byte
	if c.Stdin != nil {
		b, err := io.ReadAll(c.Stdin)
		if err != nil {
			return transport.Result{}, err
		}
		stdin = b
	}
	args := append([]string(nil), c.Args...)
	quoted := transport.Quote(args)

	f.mu.Lock()
	f.runs = append(f.runs, Run{Args: args, Stdin: stdin, ReadOnly: c.ReadOnly})
	var fn HandlerFunc
	best := -1
	for prefix, h := range f.handlers {
		if strings.HasPrefix(quoted, prefix) && len(prefix) > best {
			fn, best = h, len(prefix)
		}
	}
	f.mu.Unlock()

	if fn == nil {
		msg := args[0] + ": command not found"
		return transport.Result{Stderr: []byte(msg + "\n")}, &transport.ExitError{Host: f.name, Args: args, ExitCode: 127, Stderr: msg}
	}
	hc := transport.Cmd{Args: append([]string(nil), args...), ReadOnly: c.ReadOnly, Stdout: c.Stdout, Stderr: c.Stderr}
	if c.Stdin != nil {
		hc.Stdin = bytes.NewReader(stdin)
	}
	// The handler runs without the lock: it may use the Fake itself (a
	// "systemctl restart" handler that writes a file, say).
	res, err := fn(hc)
	// Canned output goes to the caller's writers, as a real host streams it.
	if c.Stdout != nil && len(res.Stdout) > 0 {
		_, _ = c.Stdout.Write(res.Stdout)
		res.Stdout = nil
	}
	if c.Stderr != nil && len(res.Stderr) > 0 {
		_, _ = c.Stderr.Write(res.Stderr)
	}
	var ee *transport.ExitError
	if errors.As(err, &ee) {
		if ee.Host == "" {
			ee.Host = f.name
		}
		if ee.Args == nil {
			ee.Args = args
		}
	}
	return res, err
}

func pathErr(op, p string, err error) error { return &fs.PathError{Op: op, Path: p, Err: err} }

// lookupLocked finds p, or says why it is not there: fs.ErrNotExist, or
// ENOTDIR when a parent is a file.
func (f *Fake) lookupLocked(p string) (*entry, error) {
	if e, ok := f.entries[p]; ok {
		return e, nil
	}
	for dir := path.Dir(p); ; dir = path.Dir(dir) {
		if e, ok := f.entries[dir]; ok && !e.mode.IsDir() {
			return nil, syscall.ENOTDIR
		}
		if dir == "/" {
			break
		}
	}
	return nil, fs.ErrNotExist
}

// ReadFile implements transport.Host.
func (f *Fake) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p = clean(p)
	e, err := f.lookupLocked(p)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	if e.mode.IsDir() {
		return nil, pathErr("read", p, syscall.EISDIR)
	}
	return append([]byte(nil), e.data...), nil
}

// WriteFile implements transport.Host: parents are created 0755.
func (f *Fake) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p = clean(p)
	if err := f.mkdirAllLocked(path.Dir(p), 0o755); err != nil {
		return err
	}
	if e, ok := f.entries[p]; ok && e.mode.IsDir() {
		return pathErr("open", p, syscall.EISDIR)
	}
	f.entries[p] = &entry{data: append([]byte(nil), data...), mode: mode.Perm(), modTime: time.Now()}
	return nil
}

// Stat implements transport.Host.
func (f *Fake) Stat(ctx context.Context, p string) (fs.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p = clean(p)
	e, err := f.lookupLocked(p)
	if err != nil {
		return nil, pathErr("stat", p, err)
	}
	return info(p, e), nil
}

// ReadDir implements transport.Host: entries sorted by name.
func (f *Fake) ReadDir(ctx context.Context, p string) ([]fs.DirEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p = clean(p)
	e, err := f.lookupLocked(p)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	if !e.mode.IsDir() {
		return nil, pathErr("readdirent", p, syscall.ENOTDIR)
	}
	var out []fs.DirEntry
	for q, child := range f.entries {
		if q != "/" && path.Dir(q) == p {
			out = append(out, fs.FileInfoToDirEntry(info(q, child)))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// MkdirAll implements transport.Host.
func (f *Fake) MkdirAll(ctx context.Context, p string, mode fs.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mkdirAllLocked(clean(p), mode)
}

func (f *Fake) mkdirAllLocked(p string, mode fs.FileMode) error {
	var missing []string
	for dir := p; ; dir = path.Dir(dir) {
		if e, ok := f.entries[dir]; ok {
			if !e.mode.IsDir() {
				return pathErr("mkdir", dir, syscall.ENOTDIR)
			}
			break
		}
		missing = append(missing, dir)
	}
	now := time.Now()
	for _, dir := range missing {
		f.entries[dir] = &entry{mode: fs.ModeDir | mode.Perm(), modTime: now}
	}
	return nil
}

// Remove implements transport.Host: a missing path is not an error, a
// non-empty directory is.
func (f *Fake) Remove(ctx context.Context, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p = clean(p)
	e, ok := f.entries[p]
	if !ok {
		return nil
	}
	if p == "/" {
		return pathErr("remove", p, syscall.EBUSY)
	}
	if e.mode.IsDir() {
		for q := range f.entries {
			if q != "/" && path.Dir(q) == p {
				return pathErr("remove", p, syscall.ENOTEMPTY)
			}
		}
	}
	delete(f.entries, p)
	return nil
}

// fileInfo is what Stat and ReadDir return.
type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func info(p string, e *entry) fileInfo {
	return fileInfo{name: path.Base(p), size: int64(len(e.data)), mode: e.mode, modTime: e.modTime}
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return i.modTime }
func (i fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }
