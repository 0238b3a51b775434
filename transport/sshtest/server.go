// Package sshtest runs an SSH server in the test process on 127.0.0.1:0, so
// that code using transport.SSH is tested over real SSH without root or a
// network: exec requests run `sh -c COMMAND` on the local machine (in a new
// session, signals delivered to its process group, as OpenSSH's sshd does), the
// sftp subsystem is github.com/pkg/sftp's server on the local file system.
// The host key is a fresh ed25519 key.
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Options configure a Server.
type Options struct {
	// AuthorizedKeys may log in as any user.
	AuthorizedKeys []ssh.PublicKey
	// Passwords maps users to the password they may log in with.
	Passwords map[string]string
	// Env is added to the environment of commands (PATH=... to put fakes first).
	Env []string
	// Dir is the commands' working directory (default: a temporary directory).
	Dir string
	// MaxSessions refuses more sessions open at once on one connection, as
	// sshd's MaxSessions does (default 10, sshd's default).
	MaxSessions int
	// IgnoreSignals ignores signal requests, as OpenSSH's sshd does for
	// root logins ("session signalling requires privilege separation").
	IgnoreSignals bool
}

// Server is a running in-process SSH server.
type Server struct {
	Addr    string // 127.0.0.1:PORT
	Host    string // 127.0.0.1
	Port    int
	HostKey ssh.Signer

	opts Options
	ln   net.Listener
	conf *ssh.ServerConfig

	mu          sync.Mutex
	conns       int
	authFails   int
	maxSessions int // most sessions seen open at once on one connection
	refused     int // sessions refused for MaxSessions
	procs       map[*exec.Cmd]bool
	open        map[net.Conn]bool
	wg          sync.WaitGroup
}

// Start starts a server; it stops when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.MaxSessions == 0 {
		opts.MaxSessions = 10
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{HostKey: signer, opts: opts, procs: map[*exec.Cmd]bool{}, open: map[net.Conn]bool{}}
	s.conf = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, k := range opts.AuthorizedKeys {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil, nil
				}
			}
			return nil, errors.New("key not authorized")
		},
		PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if want, ok := opts.Passwords[c.User()]; ok && want == string(pw) {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		},
	}
	s.conf.AddHostKey(signer)
	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = s.ln.Addr().String()
	host, port, _ := net.SplitHostPort(s.Addr)
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// KnownHostsLine is the server's known_hosts entry.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey.PublicKey())
}

// WriteKnownHosts writes a known_hosts file pinning the server's key.
func (s *Server) WriteKnownHosts(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Connections is the number of TCP connections accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// AuthFailures is the number of connections whose handshake or
// authentication failed.
func (s *Server) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFails
}

// MaxSessionsSeen is the most sessions that were open at once on one connection.
func (s *Server) MaxSessionsSeen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxSessions
}

// Refused is the number of sessions refused because MaxSessions were open.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Close stops the server and kills the commands still running.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.procs {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.open[conn] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleConn(conn)
			s.mu.Lock()
			delete(s.open, conn)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) handleConn(nc net.Conn) {
	defer nc.Close()
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.conf)
	if err != nil {
		s.mu.Lock()
		s.authFails++
		s.mu.Unlock()
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var open sync.WaitGroup
	var mu sync.Mutex
	sessions := 0
	for nch := range chans {
		if nch.ChannelType() == "direct-tcpip" {
			go s.forward(nch)
			continue
		}
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		mu.Lock()
		if sessions >= s.opts.MaxSessions {
			mu.Unlock()
			s.mu.Lock()
			s.refused++
			s.mu.Unlock()
			_ = nch.Reject(ssh.ConnectionFailed, "open failed") // as sshd: "no more sessions"
			continue
		}
		sessions++
		s.mu.Lock()
		s.maxSessions = max(s.maxSessions, sessions)
		s.mu.Unlock()
		mu.Unlock()
		ch, creqs, err := nch.Accept()
		if err != nil {
			mu.Lock()
			sessions--
			mu.Unlock()
			continue
		}
		open.Add(1)
		go func() {
			defer open.Done()
			s.session(ch, creqs)
			mu.Lock()
			sessions--
			mu.Unlock()
		}()
	}
	open.Wait()
}

