package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
)

// Local is the machine kubeboot runs on.
type Local struct{}

// NewLocal returns the local host.
func NewLocal() *Local { return &Local{} }

// Name implements Host.
func (*Local) Name() string { return "local" }

// Run implements Host.
func (*Local) Run(ctx context.Context, c Cmd) (Result, error) {
	if len(c.Args) == 0 {
		return Result{}, errors.New("run: empty command")
	}
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, c.Stdin
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(c.Stderr, &stderr)
	}
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return res, &ExitError{Host: "local", Args: c.Args, ExitCode: ee.ExitCode(), Stderr: stderr.String()}
	}
	if err != nil {
		return res, &ExitError{Host: "local", Args: c.Args, ExitCode: -1, Stderr: err.Error()}
	}
	return res, nil
}

// ReadFile implements Host.
func (*Local) ReadFile(_ context.Context, path string) ([]byte, error) { return os.ReadFile(path) }

// WriteFile implements Host.
func (*Local) WriteFile(_ context.Context, path string, data []byte, mode fs.FileMode) error {
	return WriteFileAtomic(path, data, mode)
}

// Stat implements Host.
func (*Local) Stat(_ context.Context, path string) (fs.FileInfo, error) { return os.Stat(path) }

// ReadDir implements Host.
func (*Local) ReadDir(_ context.Context, path string) ([]fs.DirEntry, error) { return os.ReadDir(path) }

// MkdirAll implements Host.
func (*Local) MkdirAll(_ context.Context, path string, mode fs.FileMode) error {
	return os.MkdirAll(path, mode)
}

// Remove implements Host.
func (*Local) Remove(_ context.Context, path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// WriteFileAtomic writes data to a temporary file next to path with the final
// mode already set, syncs it and renames it into place, so a reader (or a
// crash) never sees a half-written file. Parent directories are created 0755.
func WriteFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return writeAtomic(path, mode, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// writeAtomic is WriteFileAtomic with fill writing the content.
func writeAtomic(path string, mode fs.FileMode, fill func(*os.File) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
