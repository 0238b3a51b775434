package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"syscall"

	"github.com/pkg/sftp"
)

// pathErr wraps an SFTP error as a *fs.PathError (pkg/sftp returns bare
// os.ErrNotExist and friends for some calls) with the host's name in front.
func (s *SSH) pathErr(op, p string, err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		err = &fs.PathError{Op: op, Path: p, Err: err}
	}
	return s.errorf("%w", err)
}

// ReadFile implements Host.
func (s *SSH) ReadFile(ctx context.Context, p string) ([]byte, error) {
	c, err := s.sftpClient(ctx)
	if err != nil {
		return nil, err
	}
	f, err := c.Open(p)
	if err != nil {
		return nil, s.pathErr("open", p, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := f.WriteTo(&ctxWriter{ctx: ctx, w: &buf}); err != nil {
		return nil, s.pathErr("read", p, err)
	}
	return buf.Bytes(), nil
}

// WriteFile implements Host: a temporary file in the same directory gets the
// mode, the data and an fsync, then is renamed over path; parent
// directories are created 0755. On failure the temporary file is removed.
func (s *SSH) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	return s.writeAtomic(ctx, p, mode, func(f *sftp.File) error {
		_, err := f.ReadFrom(&ctxReader{ctx: ctx, r: bytes.NewReader(data), size: int64(len(data))})
		return err
	})
}

// Upload copies the local file at localPath to remotePath on the host,
// atomically as WriteFile does, streaming it (many SFTP writes in flight)
// without reading it into memory. Cancelling ctx stops the copy and removes
// the temporary file.
func (s *SSH) Upload(ctx context.Context, localPath, remotePath string, mode fs.FileMode) error {
	lf, err := os.Open(localPath)
	if err != nil {
		return s.errorf("upload %s: %w", localPath, err)
	}
	defer lf.Close()
	fi, err := lf.Stat()
	if err != nil {
		return s.errorf("upload %s: %w", localPath, err)
	}
	if !fi.Mode().IsRegular() {
		return s.errorf("upload %s: not a regular file", localPath)
	}
	return s.writeAtomic(ctx, remotePath, mode, func(f *sftp.File) error {
		n, err := f.ReadFromWithConcurrency(&ctxReader{ctx: ctx, r: lf, size: fi.Size()}, 0)
		if err == nil && n != fi.Size() {
			err = fmt.Errorf("copied %d of %d bytes from %s (did it change?)", n, fi.Size(), localPath)
		}
		return err
	})
}

// writeAtomic creates a temporary file next to p with mode, lets write fill
// it, syncs it and renames it over p.
func (s *SSH) writeAtomic(ctx context.Context, p string, mode fs.FileMode, write func(*sftp.File) error) (err error) {
	if err := ctx.Err(); err != nil {
		return s.errorf("write %s: %w", p, err)
	}
	c, err := s.sftpClient(ctx)
	if err != nil {
		return err
	}
	dir := path.Dir(p)
	if err := mkdirAll(c, dir, 0o755); err != nil {
		return s.pathErr("mkdir", dir, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(dir, "."+path.Base(p)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return s.pathErr("create", tmp, err)
	}
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			_ = c.Remove(tmp)
		}
	}()
	// The mode first, so that a key is never readable by others, not even empty.
	if err := f.Chmod(mode); err != nil {
		return s.pathErr("chmod", tmp, err)
	}
	if err := write(f); err != nil {
		return s.pathErr("write", p, err)
	}
	if err := s.fsync(ctx, c, f, tmp); err != nil {
		return err
	}
	closed = true
	if err := f.Close(); err != nil {
		return s.pathErr("close", tmp, err)
	}
	if err := s.rename(ctx, c, tmp, p); err != nil {
		return err
	}
	return nil
}

// fsync flushes f with OpenSSH's fsync@openssh.com extension, or, on an
// SFTP server without it, with `sync FILE` (coreutils fsyncs the file).
func (s *SSH) fsync(ctx context.Context, c *sftp.Client, f *sftp.File, p string) error {
	if v, ok := c.HasExtension("fsync@openssh.com"); ok && v == "1" {
		if err := f.Sync(); err != nil {
			return s.pathErr("fsync", p, err)
		}
		return nil
	}
	_, err := s.Run(ctx, Cmd{Args: []string{"sync", "--", p}})
	return err // names the host and the command
}

// rename replaces newp with oldp atomically: posix-rename@openssh.com, or
// mv (rename(2)) on a server without it. Plain SFTP rename refuses to
// replace an existing file.
func (s *SSH) rename(ctx context.Context, c *sftp.Client, oldp, newp string) error {
	if _, ok := c.HasExtension("posix-rename@openssh.com"); ok {
		if err := c.PosixRename(oldp, newp); err != nil {
			return s.errorf("rename %s %s: %w", oldp, newp, err)
		}
		return nil
	}
	_, err := s.Run(ctx, Cmd{Args: []string{"mv", "-f", "--", oldp, newp}})
	return err // names the host and the command
}

// mkdirAll creates p and its missing parents with mode.
func mkdirAll(c *sftp.Client, p string, mode fs.FileMode) error {
	fi, err := c.Stat(p)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := path.Dir(p); parent != p {
		if err := mkdirAll(c, parent, mode); err != nil {
			return err
		}
	}
	if err := c.Mkdir(p); err != nil {
		if fi, err2 := c.Stat(p); err2 == nil && fi.IsDir() {
			return nil // made meanwhile by someone else
		}
		return err
	}
	// SFTP mkdir carries no mode: the server applies its own default.
	return c.Chmod(p, mode.Perm())
}

// Stat implements Host; it follows symlinks.
func (s *SSH) Stat(ctx context.Context, p string) (fs.FileInfo, error) {
	c, err := s.sftpClient(ctx)
	if err != nil {
		return nil, err
	}
	fi, err := c.Stat(p)
	if err != nil {
		return nil, s.pathErr("stat", p, err)
	}
	return fi, nil
}

// ReadDir implements Host: the entries sorted by name, as os.ReadDir does.
func (s *SSH) ReadDir(ctx context.Context, p string) ([]fs.DirEntry, error) {
	c, err := s.sftpClient(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := c.ReadDirContext(ctx, p)
	if err != nil {
		return nil, s.pathErr("readdir", p, err)
	}
	out := make([]fs.DirEntry, 0, len(infos))
	for _, fi := range infos {
		out = append(out, fs.FileInfoToDirEntry(fi))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// MkdirAll implements Host: missing directories are created with mode.
func (s *SSH) MkdirAll(ctx context.Context, p string, mode fs.FileMode) error {
	c, err := s.sftpClient(ctx)
	if err != nil {
		return err
	}
	if err := mkdirAll(c, p, mode); err != nil {
		return s.pathErr("mkdir", p, err)
	}
	return nil
}

// Remove implements Host: a file or an empty directory; a missing one is
// not an error.
func (s *SSH) Remove(ctx context.Context, p string) error {
	c, err := s.sftpClient(ctx)
	if err != nil {
		return err
	}
	if err := c.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.pathErr("remove", p, err)
	}
	return nil
}

// ctxReader stops a copy when ctx ends. Size lets pkg/sftp plan its
// concurrent writes.
type ctxReader struct {
	ctx  context.Context
	r    io.Reader
	size int64
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func (r *ctxReader) Size() int64 { return r.size }

// ctxWriter stops a download when ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w *ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}
