package nspawn

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// CacheDir is where the e2e tests keep what they build between runs:
// $KUBEBOOT_CACHE, else $XDG_CACHE_HOME/kubeboot, else ~/.cache/kubeboot (the
// same directory test/k8sbin/build.sh uses).
func CacheDir() string {
	if d := os.Getenv("KUBEBOOT_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "kubeboot")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".cache", "kubeboot")
}

func requireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the e2e machines need root (debootstrap, systemd-nspawn, bridges, cgroups): run as root")
	}
	return nil
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// command is exec.CommandContext that does not hang on a child that keeps
// the output pipes open after the context ends.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, name, args...)
	c.WaitDelay = 5 * time.Second
	return c
}

// run runs a command and returns an error carrying its output.
func run(ctx context.Context, name string, args ...string) error {
	out, err := command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return &cmdError{args: append([]string{name}, args...), err: err, out: out}
	}
	return nil
}

type cmdError struct {
	args []string
	err  error
	out  []byte
}

func (e *cmdError) Error() string {
	return quote(e.args) + ": " + e.err.Error() + ": " + string(bytes.TrimSpace(tail(e.out, 20)))
}

func (e *cmdError) Unwrap() error { return e.err }

func quote(args []string) string {
	var b bytes.Buffer
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a)
	}
	return b.String()
}

// tail returns the last n lines of out.
func tail(out []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}
