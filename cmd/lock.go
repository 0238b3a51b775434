package cmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kubeboot/kubeboot/phases/workflow"
)

// lockPath is the lock init and join hold while they change the node, so
// that a second kubeboot on the same host (an apply run again while the
// first one's join still runs there after its SSH connection dropped)
// waits instead of working on the same files at once.
var lockPath = "/run/kubeboot.lock"

// lockNode takes the node's lock, waiting up to wait for a running kubeboot
// to finish, and returns its release.
func lockNode(ctx context.Context, p *workflow.Printer, wait time.Duration) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	deadline := time.Now().Add(wait)
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", lockPath, err)
		}
		if !told {
			p.Printf("lock", "Another kubeboot is working on this node (it holds %s): waiting up to %s for it to finish", lockPath, wait)
			told = true
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another kubeboot has held %s for %s: wait for it, or stop it (fuser -v %s)", lockPath, wait, lockPath)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return func() { f.Close() }, nil
}
