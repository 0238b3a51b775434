package transporttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/kubeboot/kubeboot/transport"
)

func TestFakeFiles(t *testing.T) {
	ctx := context.Background()
	f := New("m1")
	if f.Name() != "m1" {
		t.Errorf("Name() = %q", f.Name())
	}

	// Missing files look like the real file system's.
	_, err := f.ReadFile(ctx, "/etc/kubernetes/admin.conf")
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
		t.Fatalf("ReadFile(missing) = %v, want a *fs.PathError wrapping fs.ErrNotExist", err)
	}
	if _, err := f.Stat(ctx, "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(missing) = %v", err)
	}
	if _, err := f.ReadDir(ctx, "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadDir(missing) = %v", err)
	}
	if ok, err := transport.Exists(ctx, f, "/nope"); ok || err != nil {
		t.Errorf("Exists(missing) = %v, %v", ok, err)
	}

	// WriteFile creates parents; Stat and ReadDir see them.
	if err := f.WriteFile(ctx, "/etc/kubernetes/pki/ca.key", []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := f.ReadFile(ctx, "/etc/kubernetes/pki/ca.key")
	if err != nil || string(b) != "key" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	fi, err := f.Stat(ctx, "/etc/kubernetes/pki")
	if err != nil || !fi.IsDir() || fi.Name() != "pki" {
		t.Fatalf("Stat(parent) = %v, %v", fi, err)
	}
	fi, err = f.Stat(ctx, "etc/kubernetes/pki/ca.key") // relative: from /
	if err != nil || fi.Mode() != 0o600 || fi.Size() != 3 || fi.IsDir() {
		t.Fatalf("Stat(file) = %v, %v", fi, err)
	}
	if data, mode, ok := f.File("/etc/kubernetes/pki/ca.key"); !ok || string(data) != "key" || mode != 0o600 {
		t.Errorf("File = %q, %v, %v", data, mode, ok)
	}
	if _, _, ok := f.File("/etc/kubernetes"); ok {
		t.Error("File(dir) reported a file")
	}

	f.SetFile("/run/containerd/containerd.sock", nil, fs.ModeSocket|0o660)
	f.SetDir("/var/lib/etcd")
	f.SetFile("/etc/kubernetes/manifests/etcd.yaml", []byte("x"), 0o644)
	fi, err = f.Stat(ctx, "/run/containerd/containerd.sock")
	if err != nil || fi.Mode()&fs.ModeSocket == 0 {
		t.Errorf("socket Stat = %v, %v", fi, err)
	}

	entries, err := f.ReadDir(ctx, "/etc/kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, fmt.Sprintf("%s:%v", e.Name(), e.IsDir()))
	}
	if want := []string{"manifests:true", "pki:true"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ReadDir = %v, want %v", names, want)
	}
	if entries, err := f.ReadDir(ctx, "/var/lib/etcd"); err != nil || len(entries) != 0 {
		t.Errorf("ReadDir(empty dir) = %v, %v", entries, err)
	}
	want := []string{"/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/pki/ca.key", "/run/containerd/containerd.sock"}
	if got := f.Paths(); !reflect.DeepEqual(got, want) {
		t.Errorf("Paths = %v, want %v", got, want)
	}

	// Files are not directories, and vice versa.
	if _, err := f.ReadFile(ctx, "/etc/kubernetes"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("ReadFile(dir) = %v, want EISDIR", err)
	}
	if _, err := f.ReadDir(ctx, "/etc/kubernetes/pki/ca.key"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("ReadDir(file) = %v, want ENOTDIR", err)
	}
	if err := f.MkdirAll(ctx, "/etc/kubernetes/pki/ca.key/x", 0o755); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("MkdirAll under a file = %v, want ENOTDIR", err)
	}
	if _, err := f.Stat(ctx, "/etc/kubernetes/pki/ca.key/x"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Stat under a file = %v, want ENOTDIR", err)
	}
	if err := f.MkdirAll(ctx, "/a/b/c", 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, err := f.Stat(ctx, "/a/b"); err != nil || fi.Mode() != fs.ModeDir|0o700 {
		t.Errorf("MkdirAll parent = %v, %v", fi, err)
	}

	// Remove: files, empty directories, missing paths; not full directories.
	if err := f.Remove(ctx, "/etc/kubernetes/pki"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("Remove(non-empty dir) = %v, want ENOTEMPTY", err)
	}
	if err := f.Remove(ctx, "/etc/kubernetes/pki/ca.key"); err != nil {
		t.Error(err)
	}
	if err := f.Remove(ctx, "/etc/kubernetes/pki"); err != nil {
		t.Error(err)
	}
	if err := f.Remove(ctx, "/etc/kubernetes/pki"); err != nil {
		t.Errorf("Remove(missing) = %v, want nil", err)
	}
	if ok, _ := transport.Exists(ctx, f, "/etc/kubernetes/pki"); ok {
		t.Error("removed directory still exists")
	}

	// Data handed in or out is copied.
	data := []byte("abc")
	f.SetFile("/copy", data, 0o644)
	data[0] = 'X'
	got, _ := f.ReadFile(ctx, "/copy")
	got[1] = 'Y'
	if again, _ := f.ReadFile(ctx, "/copy"); string(again) != "abc" {
		t.Errorf("stored data changed to %q", again)
	}
}

