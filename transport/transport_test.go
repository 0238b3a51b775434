package transport

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"systemctl", "restart", "kubelet"}, "systemctl restart kubelet"},
		{[]string{"sh", "-c", "echo 'hi' > /x"}, `sh -c 'echo '\''hi'\'' > /x'`},
		{[]string{"printf", ""}, "printf ''"},
		{[]string{"a b", "--flag=x,y"}, "'a b' --flag=x,y"},
	}
	for _, tt := range tests {
		if got := Quote(tt.args); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
}

func TestLocalRunExitError(t *testing.T) {
	h := NewLocal()
	res, err := h.Run(context.Background(), Cmd{Args: []string{"sh", "-c", "echo out; echo bad >&2; exit 3"}})
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v, want *ExitError", err)
	}
	if ee.ExitCode != 3 || !strings.Contains(ee.Error(), "bad") || !strings.Contains(ee.Error(), "exit status 3") {
		t.Errorf("ExitError = %+v (%v)", ee, ee)
	}
	if string(res.Stdout) != "out\n" {
		t.Errorf("stdout = %q", res.Stdout)
	}
	if _, err := h.Run(context.Background(), Cmd{Args: []string{"cat"}, Stdin: strings.NewReader("secret")}); err != nil {
		t.Errorf("stdin: %v", err)
	}
}

func TestWriteFileAtomicModesAndNoLeftovers(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b", "key")
	for _, mode := range []fs.FileMode{0o600, 0o644} {
		if err := WriteFileAtomic(p, []byte("data"), mode); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("mode = %v, want %v", fi.Mode().Perm(), mode)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temp files left)", len(entries))
	}
	// A write into a path whose parent is a file fails and leaves nothing.
	if err := WriteFileAtomic(filepath.Join(p, "x"), []byte("y"), 0o600); err == nil {
		t.Error("write below a regular file succeeded")
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	ctx := context.Background()
	real := t.TempDir()
	dir := t.TempDir()
	existing := filepath.Join(real, "etc", "present")
	if err := WriteFileAtomic(existing, []byte("real"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := NewDryRun(NewLocal(), dir)
	target := filepath.Join(real, "etc", "kubernetes", "admin.conf")
	if err := d.WriteFile(ctx, target, []byte("cfg"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dry run wrote the real file: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, target))
	if err != nil || string(got) != "cfg" {
		t.Errorf("file below the dry-run dir = %q, %v", got, err)
	}
	// Reads see the dry-run copy first, then the real host.
	if b, _ := d.ReadFile(ctx, target); string(b) != "cfg" {
		t.Errorf("read back %q", b)
	}
	if b, _ := d.ReadFile(ctx, existing); string(b) != "real" {
		t.Errorf("read through %q", b)
	}
	// Mutating commands are recorded, not run; read-only ones run.
	marker := filepath.Join(real, "ran")
	if _, err := d.Run(ctx, Cmd{Args: []string{"touch", marker}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("dry run ran a mutating command")
	}
	out, err := Output(ctx, d, "uname", "-s")
	if err != nil || out != "Linux" {
		t.Errorf("read-only command: %q, %v", out, err)
	}
	// A command marked read-only that is not known to be is refused,
	// not run.
	if _, err := d.Run(ctx, Cmd{Args: []string{"touch", marker}, ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "is marked read-only but is not a command known to change nothing") {
		t.Errorf("a mislabelled command: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("dry run ran a mislabelled command")
	}
	acts := d.Actions()
	if len(acts) != 2 || acts[0].Kind != "write" || acts[1].Kind != "run" || acts[1].String() != "would run: touch "+marker {
		t.Errorf("actions = %v", acts)
	}
}

func TestLocalRunStreams(t *testing.T) {
	var out, errOut bytes.Buffer
	res, err := NewLocal().Run(context.Background(), Cmd{Args: []string{"sh", "-c", "echo hi; echo bad >&2; exit 2"}, Stdout: &out, Stderr: &errOut})
	var ee *ExitError
	if out.String() != "hi\n" || errOut.String() != "bad\n" || len(res.Stdout) != 0 || !errors.As(err, &ee) || ee.Stderr != "bad\n" {
		t.Errorf("out %q, err out %q, res %q, err %v", out.String(), errOut.String(), res.Stdout, err)
	}
}
