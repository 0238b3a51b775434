// Package transport hides how kubeboot reaches a host: the local machine
// (init on bare metal), a dry-run recorder that writes under a directory and
// changes nothing, and SSH+SFTP (DialSSH; the inventory install). Phases and
// preflight checks use only the Host interface, so they run unchanged on any
// of them. Upload copies big files to any Host; Each runs a function on many
// hosts with a limit and collects every host's failure.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Cmd is a command to run on a host: an argument list, never a shell line.
// The transport quotes it when it has to (SSH).
type Cmd struct {
	Args []string
	// Stdin, when set, is fed to the command. Secrets travel here, never
	// in Args, where ps and logs would see them.
	Stdin io.Reader
	// ReadOnly marks a command that does not change the host (systemctl
	// is-active, uname). A dry run executes read-only commands and only
	// records the others; a command marked read-only must be on
	// ReadOnlyCommand's list, or a dry run refuses it.
	ReadOnly bool
	// Stdout and Stderr, when set, receive the command's output as it
	// arrives; Result.Stdout is then empty, while stderr is still kept in
	// Result.Stderr and ExitError for the error message. They may be
	// called from another goroutine; Run returns after the last write.
	Stdout, Stderr io.Writer
}

// String renders the command for logs, quoted like a shell would need it.
func (c Cmd) String() string { return Quote(c.Args) }

// Result is what a finished command printed.
type Result struct {
	Stdout []byte
	Stderr []byte
}

// ExitError is returned by Run when a command ran and exited non-zero. It
// carries the command, the exit code and stderr, so the message alone says
// what failed.
type ExitError struct {
	Host     string
	Args     []string
	ExitCode int
	Stderr   string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", Quote(e.Args), e.ExitCode)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// Host is one machine kubeboot acts on. Every method is safe for concurrent use.
// Errors for missing files wrap fs.ErrNotExist.
type Host interface {
	// Name identifies the host in logs ("local", "m1 (10.0.0.11)").
	Name() string
	// Run runs a command and waits for it. A non-zero exit is an *ExitError.
	Run(ctx context.Context, cmd Cmd) (Result, error)
	// ReadFile returns a file's contents.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// WriteFile writes a file atomically (a temporary file in the same
	// directory, renamed into place) with the given mode, creating parent
	// directories (0755) as needed.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error
	// Stat describes a file; it follows symlinks.
	Stat(ctx context.Context, path string) (fs.FileInfo, error)
	// ReadDir lists a directory.
	ReadDir(ctx context.Context, path string) ([]fs.DirEntry, error)
	// MkdirAll creates a directory and its parents.
	MkdirAll(ctx context.Context, path string, mode fs.FileMode) error
	// Remove deletes a file or an empty directory; a missing one is not an error.
	Remove(ctx context.Context, path string) error
}

// Exists reports whether path exists on h. Errors other than "does not exist"
// are returned.
func Exists(ctx context.Context, h Host, path string) (bool, error) {
	_, err := h.Stat(ctx, path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// Output runs a read-only command and returns its trimmed stdout.
func Output(ctx context.Context, h Host, args ...string) (string, error) {
	r, err := h.Run(ctx, Cmd{Args: args, ReadOnly: true})
	return strings.TrimSpace(string(r.Stdout)), err
}

// Quote renders args as one POSIX shell line, quoting what needs it.
func Quote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = quoteArg(a)
	}
	return strings.Join(out, " ")
}

func quoteArg(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@+%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
