package transport

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Uploader is a Host that copies a local file to itself without reading it
// into memory (bundles, binaries). SSH, Local and DryRun are Uploaders; use
// Upload to copy to any Host.
type Uploader interface {
	// Upload copies the local file localPath to path on the host,
	// atomically as WriteFile does (temporary file, mode, fsync, rename;
	// parents 0755).
	Upload(ctx context.Context, localPath, path string, mode fs.FileMode) error
}

// Upload copies the local file localPath to path on h: streamed when h is
// an Uploader, else read into memory and written with WriteFile.
func Upload(ctx context.Context, h Host, localPath, path string, mode fs.FileMode) error {
	if u, ok := h.(Uploader); ok {
		return u.Upload(ctx, localPath, path, mode)
	}
	data, err := os.ReadFile(localPath)
	if err != nil {
		return fmt.Errorf("upload %s: %w", localPath, err)
	}
	return h.WriteFile(ctx, path, data, mode)
}

// Upload implements Uploader: a streamed atomic copy.
func (*Local) Upload(ctx context.Context, localPath, path string, mode fs.FileMode) error {
	return copyFileAtomic(ctx, localPath, path, mode)
}

// Upload implements Uploader: the copy lands below Dir, like WriteFile's.
func (d *DryRun) Upload(ctx context.Context, localPath, path string, mode fs.FileMode) error {
	if err := copyFileAtomic(ctx, localPath, d.Path(path), mode); err != nil {
		return err
	}
	d.record(Action{Kind: "upload", Path: path, Mode: mode})
	return nil
}

// copyFileAtomic copies src to dst as WriteFileAtomic writes, streaming.
func copyFileAtomic(ctx context.Context, src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("upload %s: %w", src, err)
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil {
		return fmt.Errorf("upload %s: %w", src, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("upload %s: not a regular file", src)
	}
	return writeAtomic(dst, mode, func(f *os.File) error {
		if _, err := io.Copy(f, &ctxReader{ctx: ctx, r: in}); err != nil {
			return fmt.Errorf("upload %s to %s: %w", src, dst, err)
		}
		return nil
	})
}