func TestFakeCommands(t *testing.T) {
	ctx := context.Background()
	f := New("m1")
	f.Handle("systemctl", Reply("generic"))
	f.Handle("systemctl is-active", Reply("active\n"))
	f.Handle("systemctl is-active firewalld", Exit(3, "inactive"))
	var gotStdin string
	f.Handle("kubectl apply", func(c transport.Cmd) (transport.Result, error) {
		b, _ := io.ReadAll(c.Stdin)
		gotStdin = string(b)
		return transport.Result{}, f.WriteFile(ctx, "/applied", b, 0o644)
	})

	out, err := transport.Output(ctx, f, "systemctl", "is-active", "kubelet")
	if err != nil || out != "active" {
		t.Errorf("is-active kubelet = %q, %v", out, err)
	}
	_, err = f.Run(ctx, transport.Cmd{Args: []string{"systemctl", "is-active", "firewalld"}, ReadOnly: true})
	var ee *transport.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 3 || ee.Host != "m1" || !reflect.DeepEqual(ee.Args, []string{"systemctl", "is-active", "firewalld"}) {
		t.Errorf("firewalld: %#v", err)
	}
	if r, _ := f.Run(ctx, transport.Cmd{Args: []string{"systemctl", "daemon-reload"}}); string(r.Stdout) != "generic" {
		t.Errorf("daemon-reload = %q, want the shorter prefix's answer", out)
	}
	// A command marked read-only that transport.ReadOnlyCommand does not
	// know is refused, as a dry run refuses it.
	if _, err := f.Run(ctx, transport.Cmd{Args: []string{"systemctl", "restart", "kubelet"}, ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "is marked read-only") {
		t.Errorf("a mislabelled command: %v", err)
	}
	if _, err := f.Run(ctx, transport.Cmd{Args: []string{"kubectl", "apply", "-f", "-"}, Stdin: strings.NewReader("kind: Pod")}); err != nil {
		t.Fatal(err)
	}
	if gotStdin != "kind: Pod" {
		t.Errorf("handler read stdin %q", gotStdin)
	}
	if _, _, ok := f.File("/applied"); !ok {
		t.Error("a handler could not use the fake")
	}

	_, err = f.Run(ctx, transport.Cmd{Args: []string{"kubelet", "--version"}, ReadOnly: true})
	if !errors.As(err, &ee) || ee.ExitCode != 127 || !strings.Contains(err.Error(), "command not found") {
		t.Errorf("unhandled command: %v", err)
	}

	want := []string{
		"systemctl is-active kubelet",
		"systemctl is-active firewalld",
		"systemctl daemon-reload",
		"kubectl apply -f -",
		"kubelet --version",
	}
	if got := f.Commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("Commands =\n%q\nwant\n%q", got, want)
	}
	runs := f.Runs()
	if string(runs[3].Stdin) != "kind: Pod" || !runs[0].ReadOnly || runs[3].ReadOnly {
		t.Errorf("Runs = %+v", runs)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Run(cctx, transport.Cmd{Args: []string{"true"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run(cancelled) = %v", err)
	}
	if _, err := f.ReadFile(cctx, "/applied"); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadFile(cancelled) = %v", err)
	}
}

func TestFakeConcurrent(t *testing.T) {
	ctx := context.Background()
	f := New("m1")
	f.Handle("echo", Reply("hi"))
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("/d%d/f", i%4)
			for j := 0; j < 50; j++ {
				_ = f.WriteFile(ctx, p, []byte("x"), 0o644)
				_, _ = f.ReadFile(ctx, p)
				_, _ = f.ReadDir(ctx, "/")
				_, _ = f.Stat(ctx, p)
				_, _ = f.Run(ctx, transport.Cmd{Args: []string{"echo", "x"}})
				_ = f.Paths()
				_ = f.Commands()
			}
		}()
	}
	wg.Wait()
	if n := len(f.Commands()); n != 16*50 {
		t.Errorf("%d commands recorded, want %d", n, 16*50)
	}
}

func TestCounter(t *testing.T) {
	ctx := context.Background()
	f := New("h")
	f.Handle("true", Reply(""))
	c := NewCounter(f)
	if err := c.WriteFile(ctx, "/a/b", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := c.ReadFile(ctx, "/a//b"); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c.Stat(ctx, "/a")
	_, _ = c.ReadDir(ctx, "/a")
	_ = c.MkdirAll(ctx, "/c", 0o755)
	_ = c.Remove(ctx, "/c")
	_, _ = c.Run(ctx, transport.Cmd{Args: []string{"true", "x"}})
	_, _ = c.Run(ctx, transport.Cmd{Args: []string{"true"}})
	if got := c.Calls(KindReadFile, "/a/b"); got != 3 {
		t.Errorf("ReadFile /a/b: %d calls, want 3", got)
	}
	if got := c.Calls(KindRun, "true"); got != 2 {
		t.Errorf("Run true: %d calls, want 2", got)
	}
	want := map[string]int{KindWriteFile: 1, KindReadFile: 3, KindStat: 1, KindReadDir: 1, KindMkdirAll: 1, KindRemove: 1, KindRun: 2}
	if got := c.Kinds(); !reflect.DeepEqual(got, want) {
		t.Errorf("Kinds = %v, want %v", got, want)
	}
	if c.Total() != 10 {
		t.Errorf("Total = %d, want 10", c.Total())
	}
	if got := c.Most(1); len(got) != 1 || got[0] != "ReadFile /a/b: 3" {
		t.Errorf("Most(1) = %q", got)
	}
	if c.Name() != "h" {
		t.Errorf("Name = %q", c.Name())
	}
	c.Reset()
	if c.Total() != 0 {
		t.Errorf("after Reset, Total = %d", c.Total())
	}
}
