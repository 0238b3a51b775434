// Package hostutil is what every phase needs to know about, and do to, the
// host it works on, through transport.Host so that it works the same
// locally and over SSH: the host's facts, writing a file only when it
// changes, and finding executables in the system path (looked up once per
// run).
package hostutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/kubeboot/kubeboot/transport"
)

// WriteIfChanged writes data to file unless the file already holds exactly
// that. It reports whether it wrote and whether a file was there before.
func WriteIfChanged(ctx context.Context, h transport.Host, file string, data []byte, mode fs.FileMode) (changed, existed bool, err error) {
	return WriteIfChangedHook(ctx, h, file, data, mode, nil)
}

// WriteIfChangedHook is WriteIfChanged that, when the file is about to be
// written, first calls before with whether it is there (prepare records
// it); an error from before stops the write.
func WriteIfChangedHook(ctx context.Context, h transport.Host, file string, data []byte, mode fs.FileMode, before func(existed bool) error) (changed, existed bool, err error) {
	old, err := h.ReadFile(ctx, file)
	switch {
	case err == nil:
		existed = true
		if bytes.Equal(old, data) {
			return false, true, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return false, false, fmt.Errorf("read %s: %w", file, err)
	}
	if before != nil {
		if err := before(existed); err != nil {
			return false, existed, err
		}
	}
	if err := h.WriteFile(ctx, file, data, mode); err != nil {
		return false, existed, fmt.Errorf("write %s: %w", file, err)
	}
	return true, existed, nil
}

// ReadTrimmed reads a small file (a sysctl, a version) without its
// surrounding white space.
func ReadTrimmed(ctx context.Context, h transport.Host, p string) (string, error) {
	b, err := h.ReadFile(ctx, p)
	return strings.TrimSpace(string(b)), err
}

// EnsureMode gives file mode if it has another one (rewriting it in place
// with the same content, atomically: transport.Host has no chmod). It
// reports whether it changed anything.
func EnsureMode(ctx context.Context, h transport.Host, file string, mode fs.FileMode) (bool, error) {
	fi, err := h.Stat(ctx, file)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", file, err)
	}
	if fi.Mode().Perm() == mode.Perm() {
		return false, nil
	}
	data, err := h.ReadFile(ctx, file)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", file, err)
	}
	if err := h.WriteFile(ctx, file, data, mode); err != nil {
		return false, fmt.Errorf("write %s: %w", file, err)
	}
	return true, nil
}