// forward serves a direct-tcpip channel (a client's Dial through the
// connection, a jump host's), to loopback addresses only: tests talk to
// nothing else.
func (s *Server) forward(nch ssh.NewChannel) {
	var req struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &req); err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, "bad direct-tcpip request")
		return
	}
	if ip := net.ParseIP(req.Host); req.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		_ = nch.Reject(ssh.Prohibited, "sshtest forwards to loopback only")
		return
	}
	c, err := net.Dial("tcp", net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port))))
	if err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(ch, c); _ = ch.CloseWrite(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, ch); done <- struct{}{} }()
	<-done // either side ended: end both
	ch.Close()
	c.Close()
	<-done
}

// session serves one session channel: one exec or the sftp subsystem,
// plus signal requests for the running command.
func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var env []string
	started := make(chan *exec.Cmd, 1)
	finished := make(chan struct{})
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil {
				env = append(env, kv.Name+"="+kv.Value)
			}
			_ = req.Reply(true, nil)
		case "exec":
			var m struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &m); err != nil || len(started) > 0 {
				_ = req.Reply(false, nil)
				continue
			}
			cmd, err := s.startCommand(ch, m.Command, env)
			if err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			started <- cmd
			go func() {
				s.finish(ch, cmd)
				close(finished)
			}()
		case "subsystem":
			var m struct{ Name string }
			if err := ssh.Unmarshal(req.Payload, &m); err != nil || m.Name != "sftp" {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			go func() {
				srv, err := sftp.NewServer(ch, sftp.WithServerWorkingDirectory(s.opts.Dir))
				if err == nil {
					_ = srv.Serve()
				}
				ch.Close()
			}()
		case "signal":
			var m struct{ Signal string }
			_ = ssh.Unmarshal(req.Payload, &m)
			select {
			case cmd := <-started:
				started <- cmd
				if sig, ok := signals[m.Signal]; ok && !s.opts.IgnoreSignals {
					_ = syscall.Kill(-cmd.Process.Pid, sig)
				}
			default:
			}
			if req.WantReply {
				_ = req.Reply(true, nil)
			}
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
	// The client closed the channel; a command still running goes on, as
	// under sshd, until it ends (or the server closes).
	select {
	case <-started:
		<-finished
	default:
	}
}

var signals = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
	"QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

func (s *Server) startCommand(ch ssh.Channel, command string, env []string) (*exec.Cmd, error) {
	cmd := exec.Command("sh", "-c", command)
	cmd.Dir = s.opts.Dir
	cmd.Env = append(append(os.Environ(), s.opts.Env...), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // as sshd does
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.procs[cmd] = true
	s.mu.Unlock()
	go func() {
		_, _ = io.Copy(stdin, ch)
		stdin.Close()
	}()
	return cmd, nil
}

// finish waits for cmd and reports its exit status or signal.
func (s *Server) finish(ch ssh.Channel, cmd *exec.Cmd) {
	err := cmd.Wait()
	s.mu.Lock()
	delete(s.procs, cmd)
	s.mu.Unlock()
	var ee *exec.ExitError
	switch {
	case err == nil:
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
	case errors.As(err, &ee):
		ws, _ := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			name := "KILL"
			for n, sig := range signals {
				if sig == ws.Signal() {
					name = n
				}
			}
			_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: name}))
		} else {
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(ws.ExitStatus())}))
		}
	default:
		fmt.Fprintf(ch.Stderr(), "sshtest: %v\n", err)
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{255}))
	}
	ch.Close()
}

// ClientKey is a fresh ed25519 client key: the signer, its public key for
// Options.AuthorizedKeys, and the private key written in OpenSSH's format to
// dir/id_ed25519 (0600).
func ClientKey(t testing.TB, dir string) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sshtest")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return signer, path
}

// ServeSFTPStdio serves SFTP on stdin/stdout, as OpenSSH's sftp-server
// does; a test binary can run it (from TestMain) to stand in for one.
func ServeSFTPStdio() error {
	srv, err := sftp.NewServer(struct {
		io.Reader
		io.WriteCloser
	}{os.Stdin, os.Stdout})
	if err != nil {
		return err
	}
	err = srv.Serve()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
