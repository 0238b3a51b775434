package cluster

import (
	"context"
	"errors"
	"io/fs"
	"sync/atomic"
	"time"

	"github.com/kubeboot/kubeboot/transport"
)

// recorder is a Host that counts its round trips and writes every call to
// the debug log: the command (never its stdin, where the secrets are), how
// long it took, the exit code and stderr.
type recorder struct {
	transport.Host
	p     *printer
	name  string // the inventory's name
	calls atomic.Int64
	sent  atomic.Int64 // bytes uploaded
}

func (r *recorder) done(op string, start time.Time, err error) {
	r.calls.Add(1)
	if err != nil {
		r.p.logf("%s: %s (%s): error: %v", r.name, op, time.Since(start).Round(time.Millisecond), err)
		return
	}
	r.p.logf("%s: %s (%s)", r.name, op, time.Since(start).Round(time.Millisecond))
}

func (r *recorder) Run(ctx context.Context, c transport.Cmd) (transport.Result, error) {
	start := time.Now()
	res, err := r.Host.Run(ctx, c)
	op := "run " + c.String()
	var xe *transport.ExitError
	switch {
	case errors.As(err, &xe):
		r.calls.Add(1)
		r.p.logf("%s: %s (%s): exit code %d, stderr: %s", r.name, op, time.Since(start).Round(time.Millisecond), xe.ExitCode, xe.Stderr)
		return res, err
	case err == nil && len(res.Stderr) > 0:
		r.calls.Add(1)
		r.p.logf("%s: %s (%s): exit code 0, stderr: %s", r.name, op, time.Since(start).Round(time.Millisecond), res.Stderr)
		return res, err
	}
	r.done(op+": exit code 0", start, err)
	return res, err
}

func (r *recorder) ReadFile(ctx context.Context, p string) ([]byte, error) {
	start := time.Now()
	b, err := r.Host.ReadFile(ctx, p)
	r.done("read "+p, start, err)
	return b, err
}

func (r *recorder) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	start := time.Now()
	err := r.Host.WriteFile(ctx, p, data, mode)
	r.sent.Add(int64(len(data)))
	r.done("write "+p, start, err)
	return err
}

func (r *recorder) Stat(ctx context.Context, p string) (fs.FileInfo, error) {
	start := time.Now()
	fi, err := r.Host.Stat(ctx, p)
	r.done("stat "+p, start, err)
	return fi, err
}

func (r *recorder) ReadDir(ctx context.Context, p string) ([]fs.DirEntry, error) {
	start := time.Now()
	es, err := r.Host.ReadDir(ctx, p)
	r.done("readdir "+p, start, err)
	return es, err
}

func (r *recorder) MkdirAll(ctx context.Context, p string, mode fs.FileMode) error {
	start := time.Now()
	err := r.Host.MkdirAll(ctx, p, mode)
	r.done("mkdir "+p, start, err)
	return err
}

func (r *recorder) Remove(ctx context.Context, p string) error {
	start := time.Now()
	err := r.Host.Remove(ctx, p)
	r.done("remove "+p, start, err)
	return err
}

// upload copies a local file, counting it as one round trip.
func (r *recorder) upload(ctx context.Context, local, remote string, mode fs.FileMode, size int64) error {
	start := time.Now()
	err := transport.Upload(ctx, r.Host, local, remote, mode)
	if err == nil {
		r.sent.Add(size)
	}
	r.done("upload "+local+" to "+remote, start, err)
	return err
}
