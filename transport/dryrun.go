package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// DryRun wraps a host so that nothing on it changes. Files are written below
// Dir at their real path (Dir/etc/kubernetes/pki/ca.crt); reads look there
// first and fall back to the real host, so a second dry run into the same
// directory reuses what the first one wrote. Read-only commands run on the
// real host; every other command is recorded, not run, and succeeds.
type DryRun struct {
	Inner Host
	Dir   string

	mu      sync.Mutex
	actions []Action
}

// Action is one thing a dry run would have done on the real host.
type Action struct {
	Kind string // "write", "run", "mkdir", "remove"
	Path string // for write, mkdir, remove
	Mode fs.FileMode
	Args []string // for run
}

func (a Action) String() string {
	switch a.Kind {
	case "run":
		return "would run: " + Quote(a.Args)
	case "write":
		return fmt.Sprintf("would write %s (%04o)", a.Path, a.Mode.Perm())
	default:
		return fmt.Sprintf("would %s %s", a.Kind, a.Path)
	}
}

// NewDryRun returns a dry-run host over inner that writes below dir.
func NewDryRun(inner Host, dir string) *DryRun { return &DryRun{Inner: inner, Dir: dir} }

// Name implements Host.
func (d *DryRun) Name() string { return d.Inner.Name() }

// Path returns where the dry run keeps the file that would be at path.
func (d *DryRun) Path(path string) string { return filepath.Join(d.Dir, filepath.Clean("/"+path)) }

func (d *DryRun) record(a Action) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.actions = append(d.actions, a)
}

// Actions returns what the dry run would have done, in order.
func (d *DryRun) Actions() []Action {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Action(nil), d.actions...)
}

// Run implements Host: read-only commands run on the real host, the others
// are recorded.
func (d *DryRun) Run(ctx context.Context, c Cmd) (Result, error) {
	if c.ReadOnly {
		if !ReadOnlyCommand(c.Args) {
			return Result{}, fmt.Errorf("dry run: %s is marked read-only but is not a command known to change nothing (transport.ReadOnlyCommand); it was not run", Quote(c.Args))
		}
		return d.Inner.Run(ctx, c)
	}
	if c.Stdin != nil {
		// Consume it as the command would, so writers on pipes don't block.
		_, _ = io.Copy(io.Discard, c.Stdin)
	}
	d.record(Action{Kind: "run", Args: append([]string(nil), c.Args...)})
	return Result{}, nil
}

// ReadFile implements Host.
func (d *DryRun) ReadFile(ctx context.Context, path string) ([]byte, error) {
	b, err := os.ReadFile(d.Path(path))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	return d.Inner.ReadFile(ctx, path)
}

// WriteFile implements Host: the file lands below Dir.
func (d *DryRun) WriteFile(_ context.Context, path string, data []byte, mode fs.FileMode) error {
	if err := WriteFileAtomic(d.Path(path), data, mode); err != nil {
		return err
	}
	d.record(Action{Kind: "write", Path: path, Mode: mode})
	return nil
}

// Stat implements Host.
func (d *DryRun) Stat(ctx context.Context, path string) (fs.FileInfo, error) {
	fi, err := os.Stat(d.Path(path))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return fi, err
	}
	return d.Inner.Stat(ctx, path)
}

// ReadDir implements Host: the union of the real directory and its copy below Dir.
func (d *DryRun) ReadDir(ctx context.Context, path string) ([]fs.DirEntry, error) {
	mine, err1 := os.ReadDir(d.Path(path))
	theirs, err2 := d.Inner.ReadDir(ctx, path)
	if err1 != nil && err2 != nil {
		return nil, err2
	}
	seen := map[string]bool{}
	var out []fs.DirEntry
	for _, e := range append(mine, theirs...) {
		if !seen[e.Name()] {
			seen[e.Name()] = true
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// MkdirAll implements Host.
func (d *DryRun) MkdirAll(_ context.Context, path string, mode fs.FileMode) error {
	if err := os.MkdirAll(d.Path(path), mode); err != nil {
		return err
	}
	d.record(Action{Kind: "mkdir", Path: path, Mode: mode})
	return nil
}

// Remove implements Host: only the copy below Dir is removed.
func (d *DryRun) Remove(_ context.Context, path string) error {
	if err := os.Remove(d.Path(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	d.record(Action{Kind: "remove", Path: path})
	return nil
}
