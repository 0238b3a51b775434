package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kubeboot/kubeboot/transport/sshtest"
)

// TestMain lets the test binary stand in for OpenSSH's sftp-server (the
// sudo tests start it through a fake sudo).
func TestMain(m *testing.M) {
	if os.Getenv("SSHTEST_SFTP_SERVER") == "1" {
		if err := sshtest.ServeSFTPStdio(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type sshFixture struct {
	srv        *sshtest.Server
	dir        string // files the tests write on the "remote" host
	keyFile    string
	knownHosts string
}

func newSSHFixture(t *testing.T, opts sshtest.Options) *sshFixture {
	t.Helper()
	local := t.TempDir()
	signer, keyFile := sshtest.ClientKey(t, local)
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, signer.PublicKey())
	srv := sshtest.Start(t, opts)
	f := &sshFixture{srv: srv, dir: t.TempDir(), keyFile: keyFile, knownHosts: filepath.Join(local, "known_hosts")}
	srv.WriteKnownHosts(t, f.knownHosts)
	return f
}

func (f *sshFixture) config() SSHConfig {
	return SSHConfig{
		Name: "m1", Address: f.srv.Host, Port: f.srv.Port, KeyFile: f.keyFile,
		KnownHostsFile: f.knownHosts, ConnectTimeout: 5 * time.Second, Attempts: 3,
	}
}

func (f *sshFixture) dial(t *testing.T) *SSH {
	t.Helper()
	h, err := DialSSH(context.Background(), f.config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestSSHName(t *testing.T) {
	tests := []struct {
		cfg  SSHConfig
		want string
	}{
		{SSHConfig{Name: "m1", Address: "10.251.0.11", Port: 22}, "m1 (10.251.0.11)"},
		{SSHConfig{Name: "m1", Address: "127.0.0.1", Port: 2222}, "m1 (127.0.0.1:2222)"},
		{SSHConfig{Address: "10.0.0.1", Port: 22}, "10.0.0.1"},
		{SSHConfig{Name: "::1", Address: "::1", Port: 2222}, "[::1]:2222"},
	}
	for _, tt := range tests {
		if got := sshName(tt.cfg); got != tt.want {
			t.Errorf("sshName(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

func TestSSHRun(t *testing.T) {
	f := newSSHFixture(t, sshtest.Options{})
	h := f.dial(t)
	ctx := context.Background()
	big := strings.Repeat("0123456789abcdef", 1<<20/16*8) // 8 MiB
	tests := []struct {
		name       string
		cmd        Cmd
		wantOut    string
		wantErrOut string
		wantCode   int // -1: no error
	}{
		{"stdout", Cmd{Args: []string{"echo", "hello", "world"}}, "hello world\n", "", -1},
		{"quoting", Cmd{Args: []string{"printf", "%s|", "a b", "it's", "$HOME", "", "*"}}, "a b|it's|$HOME||*|", "", -1},
		{"exit code and stderr", Cmd{Args: []string{"sh", "-c", "echo out; echo bad thing >&2; exit 3"}}, "out\n", "bad thing\n", 3},
		{"not found", Cmd{Args: []string{"kubeboot-no-such-command"}}, "", "", 127},
		{"stdin", Cmd{Args: []string{"sh", "-c", "tr a-z A-Z"}, Stdin: strings.NewReader("secret token")}, "SECRET TOKEN", "", -1},
		{"stdin not read", Cmd{Args: []string{"true"}, Stdin: bytes.NewReader(make([]byte, 4<<20))}, "", "", -1},
		{"large stdin and output", Cmd{Args: []string{"cat"}, Stdin: strings.NewReader(big)}, big, "", -1},
		{"large stderr", Cmd{Args: []string{"sh", "-c", "cat >&2; exit 1"}, Stdin: strings.NewReader(big)}, "", big, 1},
		{"killed by signal", Cmd{Args: []string{"sh", "-c", "kill -9 $$"}}, "", "", 128 + 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := h.Run(ctx, tt.cmd)
			if got := string(res.Stdout); got != tt.wantOut {
				t.Errorf("stdout = %.80q (%d bytes), want %.80q (%d bytes)", got, len(got), tt.wantOut, len(tt.wantOut))
			}
			if tt.wantErrOut != "" && string(res.Stderr) != tt.wantErrOut {
				t.Errorf("stderr = %.80q (%d bytes), want %d bytes", res.Stderr, len(res.Stderr), len(tt.wantErrOut))
			}
			if tt.wantCode == -1 {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var ee *ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want an *ExitError", err)
			}
			if ee.ExitCode != tt.wantCode || ee.Host != "m1 ("+f.srv.Addr+")" || !reflect.DeepEqual(ee.Args, tt.cmd.Args) {
				t.Errorf("ExitError = code %d host %q args %q", ee.ExitCode, ee.Host, ee.Args)
			}
			if !strings.HasPrefix(err.Error(), h.Name()+": ") || !strings.Contains(err.Error(), fmt.Sprintf("exit status %d", tt.wantCode)) {
				t.Errorf("error %q does not start with the host or lacks the exit status", err)
			}
			if tt.wantErrOut != "" && len(tt.wantErrOut) < 100 && !strings.Contains(err.Error(), strings.TrimSpace(tt.wantErrOut)) {
				t.Errorf("error %q lacks stderr", err)
			}
		})
	}
	if _, err := h.Run(ctx, Cmd{}); err == nil {
		t.Error("empty command ran")
	}
}

// processGone waits up to 5s for pid to end: gone, or a zombie that its
// new parent has not reaped yet.
func processGone(pid int) bool {
	for i := 0; i < 100; i++ {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 0 && f[0] == "Z" {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// waitFile waits up to 5s for path to hold a line and returns it.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	for i := 0; i < 100; i++ {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
	return ""
}

func TestSSHRunCancel(t *testing.T) {
	saved := killGrace
	killGrace = 500 * time.Millisecond
	defer func() { killGrace = saved }()
	scripts := []struct {
		name   string
		script string // writes the pids to kill into $1
		max    time.Duration
	}{
		{"TERM", `sleep 300 & echo $$ $! > "$1"; wait`, time.Second},
		{"TERM ignored, then KILL", `trap '' TERM; sleep 300 & echo $$ $! > "$1"; while :; do wait; done`, killGrace + 2*time.Second},
	}
	env, _, _ := fakeSudo(t)
	servers := []struct {
		name string
		opts sshtest.Options
		sudo bool
	}{
		{"signals", sshtest.Options{}, false},
		// OpenSSH ignores signal requests on root logins: the process
		// group is killed from a second session.
		{"signals ignored", sshtest.Options{IgnoreSignals: true}, false},
		{"signals ignored, sudo", sshtest.Options{IgnoreSignals: true, Env: env}, true},
	}
	for _, srv := range servers {
		f := newSSHFixture(t, srv.opts)
		cfg := f.config()
		if srv.sudo {
			cfg.User, cfg.Sudo = "kb", true
		}
		h, err := DialSSH(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		for _, tt := range scripts {
			t.Run(srv.name+"/"+tt.name, func(t *testing.T) {
				pidFile := filepath.Join(f.dir, strings.ReplaceAll(tt.name, " ", "_")+".pid")
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() {
					_, err := h.Run(ctx, Cmd{Args: []string{"sh", "-c", tt.script, "sh", pidFile}})
					done <- err
				}()
				pids := strings.Fields(waitFile(t, pidFile))
				start := time.Now()
				cancel()
				var err error
				select {
				case err = <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("Run did not return after cancel")
				}
				if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), h.Name()+": ") {
					t.Errorf("err = %v, want context.Canceled with the host name", err)
				}
				if d := time.Since(start); d > tt.max {
					t.Errorf("Run returned %v after cancel, want under %v", d, tt.max)
				}
				for _, p := range pids {
					pid, _ := strconv.Atoi(p)
					if !processGone(pid) {
						t.Errorf("remote process %d still runs after cancel", pid)
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			})
		}
		// The connection is still good.
		if out, err := Output(context.Background(), h, "echo", "ok"); err != nil || out != "ok" {
			t.Errorf("after cancel: %q, %v", out, err)
		}
	}
}

func TestSSHHostKeys(t *testing.T) {
	f := newSSHFixture(t, sshtest.Options{})
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewSignerFromKey(otherPriv)
	otherLine := knownhosts.Line([]string{knownhosts.Normalize(f.srv.Addr)}, other.PublicKey())
	strangerLine := knownhosts.Line([]string{"10.9.9.9"}, other.PublicKey())
	hashedLine := knownhosts.Line([]string{knownhosts.HashHostname(knownhosts.Normalize(f.srv.Addr))}, f.srv.HostKey.PublicKey())

	tests := []struct {
		name      string
		known     *string // nil: no file
		acceptNew bool
		wantErr   error // nil: connects
		wantInErr []string
		recorded  bool // the server's key is in the file afterwards
	}{
		{"pinned", ptr(f.srv.KnownHostsLine() + "\n"), false, nil, nil, true},
		{"pinned hashed", ptr(strangerLine + "\n" + hashedLine + "\n"), false, nil, nil, false},
		{"mismatch", ptr(strangerLine + "\n" + otherLine + "\n"), false, ErrHostKeyMismatch, []string{"m1 (" + f.srv.Addr + ")", "known_hosts:2", "ssh-keygen -R", ssh.FingerprintSHA256(f.srv.HostKey.PublicKey())}, false},
		{"mismatch with accept-new", ptr(otherLine + "\n"), true, ErrHostKeyMismatch, []string{"known_hosts:1"}, false},
		{"unknown", ptr(strangerLine + "\n"), false, ErrHostKeyUnknown, []string{"m1 (" + f.srv.Addr + ")", "known_hosts", ssh.FingerprintSHA256(f.srv.HostKey.PublicKey()), "ssh-keyscan -p " + strconv.Itoa(f.srv.Port)}, false},
		{"unknown accept-new", ptr(strangerLine + "\n"), true, nil, nil, true},
		{"no file", nil, false, fs.ErrNotExist, []string{"known_hosts"}, false},
		{"no file accept-new", nil, true, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config()
			cfg.KnownHostsFile = filepath.Join(t.TempDir(), "ssh", "known_hosts")
			cfg.AcceptNewHostKey = tt.acceptNew
			if tt.known != nil {
				os.MkdirAll(filepath.Dir(cfg.KnownHostsFile), 0o700)
				os.WriteFile(cfg.KnownHostsFile, []byte(*tt.known), 0o600)
			}
			before := f.srv.Connections()
			h, err := DialSSH(context.Background(), cfg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if out, err := Output(context.Background(), h, "echo", "ok"); out != "ok" || err != nil {
					t.Errorf("Run = %q, %v", out, err)
				}
				h.Close()
			} else {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				for _, s := range tt.wantInErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				if n := f.srv.Connections() - before; n > 1 {
					t.Errorf("%d connection attempts, want at most 1 (no retry)", n)
				}
			}
			b, _ := os.ReadFile(cfg.KnownHostsFile)
			if got := strings.Contains(string(b), f.srv.KnownHostsLine()); got != tt.recorded {
				t.Errorf("server key recorded = %v, want %v; file:\n%s", got, tt.recorded, b)
			}
			if tt.known != nil && !strings.HasPrefix(string(b), *tt.known) {
				t.Errorf("existing entries changed:\n%s", b)
			}
			if tt.acceptNew && tt.recorded {
				if fi, err := os.Stat(cfg.KnownHostsFile); err != nil || (tt.known == nil && fi.Mode().Perm() != 0o600) {
					t.Errorf("known_hosts: %v, %v", fi, err)
				}
				// Recorded once: a second strict dial connects.
				cfg.AcceptNewHostKey = false
				h, err := DialSSH(context.Background(), cfg)
				if err != nil {
					t.Fatalf("strict dial after accept-new: %v", err)
				}
				h.Close()
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSSHAuth(t *testing.T) {
	f := newSSHFixture(t, sshtest.Options{Passwords: map[string]string{"kb": "s3cret pass"}})
	_, wrongKey := sshtest.ClientKey(t, t.TempDir())

	// An agent holding an authorized key.
	sockDir := t.TempDir()
	sock := filepath.Join(sockDir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ring := agent.NewKeyring()
	if err := ring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(ring, c); c.Close() }()
		}
	}()
	agentPub, _ := ssh.NewPublicKey(priv.Public())
	f2 := newSSHFixture(t, sshtest.Options{AuthorizedKeys: []ssh.PublicKey{agentPub}})
	t.Setenv("SSH_AUTH_SOCK", sock)

	tests := []struct {
		name    string
		fx      *sshFixture
		mod     func(*SSHConfig)
		wantErr error
		errHas  string
	}{
		{"key", f, func(*SSHConfig) {}, nil, ""},
		{"password", f, func(c *SSHConfig) { c.User, c.KeyFile, c.Password = "kb", "", "s3cret pass" }, nil, ""},
		{"wrong key falls back to password", f, func(c *SSHConfig) { c.User, c.KeyFile, c.Password = "kb", wrongKey, "s3cret pass" }, nil, ""},
		{"wrong key", f, func(c *SSHConfig) { c.KeyFile = wrongKey }, ErrAuth, "as root"},
		{"wrong password", f, func(c *SSHConfig) { c.User, c.KeyFile, c.Password = "kb", "", "nope" }, ErrAuth, "password"},
		{"agent", f2, func(c *SSHConfig) { c.KeyFile, c.Agent = "", true }, nil, ""},
		{"agent key not authorized", f, func(c *SSHConfig) { c.KeyFile, c.Agent = "", true }, ErrAuth, "ssh-agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.fx.config()
			tt.mod(&cfg)
			before := tt.fx.srv.Connections()
			h, err := DialSSH(context.Background(), cfg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if out, err := Output(context.Background(), h, "echo", "in"); out != "in" || err != nil {
					t.Errorf("Run = %q, %v", out, err)
				}
				h.Close()
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errHas) || !strings.HasPrefix(err.Error(), "m1 (") {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.wantErr, tt.errHas)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "nope") {
				t.Errorf("error shows the password: %v", err)
			}
			if n := tt.fx.srv.Connections() - before; n != 1 {
				t.Errorf("%d connection attempts, want 1 (no retry after an auth failure)", n)
			}
		})
	}

	// Configuration errors need no connection.
	bad := []struct {
		name string
		mod  func(*SSHConfig)
		has  string
	}{
		{"no credentials", func(c *SSHConfig) { c.KeyFile = "" }, "no SSH credentials"},
		{"missing key file", func(c *SSHConfig) { c.KeyFile = "/nonexistent/id" }, "/nonexistent/id"},
		{"no known_hosts", func(c *SSHConfig) { c.KnownHostsFile = "" }, "known_hosts"},
		{"no address", func(c *SSHConfig) { c.Address = "" }, "no address"},
	}
	for _, tt := range bad {
		cfg := f.config()
		tt.mod(&cfg)
		if _, err := DialSSH(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tt.has) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.has)
		}
	}
}

func TestSSHDialRetries(t *testing.T) {
	// A port nothing listens on: refused, retried, then given up.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	f := newSSHFixture(t, sshtest.Options{})
	cfg := f.config()
	cfg.Port, cfg.Attempts = port, 3
	start := time.Now()
	_, err = DialSSH(context.Background(), cfg)
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "3 attempts") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v", err)
	}
	if d < 700*time.Millisecond || d > 5*time.Second { // backoff 0.25s + 0.5s
		t.Errorf("3 attempts took %v", d)
	}
	// A cancelled context stops the retries.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cfg.Attempts = 100
	start = time.Now()
	if _, err := DialSSH(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("err = %v after %v, want the deadline soon", err, time.Since(start))
	}
	// A server that accepts but never speaks: the connect timeout bounds each attempt.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cfg.Port, cfg.Attempts, cfg.ConnectTimeout = silent.Addr().(*net.TCPAddr).Port, 1, 300*time.Millisecond
	start = time.Now()
	if _, err := DialSSH(context.Background(), cfg); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("silent server: err = %v after %v", err, time.Since(start))
	}
}

func TestSSHFiles(t *testing.T) {
	f := newSSHFixture(t, sshtest.Options{})
	h := f.dial(t)
	ctx := context.Background()
	root := f.dir
	key := filepath.Join(root, "etc", "kubernetes", "pki", "ca.key")

	for _, mode := range []fs.FileMode{0o600, 0o644, 0o755, 0o600} {
		data := []byte("key material " + mode.String())
		if err := h.WriteFile(ctx, key, data, mode); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(key)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("mode = %v, %v; want %v", fi.Mode(), err, mode)
		}
		if got, err := h.ReadFile(ctx, key); err != nil || !bytes.Equal(got, data) {
			t.Errorf("ReadFile = %q, %v", got, err)
		}
	}
	for _, d := range []string{"etc", "etc/kubernetes", "etc/kubernetes/pki"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("parent %s: %v, %v; want 0755", d, fi.Mode(), err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(key)); len(entries) != 1 {
		t.Errorf("pki holds %d entries, want only ca.key (no temp files)", len(entries))
	}
	empty := filepath.Join(root, "empty")
	if err := h.WriteFile(ctx, empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := h.ReadFile(ctx, empty); err != nil || len(b) != 0 {
		t.Errorf("empty file: %q, %v", b, err)
	}

	// Stat follows symlinks; ReadDir is sorted and knows directories.
	if err := os.Symlink(key, filepath.Join(root, "etc", "link")); err != nil {
		t.Fatal(err)
	}
	fi, err := h.Stat(ctx, filepath.Join(root, "etc", "link"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || fi.Name() != "link" {
		t.Errorf("Stat(symlink) = %v %v, %v", fi.Name(), fi.Mode(), err)
	}
	if err := h.MkdirAll(ctx, filepath.Join(root, "etc", "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"etc/a", "etc/a/b"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || fi.Mode() != fs.ModeDir|0o700 {
			t.Errorf("MkdirAll %s = %v, %v", d, fi.Mode(), err)
		}
	}
	if err := h.MkdirAll(ctx, filepath.Join(root, "etc", "a", "b"), 0o700); err != nil {
		t.Errorf("MkdirAll(existing) = %v", err)
	}
	if err := h.MkdirAll(ctx, filepath.Join(key, "x"), 0o755); err == nil {
		t.Error("MkdirAll below a file succeeded")
	}
	entries, err := h.ReadDir(ctx, filepath.Join(root, "etc"))
	var names []string
	for _, e := range entries {
		names = append(names, fmt.Sprintf("%s:%v", e.Name(), e.IsDir()))
	}
	if want := []string{"a:true", "kubernetes:true", "link:false"}; err != nil || !reflect.DeepEqual(names, want) {
		t.Errorf("ReadDir = %v, %v; want %v", names, err, want)
	}

	// Missing files wrap fs.ErrNotExist, as *fs.PathError, after the host name.
	missing := filepath.Join(root, "nope", "file")
	for name, err := range map[string]error{
		"ReadFile": func() error { _, err := h.ReadFile(ctx, missing); return err }(),
		"Stat":     func() error { _, err := h.Stat(ctx, missing); return err }(),
		"ReadDir":  func() error { _, err := h.ReadDir(ctx, missing); return err }(),
	} {
		var pe *fs.PathError
		if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), h.Name()+": ") || !strings.Contains(err.Error(), missing) {
			t.Errorf("%s(missing) = %v", name, err)
		}
	}
	if ok, err := Exists(ctx, h, missing); ok || err != nil {
		t.Errorf("Exists(missing) = %v, %v", ok, err)
	}

	// Remove: files, empty directories, missing paths; not full directories.
	if err := h.Remove(ctx, filepath.Join(root, "etc", "a")); err == nil {
		t.Error("Remove(non-empty dir) succeeded")
	}
	for _, p := range []string{"etc/a/b", "etc/a", "etc/link", "etc/a"} {
		if err := h.Remove(ctx, filepath.Join(root, p)); err != nil {
			t.Errorf("Remove(%s) = %v", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc", "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("removed dir still there: %v", err)
	}
	if _, err := os.Stat(key); err != nil {
		t.Errorf("Remove(link) removed the target: %v", err)
	}
	if h.Name() != "m1 ("+f.srv.Addr+")" {
		t.Errorf("Name() = %q", h.Name())
	}
}

// noTemp fails when dir holds a temporary file of the atomic writes.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestSSHWriteAtomic(t *testing.T) {
	f := newSSHFixture(t, sshtest.Options{})
	h := f.dial(t)
	ctx := context.Background()
	p := filepath.Join(f.dir, "manifest.yaml")
	const size = 2 << 20
	contents := [][]byte{bytes.Repeat([]byte("a"), size), bytes.Repeat([]byte("b"), size)}

	// A reader polling the file sees the old or the new content, whole, never a mix.
	stop := make(chan struct{})
	var reads, torn int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			reads++
			if len(b) != size || !(bytes.Equal(b, contents[0]) || bytes.Equal(b, contents[1])) {
				torn++
			}
		}
	}()
	for i := 0; i < 10; i++ {
		if err := h.WriteFile(ctx, p, contents[i%2], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if torn > 0 || reads == 0 {
		t.Errorf("%d of %d reads saw a partial file", torn, reads)
	}
	noTemp(t, f.dir)

	// A failed rename (the target is a non-empty directory) leaves no temp file.
	blocked := filepath.Join(f.dir, "blocked")
	os.MkdirAll(filepath.Join(blocked, "child"), 0o755)
	if err := h.WriteFile(ctx, blocked, []byte("x"), 0o600); err == nil || !strings.HasPrefix(err.Error(), h.Name()) {
		t.Errorf("write over a directory: %v", err)
	}
	noTemp(t, f.dir)

	// A write below a regular file fails and leaves nothing.
	if err := h.WriteFile(ctx, filepath.Join(p, "x"), []byte("y"), 0o600); err == nil {
		t.Error("write below a regular file succeeded")
	}
	// A cancelled write leaves the old file and no temp file.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := h.WriteFile(cctx, p, []byte("new"), 0o644); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled write: %v", err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, contents[1]) {
		t.Error("a cancelled write changed the file")
	}
	noTemp(t, f.dir)
}

func TestSSHConcurrent(t *testing.T) {
	tests := []struct {
		name        string
		maxSessions int
	}{
		// The server refuses an 11th session, like sshd's MaxSessions: every
		// call must still succeed.
		{"sshd's limit", 10},
		// No limit: the client alone keeps the sessions open at once to
		// 8 commands + 1 SFTP. The server frees a slot a moment after the
		// client closed it and may count a few closing ones, so it is
		// checked against twice that; without the bound it sees ~40.
		{"no limit", 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSSHFixture(t, sshtest.Options{MaxSessions: tt.maxSessions})
			h := f.dial(t)
			ctx := context.Background()
			const n = 40
			var wg sync.WaitGroup
			errs := make(chan error, 3*n)
			for i := 0; i < n; i++ {
				wg.Add(2)
				go func() {
					defer wg.Done()
					out, err := Output(ctx, h, "sh", "-c", fmt.Sprintf("sleep 0.05; echo %d", i))
					if err != nil || out != strconv.Itoa(i) {
						errs <- fmt.Errorf("run %d: %q, %v", i, out, err)
					}
				}()
				go func() {
					defer wg.Done()
					p := filepath.Join(f.dir, fmt.Sprintf("d%d", i%5), fmt.Sprintf("f%d", i))
					data := []byte(strings.Repeat(strconv.Itoa(i), 1000))
					if err := h.WriteFile(ctx, p, data, 0o600); err != nil {
						errs <- err
						return
					}
					if b, err := h.ReadFile(ctx, p); err != nil || !bytes.Equal(b, data) {
						errs <- fmt.Errorf("read %s: %v", p, err)
					}
					if _, err := h.ReadDir(ctx, filepath.Dir(p)); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			m := f.srv.MaxSessionsSeen()
			t.Logf("at most %d sessions open at once on the server, %d refused", m, f.srv.Refused())
			if m > 2*(maxSessions+1) || m < 4 {
				t.Errorf("at most %d sessions were open at once, want 4..%d", m, 2*(maxSessions+1))
			}
			if c := f.srv.Connections(); c != 1 {
				t.Errorf("%d connections, want 1", c)
			}
		})
	}
}

func writeRandom(t *testing.T, path string, size int) [32]byte {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

func sumFile(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestSSHUpload(t *testing.T) {
	f := newSSHFixture(t, sshtest.Options{})
	h := f.dial(t)
	ctx := context.Background()
	const size = 48 << 20
	src := filepath.Join(t.TempDir(), "bundle.tar")
	want := writeRandom(t, src, size)
	dst := filepath.Join(f.dir, "opt", "kubeboot", "bundle.tar")

	start := time.Now()
	if err := Upload(ctx, h, src, dst, 0o640); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("Upload of %d MiB to the in-process server: %v (%.0f MiB/s)", size>>20, d.Round(time.Millisecond), float64(size>>20)/d.Seconds())
	if got := sumFile(t, dst); got != want {
		t.Error("uploaded file differs")
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}
	noTemp(t, filepath.Dir(dst))

	// Cancelled half-way (after 100 reads of the local file): the old file
	// stays, no temp file.
	cctx := &countdownCtx{Context: ctx, done: make(chan struct{})}
	cctx.n.Store(100)
	other := filepath.Join(t.TempDir(), "other")
	writeRandom(t, other, size)
	if err := h.Upload(cctx, other, dst, 0o640); !errors.Is(err, context.Canceled) || cctx.n.Load() > 0 {
		t.Errorf("cancelled upload: %v", err)
	}
	if got := sumFile(t, dst); got != want {
		t.Error("a cancelled upload changed the file")
	}
	noTemp(t, filepath.Dir(dst))

	if err := h.Upload(ctx, filepath.Join(t.TempDir(), "missing"), dst, 0o600); !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), h.Name()) {
		t.Errorf("upload of a missing file: %v", err)
	}
	if err := h.Upload(ctx, t.TempDir(), dst, 0o600); err == nil {
		t.Error("uploaded a directory")
	}
}

// countdownCtx is cancelled when Err has been asked n times: a copy that
// checks it once a chunk stops part-way, deterministically.
type countdownCtx struct {
	context.Context
	n    atomic.Int64
	once sync.Once
	done chan struct{}
}

func (c *countdownCtx) Err() error {
	if c.n.Add(-1) < 0 {
		c.once.Do(func() { close(c.done) })
		return context.Canceled
	}
	return nil
}

func (c *countdownCtx) Done() <-chan struct{} { return c.done }

func TestUploadOtherHosts(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "bin")
	want := writeRandom(t, src, 3<<20)

	dst := filepath.Join(t.TempDir(), "usr", "local", "bin", "kubeboot")
	if err := Upload(ctx, NewLocal(), src, dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o755 || sumFile(t, dst) != want {
		t.Errorf("local upload: %v, %v", fi, err)
	}
	noTemp(t, filepath.Dir(dst))

	real := t.TempDir()
	dry := NewDryRun(NewLocal(), t.TempDir())
	target := filepath.Join(real, "bundle")
	if err := Upload(ctx, dry, src, target, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Error("dry-run upload wrote the real file")
	}
	if sumFile(t, dry.Path(target)) != want {
		t.Error("dry-run copy differs")
	}
	if acts := dry.Actions(); len(acts) != 1 || acts[0].Kind != "upload" || acts[0].String() != "would upload "+target {
		t.Errorf("actions = %v", acts)
	}
}

// fakeSudo installs a sudo that runs its arguments after -n --, logging
// them, or, when the file refuse exists, prints it and fails as real sudo
// does when it refuses.
func fakeSudo(t *testing.T) (env []string, log, refuse string) {
	t.Helper()
	bin := t.TempDir()
	log = filepath.Join(bin, "sudo.log")
	refuse = filepath.Join(bin, "refuse")
	script := `#!/bin/sh
echo "$*" >> "$FAKE_SUDO_LOG"
if [ -e "$FAKE_SUDO_REFUSE" ]; then cat "$FAKE_SUDO_REFUSE" >&2; exit 1; fi
if [ "$1" = -S ]; then
  # sudo -S -k -p '': the password is stdin's first line.
  [ "$2 $3 $4" = "-k -p " ] || { echo "fake sudo: want -S -k -p ''" >&2; exit 2; }
  shift 4
  IFS= read -r pw
  if [ "$pw" != "$FAKE_SUDO_PASSWORD" ]; then
    echo "Sorry, try again." >&2; echo "sudo: 1 incorrect password attempt" >&2; exit 1
  fi
else
  [ "$1" = -n ] || { echo "fake sudo: want -n" >&2; exit 2; }
  shift
fi
[ "$1" = -- ] && shift
exec "$@"
`
	if err := os.WriteFile(filepath.Join(bin, "sudo"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sftpServer := filepath.Join(bin, "sftp-server")
	if err := os.WriteFile(sftpServer, []byte("#!/bin/sh\nSSHTEST_SFTP_SERVER=1 exec "+Quote([]string{exe})+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	saved := sftpServers
	sftpServers = []string{"/nonexistent/sftp-server", sftpServer}
	t.Cleanup(func() { sftpServers = saved })
	return []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "FAKE_SUDO_LOG=" + log, "FAKE_SUDO_REFUSE=" + refuse, "FAKE_SUDO_PASSWORD=pass word"}, log, refuse
}

func TestSSHSudo(t *testing.T) {
	env, log, refuse := fakeSudo(t)
	f := newSSHFixture(t, sshtest.Options{Env: env})
	ctx := context.Background()
	cfg := f.config()
	cfg.User, cfg.Sudo = "kb", true

	h, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if out, err := Output(ctx, h, "echo", "it's me"); err != nil || out != "it's me" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	p := filepath.Join(f.dir, "etc", "kubernetes", "admin.conf")
	if err := h.WriteFile(ctx, p, []byte("cfg"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := h.ReadFile(ctx, p); err != nil || string(b) != "cfg" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	b, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 || lines[0] != "-n -- echo it's me" || !strings.HasPrefix(lines[1], "-n -- sh -c ") || !strings.Contains(lines[1], "/nonexistent/sftp-server") {
		t.Errorf("sudo ran:\n%s", b)
	}

	// sudo refusing: said clearly, with what to do, for commands and for files.
	refusals := []struct{ name, stderr, want string }{
		{"password", "sudo: a password is required\n", "(NOPASSWD in sudoers)"},
		{"requiretty", "sudo: sorry, you must have a tty to run sudo\n", "Defaults:kb !requiretty"},
		{"not in sudoers", "kb is not in the sudoers file.  This incident will be reported.\n", "kb may not use sudo"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			os.WriteFile(refuse, []byte(r.stderr), 0o644)
			defer os.Remove(refuse)
			_, err := h.Run(ctx, Cmd{Args: []string{"true"}})
			var ee *ExitError
			if !errors.As(err, &ee) || !strings.Contains(err.Error(), r.want) || !strings.HasPrefix(err.Error(), h.Name()) {
				t.Errorf("Run: %v", err)
			}
			h2, err := DialSSH(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer h2.Close()
			if _, err := h2.ReadFile(ctx, p); err == nil || !strings.Contains(err.Error(), r.want) {
				t.Errorf("ReadFile: %v", err)
			}
		})
	}

	// Without Sudo, a non-root user's commands run as they are.
	cfg.Sudo = false
	h3, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h3.Close()
	os.Remove(log)
	Output(ctx, h3, "true")
	if _, err := os.Stat(log); err == nil {
		t.Error("sudo ran without Sudo set")
	}
}

// freezer forwards one TCP connection until frozen, then stops passing
// bytes either way, like a host that lost power.
type freezer struct {
	ln     net.Listener
	frozen atomic.Bool
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	fz := &freezer{ln: ln}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		t.Cleanup(func() { c.Close(); u.Close() })
		pipe := func(dst, src net.Conn) {
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				for fz.frozen.Load() {
					time.Sleep(10 * time.Millisecond)
				}
				if n > 0 {
					dst.Write(buf[:n])
				}
				if err != nil {
					return
				}
			}
		}
		go pipe(u, c)
		go pipe(c, u)
	}()
	return fz
}

func TestSSHKeepalive(t *testing.T) {
	saved := keepaliveInterval
	keepaliveInterval = 200 * time.Millisecond
	defer func() { keepaliveInterval = saved }()
	f := newSSHFixture(t, sshtest.Options{})
	fz := newFreezer(t, f.srv.Addr)
	cfg := f.config()
	cfg.Port = fz.ln.Addr().(*net.TCPAddr).Port
	// known_hosts names the proxy's port.
	b, _ := os.ReadFile(f.knownHosts)
	os.WriteFile(f.knownHosts, []byte(strings.Replace(string(b), strconv.Itoa(f.srv.Port), strconv.Itoa(cfg.Port), 1)), 0o600)
	h, err := DialSSH(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// A silent command outlives several keepalives while the host answers.
	if _, err := h.Run(context.Background(), Cmd{Args: []string{"sleep", "1"}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.Run(context.Background(), Cmd{Args: []string{"sleep", "30"}})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	fz.frozen.Store(true)
	start := time.Now()
	select {
	case err := <-done:
		if err == nil || !strings.HasPrefix(err.Error(), h.Name()) || !strings.Contains(err.Error(), "connection lost: no answer to an SSH keepalive") {
			t.Errorf("Run on a dead host: %v", err)
		}
		t.Logf("Run on a frozen connection failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run on a frozen connection still waits after 5s")
	}
	if _, err := h.Stat(context.Background(), "/"); err == nil {
		t.Error("Stat on a dead connection succeeded")
	}
}

func TestSSHClose(t *testing.T) {
	f := newSSHFixture(t, sshtest.Options{})
	h := f.dial(t)
	ctx := context.Background()
	if _, err := h.Stat(ctx, f.dir); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := h.Run(ctx, Cmd{Args: []string{"true"}}); err == nil || !strings.HasPrefix(err.Error(), h.Name()) {
		t.Errorf("Run after Close = %v", err)
	}
	if _, err := h.ReadFile(ctx, "/etc/hostname"); err == nil {
		t.Error("ReadFile after Close succeeded")
	}
}

var _ io.Reader = (*ctxReader)(nil)

// Output streams to Cmd.Stdout and Cmd.Stderr as it arrives; Result.Stdout
// is then empty while stderr is still kept for the error.
func TestSSHRunStreams(t *testing.T) {
	f := newSSHFixture(t, sshtest.Options{})
	h := f.dial(t)
	ctx := context.Background()
	pr, pw := io.Pipe()
	var errOut syncBuffer
	lines := make(chan string, 10)
	go func() {
		b := make([]byte, 64)
		for {
			n, err := pr.Read(b)
			if n > 0 {
				lines <- string(b[:n])
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	done := make(chan struct{})
	var res Result
	var err error
	go func() {
		defer close(done)
		res, err = h.Run(ctx, Cmd{Args: []string{"sh", "-c", "echo first; sleep 1; echo second; echo oops >&2; exit 4"}, Stdout: pw, Stderr: &errOut})
		pw.Close()
	}()
	select {
	case l := <-lines:
		if l != "first\n" {
			t.Errorf("first chunk %q", l)
		}
	case <-done:
		t.Fatal("the first line came only when the command ended")
	}
	<-done
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	var ee *ExitError
	if strings.Join(rest, "") != "second\n" || len(res.Stdout) != 0 || errOut.String() != "oops\n" || !errors.As(err, &ee) || ee.ExitCode != 4 || ee.Stderr != "oops\n" {
		t.Errorf("rest %q, Result.Stdout %q, stderr %q, err %v", rest, res.Stdout, errOut.String(), err)
	}
}

// DialContext opens TCP connections from the host's side.
func TestSSHDialContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	f := newSSHFixture(t, sshtest.Options{})
	h := f.dial(t)
	c, err := h.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping\n"))
	b := make([]byte, 5)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping\n" {
		t.Errorf("echo through the host: %q, %v", b, err)
	}
	if _, err := h.DialContext(context.Background(), "tcp", "192.0.2.1:6443"); err == nil || !strings.Contains(err.Error(), "dial 192.0.2.1:6443 from the host") {
		t.Errorf("refused dial: %v", err)
	}
}

// A host behind a bastion: both keys verified, each against its entry;
// errors say which hop failed; Close ends both connections.
func TestSSHBastion(t *testing.T) {
	jump := newSSHFixture(t, sshtest.Options{})
	target := newSSHFixture(t, sshtest.Options{})
	ctx := context.Background()
	cfg := target.config()
	b := jump.config()
	b.Name = "jump"
	cfg.Bastion = &b
	h, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := Output(ctx, h, "echo", "behind"); err != nil || out != "behind" {
		t.Errorf("Run through the bastion: %q, %v", out, err)
	}
	if jump.srv.Connections() != 1 || target.srv.Connections() != 1 {
		t.Errorf("connections: bastion %d, target %d", jump.srv.Connections(), target.srv.Connections())
	}
	h.Close()
	if _, err := h.jump.Run(ctx, Cmd{Args: []string{"true"}}); err == nil {
		t.Error("the bastion connection is still open after Close")
	}

	// The target's key must be the one recorded for it, not the bastion's.
	wrong := b
	cfg2 := target.config()
	cfg2.KnownHostsFile = jump.knownHosts // knows only the bastion
	cfg2.Bastion = &wrong
	if _, err := DialSSH(ctx, cfg2); !errors.Is(err, ErrHostKeyUnknown) {
		t.Errorf("target key unknown: %v", err)
	}
	bad := b
	bad.KnownHostsFile = target.knownHosts // does not know the bastion
	cfg3 := target.config()
	cfg3.Bastion = &bad
	if _, err := DialSSH(ctx, cfg3); !errors.Is(err, ErrHostKeyUnknown) || !strings.Contains(err.Error(), "through the bastion: jump") {
		t.Errorf("bastion key unknown: %v", err)
	}
}

// An encrypted key needs its passphrase; a wrong or missing one is said so.
func TestSSHEncryptedKey(t *testing.T) {
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("open sesame"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_enc")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	f := newSSHFixture(t, sshtest.Options{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}})
	cfg := f.config()
	cfg.KeyFile = keyFile
	for _, tt := range []struct {
		pass, want string
	}{
		{"", "is protected by a passphrase: set ssh.passphraseEnv"},
		{"xyzzy-42", "id_enc: wrong passphrase"},
		{"open sesame", ""},
	} {
		cfg.KeyPassphrase = []byte(tt.pass)
		h, err := DialSSH(context.Background(), cfg)
		if tt.want == "" {
			if err != nil {
				t.Errorf("right passphrase: %v", err)
			} else {
				h.Close()
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || tt.pass != "" && strings.Contains(err.Error(), tt.pass) {
			t.Errorf("passphrase %q: %v", tt.pass, err)
		}
	}
}

// sudo with a password: sudo -S, the password as stdin's first line for
// commands (with their own stdin after it) and for sftp-server; a wrong one
// is ErrSudoPassword's message, naming the host.
func TestSSHSudoPassword(t *testing.T) {
	env, log, _ := fakeSudo(t)
	f := newSSHFixture(t, sshtest.Options{Env: env})
	ctx := context.Background()
	cfg := f.config()
	cfg.User, cfg.Sudo, cfg.SudoPassword = "kb", true, "pass word"
	h, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	r, err := h.Run(ctx, Cmd{Args: []string{"cat"}, Stdin: strings.NewReader("the command's input")})
	if err != nil || string(r.Stdout) != "the command's input" {
		t.Fatalf("Run = %q, %v", r.Stdout, err)
	}
	if out, err := Output(ctx, h, "echo", "no stdin"); err != nil || out != "no stdin" {
		t.Errorf("Run without stdin = %q, %v", out, err)
	}
	p := filepath.Join(f.dir, "etc", "kubeboot-test")
	if err := h.WriteFile(ctx, p, []byte("cfg"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := h.ReadFile(ctx, p); err != nil || string(b) != "cfg" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	b, _ := os.ReadFile(log)
	if !strings.HasPrefix(string(b), "-S -k -p  -- cat\n") || strings.Contains(string(b), "pass word") {
		t.Errorf("sudo ran:\n%s", b)
	}

	cfg.SudoPassword = "wrong"
	h2, err := DialSSH(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	_, err = h2.Run(ctx, Cmd{Args: []string{"true"}})
	if err == nil || !strings.HasPrefix(err.Error(), h2.Name()+": wrong sudo password: sudo refused kb's password") {
		t.Errorf("wrong password, Run: %v", err)
	}
	if _, err := h2.ReadFile(ctx, p); err == nil || !strings.Contains(err.Error(), "wrong sudo password") {
		t.Errorf("wrong password, ReadFile: %v", err)
	}
}
