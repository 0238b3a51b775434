//go:build sshd

// Package sshd tests transport.SSH against OpenSSH's real sshd, started on
// 127.0.0.1 on a free port with a throwaway host key and authorized key in a
// temporary directory. Run as root by test/sshd/run.sh (make integration-ssh).
package sshd

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
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/sshtest"
)

const sshdBin = "/usr/sbin/sshd"

type sshd struct {
	addr       string
	port       int
	hostKey    ssh.PublicKey
	keyFile    string
	knownHosts string
	dir        string
	log        string
}

// startSSHD starts sshd -D in a temporary directory; it is killed (also if
// the test binary dies: Pdeathsig) and its files removed when the test ends.
func startSSHD(t *testing.T) *sshd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the real-sshd test runs as root (sshd needs it): use make integration-ssh")
	}
	if _, err := os.Stat(sshdBin); err != nil {
		t.Fatalf("%v: install openssh-server", err)
	}
	dir := t.TempDir()
	_, hpriv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(hpriv, "kubeboot-test-host")
	if err != nil {
		t.Fatal(err)
	}
	hostKeyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(hostKeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	hostPub, _ := ssh.NewPublicKey(hpriv.Public())
	client, keyFile := sshtest.ClientKey(t, dir)
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(client.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(dir, "sshd_config")
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s/sshd.pid
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp /usr/lib/openssh/sftp-server
MaxStartups 100:30:200
LogLevel VERBOSE
# bash sources ~/.bashrc for sshd-run commands unless SHLVL says it is nested;
# this machine's root .bashrc (pyenv init) costs ~100 ms a command.
SetEnv SHLVL=1
`, port, hostKeyFile, dir, authorized)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd insists on its privilege separation directory.
	if _, err := os.Stat("/run/sshd"); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove("/run/sshd") })
	}
	logFile := filepath.Join(dir, "sshd.log")
	lf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sshdBin, "-D", "-e", "-f", conf)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("sshd %d on 127.0.0.1:%d", cmd.Process.Pid, port)
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		lf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("sshd log:\n%s", b)
		}
	})
	s := &sshd{addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, hostKey: hostPub, keyFile: keyFile,
		knownHosts: filepath.Join(dir, "known_hosts"), dir: filepath.Join(dir, "remote"), log: logFile}
	line := knownhosts.Line([]string{knownhosts.Normalize(s.addr)}, hostPub)
	if err := os.WriteFile(s.knownHosts, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *sshd) config() transport.SSHConfig {
	return transport.SSHConfig{Name: "sshd", Address: "127.0.0.1", Port: s.port, KeyFile: s.keyFile,
		KnownHostsFile: s.knownHosts, ConnectTimeout: 5 * time.Second, Attempts: 20}
}

func TestRealSSHD(t *testing.T) {
	s := startSSHD(t)
	ctx := context.Background()
	// sshd needs a moment to listen: DialSSH's retries cover it.
	h, err := transport.DialSSH(ctx, s.config())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	t.Run("run", func(t *testing.T) {
		res, err := h.Run(ctx, transport.Cmd{Args: []string{"sh", "-c", "cat; echo oops >&2; exit 4"}, Stdin: strings.NewReader("it's stdin")})
		var ee *transport.ExitError
		if !errors.As(err, &ee) || ee.ExitCode != 4 || strings.TrimSpace(ee.Stderr) != "oops" || string(res.Stdout) != "it's stdin" {
			t.Errorf("Run = %q, %v", res.Stdout, err)
		}
		if out, err := transport.Output(ctx, h, "printf", "%s|", "a b", "$x", "'"); err != nil || out != "a b|$x|'|" {
			t.Errorf("quoting: %q, %v", out, err)
		}
		big := bytes.Repeat([]byte("x"), 16<<20)
		res, err = h.Run(ctx, transport.Cmd{Args: []string{"cat"}, Stdin: bytes.NewReader(big)})
		if err != nil || !bytes.Equal(res.Stdout, big) {
			t.Errorf("16 MiB through cat: %d bytes, %v", len(res.Stdout), err)
		}
	})

	t.Run("latency", func(t *testing.T) {
		const n = 50
		var d []time.Duration
		for i := 0; i < n; i++ {
			start := time.Now()
			if _, err := h.Run(ctx, transport.Cmd{Args: []string{"true"}}); err != nil {
				t.Fatal(err)
			}
			d = append(d, time.Since(start))
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		t.Logf("Run(true) x%d on one connection: mean %v, p50 %v, p95 %v, max %v",
			n, (sum / n).Round(10*time.Microsecond), d[n/2].Round(10*time.Microsecond), d[n*95/100].Round(10*time.Microsecond), d[n-1].Round(10*time.Microsecond))
		var st []time.Duration
		for i := 0; i < n; i++ {
			start := time.Now()
			if _, err := h.Stat(ctx, s.dir); err != nil {
				t.Fatal(err)
			}
			st = append(st, time.Since(start))
		}
		sort.Slice(st, func(i, j int) bool { return st[i] < st[j] })
		t.Logf("Stat (one SFTP round trip) x%d: p50 %v, p95 %v", n, st[n/2].Round(time.Microsecond), st[n*95/100].Round(time.Microsecond))
		start := time.Now()
		h2, err := transport.DialSSH(ctx, s.config())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("DialSSH (TCP + handshake + auth): %v", time.Since(start).Round(10*time.Microsecond))
		h2.Close()
	})

	t.Run("concurrent", func(t *testing.T) {
		// More than sshd's MaxSessions (10) at once on one connection.
		const n = 30
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		start := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(2)
			go func() {
				defer wg.Done()
				out, err := transport.Output(ctx, h, "sh", "-c", "sleep 0.2; echo "+strconv.Itoa(i))
				if err != nil || out != strconv.Itoa(i) {
					errs <- fmt.Errorf("run %d: %q %v", i, out, err)
				}
			}()
			go func() {
				defer wg.Done()
				p := filepath.Join(s.dir, "conc", strconv.Itoa(i%3), "f"+strconv.Itoa(i))
				if err := h.WriteFile(ctx, p, []byte(p), 0o600); err != nil {
					errs <- err
					return
				}
				if b, err := h.ReadFile(ctx, p); err != nil || string(b) != p {
					errs <- fmt.Errorf("read back %s: %q, %v", p, b, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		b, _ := os.ReadFile(s.log)
		t.Logf("%d concurrent 0.2s commands + %d writes on one connection: %v (sshd refused %d session opens with \"no more sessions\"; retried)",
			n, n, time.Since(start).Round(time.Millisecond), bytes.Count(b, []byte("no more sessions")))
	})

	t.Run("cancel", func(t *testing.T) {
		for _, script := range []string{
			`sleep 300 & echo $$ $! > "$1"; wait`,
			`trap '' TERM; sleep 300 & echo $$ $! > "$1"; while :; do wait; done`,
		} {
			pidFile := filepath.Join(s.dir, "pids")
			os.Remove(pidFile)
			cctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				_, err := h.Run(cctx, transport.Cmd{Args: []string{"sh", "-c", script, "sh", pidFile}})
				done <- err
			}()
			var pids []int
			for i := 0; i < 100 && len(pids) < 2; i++ {
				time.Sleep(50 * time.Millisecond)
				b, _ := os.ReadFile(pidFile)
				pids = nil
				if bytes.HasSuffix(b, []byte("\n")) {
					for _, f := range strings.Fields(string(b)) {
						p, _ := strconv.Atoi(f)
						pids = append(pids, p)
					}
				}
			}
			if len(pids) < 2 {
				t.Fatal("the command never started")
			}
			start := time.Now()
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v", err)
			}
			took := time.Since(start)
			for _, pid := range pids {
				gone := false
				for i := 0; i < 100 && !gone; i++ {
					gone = errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
					if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
						f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
						gone = gone || len(f) > 0 && f[0] == "Z" // dead, not yet reaped
					}
					if !gone {
						time.Sleep(50 * time.Millisecond)
					}
				}
				if !gone {
					t.Errorf("%q: remote process %d still runs after cancel", script, pid)
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			t.Logf("%q: Run returned %v after cancel; remote processes %v gone", script, took.Round(time.Millisecond), pids)
		}
	})

	t.Run("files", func(t *testing.T) {
		key := filepath.Join(s.dir, "etc", "kubernetes", "pki", "sa.key")
		if err := h.WriteFile(ctx, key, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(key)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key: %v, %v", fi, err)
		}
		if pfi, err := os.Stat(filepath.Dir(key)); err != nil || pfi.Mode().Perm() != 0o755 {
			t.Errorf("parent: %v, %v", pfi, err)
		}
		if b, err := h.ReadFile(ctx, key); err != nil || string(b) != "secret" {
			t.Errorf("ReadFile = %q, %v", b, err)
		}
		entries, err := h.ReadDir(ctx, filepath.Dir(key))
		if err != nil || len(entries) != 1 || entries[0].Name() != "sa.key" {
			t.Errorf("ReadDir = %v, %v (temp files left?)", entries, err)
		}
		if _, err := h.Stat(ctx, filepath.Join(s.dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(missing) = %v", err)
		}
		if _, err := h.ReadFile(ctx, filepath.Join(s.dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(missing) = %v", err)
		}
		if err := h.MkdirAll(ctx, filepath.Join(s.dir, "var", "lib", "etcd"), 0o700); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(filepath.Join(s.dir, "var", "lib", "etcd")); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("MkdirAll: %v, %v", fi, err)
		}
		if err := h.Remove(ctx, key); err != nil {
			t.Error(err)
		}
		if err := h.Remove(ctx, key); err != nil {
			t.Errorf("Remove(missing) = %v", err)
		}
	})

	t.Run("upload", func(t *testing.T) {
		const size = 256 << 20
		src := filepath.Join(t.TempDir(), "bundle.tar")
		f, err := os.Create(src)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.New()
		if _, err := io.CopyN(io.MultiWriter(f, sum), rand.Reader, size); err != nil {
			t.Fatal(err)
		}
		f.Close()
		want := sum.Sum(nil)
		dst := filepath.Join(s.dir, "root", "bundle.tar")
		for i := 0; i < 2; i++ {
			start := time.Now()
			if err := h.Upload(ctx, src, dst, 0o600); err != nil {
				t.Fatal(err)
			}
			d := time.Since(start)
			t.Logf("Upload of %d MiB to sshd: %v, %.0f MiB/s", size>>20, d.Round(time.Millisecond), float64(size>>20)/d.Seconds())
		}
		got := sha256.New()
		rf, err := os.Open(dst)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(got, rf)
		rf.Close()
		if !bytes.Equal(got.Sum(nil), want) {
			t.Error("uploaded file differs")
		}
		if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v", fi.Mode())
		}
		os.Remove(dst)
	})

	t.Run("host key mismatch", func(t *testing.T) {
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		otherPub, _ := ssh.NewPublicKey(other.Public())
		kh := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(kh, []byte(knownhosts.Line([]string{knownhosts.Normalize(s.addr)}, otherPub)+"\n"), 0o600)
		cfg := s.config()
		cfg.KnownHostsFile = kh
		start := time.Now()
		_, err := transport.DialSSH(ctx, cfg)
		if !errors.Is(err, transport.ErrHostKeyMismatch) || time.Since(start) > 2*time.Second {
			t.Errorf("err = %v after %v", err, time.Since(start))
		}
		t.Logf("mismatch: %v", err)
		cfg = s.config()
		_, wrong := sshtest.ClientKey(t, t.TempDir())
		cfg.KeyFile = wrong
		if _, err := transport.DialSSH(ctx, cfg); !errors.Is(err, transport.ErrAuth) {
			t.Errorf("wrong key: %v", err)
		}
	})
}
