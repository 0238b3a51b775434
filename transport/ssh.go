package transport

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// SSHConfig says how to reach one host over SSH.
type SSHConfig struct {
	// Name is the host's name in logs and errors ("m1"); the address is
	// added: "m1 (10.251.0.11)".
	Name string
	// Address is the host's IP address or DNS name.
	Address string
	// Port defaults to 22.
	Port int
	// User defaults to root.
	User string
	// KeyFile is an unencrypted private key (OpenSSH or PEM format).
	KeyFile string
	// Password is tried after the key (password and keyboard-interactive
	// authentication). It is never logged.
	Password string
	// Agent also offers the keys of the ssh-agent at $SSH_AUTH_SOCK.
	Agent bool
	// KnownHostsFile is required: the host's key must be recorded there
	// (OpenSSH's format, hashed entries included); a different key is a
	// hard error.
	KnownHostsFile string
	// AcceptNewHostKey records the key of a host that KnownHostsFile does
	// not know yet and goes on, like OpenSSH's StrictHostKeyChecking=accept-new.
	// A host whose recorded key differs is still refused.
	AcceptNewHostKey bool
	// ConnectTimeout bounds each connection attempt: TCP connect plus the
	// SSH handshake and authentication. Defaults to 10s.
	ConnectTimeout time.Duration
	// Attempts is how many times DialSSH tries to connect (default 5, with
	// a backoff of 0.25s doubling up to 4s); errors that retrying cannot fix
	// (host key, authentication) stop at once.
	Attempts int
	// Sudo runs commands as root through `sudo -n` when User is not root,
	// and serves files through the host's sftp-server started with
	// `sudo -n`. sudo must not ask for a password (NOPASSWD in sudoers).
	Sudo bool
	// SudoPassword, when set with Sudo, is fed to `sudo -S` on stdin.
	SudoPassword string
	// KeyPassphrase decrypts an encrypted KeyFile.
	KeyPassphrase []byte
	// Bastion, when set, is a jump host the connection goes through.
	Bastion *SSHConfig
}

// Errors DialSSH returns (wrapped, with the host and the details) for
// problems that retrying cannot fix. Test with errors.Is.
var (
	// ErrHostKeyMismatch: the host's key is not the one KnownHostsFile holds.
	ErrHostKeyMismatch = errors.New("host key mismatch")
	// ErrHostKeyUnknown: KnownHostsFile has no key for the host.
	ErrHostKeyUnknown = errors.New("host key unknown")
	// ErrAuth: the host refused every credential offered.
	ErrAuth = errors.New("authentication failed")
	// ErrSudoPassword: sudo refused SudoPassword (in the message of Run's
	// and the file operations' errors).
	ErrSudoPassword = errors.New("wrong sudo password")
)

// maxSessions bounds the command sessions open at once on one connection.
// OpenSSH's sshd allows MaxSessions (default 10) per connection; the SFTP
// session takes one more, and one is left for slack.
const maxSessions = 8

// killGrace is how long Run waits after SIGTERM before sending SIGKILL to a
// cancelled command, and then for the session to end.
var killGrace = 2 * time.Second

// SSH is a host reached over one SSH connection. Commands run in their own
// sessions on it (at most 8 at a time), files go through one SFTP session.
// It is safe for concurrent use. Close it when done.
type SSH struct {
	cfg    SSHConfig
	name   string
	client *ssh.Client
	sem    chan struct{}

	done    chan struct{} // closed by Close
	lost    chan struct{} // closed when the connection ends
	silent  atomic.Bool   // keepalives went unanswered
	kaEvery time.Duration // keepaliveInterval when dialled
	mu      sync.Mutex    // guards sftpc and the fields below
	sftpc   *sftp.Client
	sftpEnd func() error // closes what serves sftpc (the sudo session)
	closed  bool
	jump    *SSH // the bastion the connection goes through, or nil
}

// DialContext opens a TCP connection from the host's side (an SSH
// direct-tcpip channel): how kubeboot reaches a control plane's API server
// on 127.0.0.1 without a route to it.
func (s *SSH) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := s.client.DialContext(ctx, network, addr)
	if err != nil {
		return nil, s.errorf("dial %s from the host: %w", addr, err)
	}
	return c, nil
}

// DialSSH connects to the host described by cfg, verifying its key against
// cfg.KnownHostsFile. Refused connections and timeouts are retried
// (cfg.Attempts); a host key mismatch, an unknown host key (unless
// AcceptNewHostKey) and an authentication failure are returned at once.
func DialSSH(ctx context.Context, cfg SSHConfig) (*SSH, error) {
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.User == "" {
		cfg.User = "root"
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	s := &SSH{cfg: cfg, name: sshName(cfg), sem: make(chan struct{}, maxSessions), done: make(chan struct{}), kaEvery: keepaliveInterval}
	if cfg.Address == "" {
		return nil, fmt.Errorf("%s: no address to connect to", s.name)
	}
	if cfg.KnownHostsFile == "" {
		return nil, fmt.Errorf("%s: no known_hosts file given: kubeboot verifies every host's key", s.name)
	}
	auth, closeAuth, err := authMethods(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	defer closeAuth()

	if cfg.Bastion != nil {
		b := *cfg.Bastion
		if b.Name == "" {
			b.Name = "bastion"
		}
		if b.ConnectTimeout <= 0 {
			b.ConnectTimeout = cfg.ConnectTimeout
		}
		b.Bastion, b.Sudo = nil, false
		if s.jump, err = DialSSH(ctx, b); err != nil {
			return nil, fmt.Errorf("%s: through the bastion: %w", s.name, err)
		}
	}
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	backoff := 250 * time.Millisecond
	attempt := 1
	for ; ; attempt++ {
		s.client, err = s.dialOnce(ctx, addr, auth)
		if err == nil {
			s.lost = make(chan struct{})
			go func() { _ = s.client.Wait(); close(s.lost) }()
			go s.keepalive()
			return s, nil
		}
		if permanent(err) || ctx.Err() != nil || attempt >= cfg.Attempts {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > 4*time.Second {
			backoff = 4 * time.Second
		}
	}
	if s.jump != nil {
		s.jump.Close()
	}
	if ctx.Err() != nil && !permanent(err) {
		err = fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
	}
	if permanent(err) {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	return nil, fmt.Errorf("%s: connect to %s (%d attempts): %w", s.name, addr, attempt, err)
}

func permanent(err error) bool {
	return errors.Is(err, ErrHostKeyMismatch) || errors.Is(err, ErrHostKeyUnknown) || errors.Is(err, ErrAuth) ||
		errors.Is(err, errKnownHosts)
}

func sshName(cfg SSHConfig) string {
	a := cfg.Address
	if cfg.Port != 22 {
		a = net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	}
	if cfg.Name == "" || cfg.Name == cfg.Address {
		return a
	}
	return cfg.Name + " (" + a + ")"
}

// dialOnce makes one connection attempt, bounded by ConnectTimeout and ctx.
func (s *SSH) dialOnce(ctx context.Context, addr string, auth []ssh.AuthMethod) (*ssh.Client, error) {
	hk, algos, err := s.hostKeyCallback(addr)
	if err != nil {
		return nil, err
	}
	var hkErr error // what the host key check said, whatever the handshake makes of it
	conf := &ssh.ClientConfig{
		User: s.cfg.User,
		Auth: auth,
		HostKeyCallback: func(h string, r net.Addr, k ssh.PublicKey) error {
			hkErr = hk(h, r, k)
			return hkErr
		},
		HostKeyAlgorithms: algos,
		Timeout:           s.cfg.ConnectTimeout,
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	var conn net.Conn
	if s.jump != nil {
		conn, err = s.jump.client.DialContext(dctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("from the bastion %s: %w", s.jump.name, err)
		}
	} else {
		var d net.Dialer
		if conn, err = d.DialContext(dctx, "tcp", addr); err != nil {
			return nil, err
		}
	}
	// The handshake has the same deadline; cancelling ctx closes the socket.
	deadline, _ := dctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, conf)
	stopped := stop()
	if err != nil {
		conn.Close()
		if hkErr != nil {
			return nil, hkErr
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("%w as %s (offered: %s): %v", ErrAuth, s.cfg.User, describeAuth(s.cfg), err)
		}
		if !stopped && dctx.Err() != nil {
			return nil, fmt.Errorf("ssh handshake: %w", dctx.Err())
		}
		return nil, err
	}
	if !stopped { // ctx ended just as the handshake finished
		conn.Close()
		return nil, dctx.Err()
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

func describeAuth(cfg SSHConfig) string {
	var m []string
	if cfg.KeyFile != "" {
		m = append(m, "key "+cfg.KeyFile)
	}
	if cfg.Agent {
		m = append(m, "ssh-agent keys")
	}
	if cfg.Password != "" {
		m = append(m, "password")
	}
	return strings.Join(m, ", ")
}

// authMethods turns the config's credentials into SSH auth methods. The
// returned func closes the agent connection.
func authMethods(cfg SSHConfig) ([]ssh.AuthMethod, func(), error) {
	var methods []ssh.AuthMethod
	var signers []ssh.Signer
	closeFn := func() {}
	if cfg.KeyFile != "" {
		pem, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, closeFn, fmt.Errorf("read SSH key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var ppe *ssh.PassphraseMissingError
		if errors.As(err, &ppe) {
			if len(cfg.KeyPassphrase) == 0 {
				return nil, closeFn, fmt.Errorf("SSH key %s is protected by a passphrase: set ssh.passphraseEnv (or run on a terminal to be asked, or load it into ssh-agent)", cfg.KeyFile)
			}
			signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, cfg.KeyPassphrase)
			if errors.Is(err, x509.IncorrectPasswordError) || err != nil && strings.Contains(err.Error(), "decryption password incorrect") {
				return nil, closeFn, fmt.Errorf("SSH key %s: wrong passphrase", cfg.KeyFile)
			}
		}
		if err != nil {
			return nil, closeFn, fmt.Errorf("SSH key %s: %w", cfg.KeyFile, err)
		}
		signers = append(signers, signer)
	}
	if cfg.Agent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, closeFn, errors.New("ssh-agent requested but SSH_AUTH_SOCK is not set")
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, closeFn, fmt.Errorf("connect to ssh-agent: %w", err)
		}
		closeFn = func() { conn.Close() }
		agentSigners, err := agent.NewClient(conn).Signers()
		if err != nil {
			conn.Close()
			return nil, func() {}, fmt.Errorf("list ssh-agent keys: %w", err)
		}
		signers = append(signers, agentSigners...)
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if cfg.Password != "" {
		pw := cfg.Password
		methods = append(methods, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	if len(methods) == 0 {
		closeFn()
		return nil, func() {}, errors.New("no SSH credentials: set a key file, a password or the ssh-agent")
	}
	return methods, closeFn, nil
}

// Name implements Host: "m1 (10.251.0.11)".
func (s *SSH) Name() string { return s.name }

// Close ends the SFTP session and the connection. Commands still running are
// cut off (see Run).
func (s *SSH) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	c, end := s.sftpc, s.sftpEnd
	s.sftpc, s.sftpEnd = nil, nil
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
	if end != nil {
		_ = end()
	}
	err := s.client.Close()
	if s.jump != nil {
		s.jump.Close()
	}
	return err
}

// keepaliveInterval is how often an idle or busy connection is checked.
var keepaliveInterval = 30 * time.Second

// keepalive sends a keepalive@openssh.com request every keepaliveInterval
// and closes the connection when the host does not answer within another
// interval (it crashed, rebooted or the network dropped), so that a Run
// waiting on a silent command fails instead of hanging.
func (s *SSH) keepalive() {
	t := time.NewTicker(s.kaEvery)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		replied := make(chan error, 1)
		go func() {
			_, _, err := s.client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		select {
		case err := <-replied:
			if err == nil {
				continue
			}
		case <-time.After(s.kaEvery):
		case <-s.done:
			return
		}
		s.silent.Store(true)
		s.client.Close()
		return
	}
}

// connLost says why the connection ended, or "" while it is up.
func (s *SSH) connLost() string {
	select {
	case <-s.lost:
	default:
		return ""
	}
	switch {
	case s.silent.Load():
		return fmt.Sprintf("connection lost: no answer to an SSH keepalive within %v", s.kaEvery)
	case s.isClosed():
		return "connection closed"
	}
	return "connection lost"
}

// connLostWait is connLost after giving the connection's end a moment to be
// noticed (a session cut off by it ends first).
func (s *SSH) connLostWait() string {
	select {
	case <-s.lost:
	case <-time.After(100 * time.Millisecond):
	}
	return s.connLost()
}

func (s *SSH) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// errorf formats an error that starts with the host's name.
func (s *SSH) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{s.name}, args...)...)
}

// acquire takes one of the connection's session slots.
func (s *SSH) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *SSH) release() { <-s.sem }

// sudoArgs prefixes args with sudo when the config asks for it.
func (s *SSH) sudoArgs(args []string) []string {
	if !s.cfg.Sudo || s.cfg.User == "root" {
		return args
	}
	if s.sudoPassword() {
		return append([]string{"sudo", "-S", "-k", "-p", "", "--"}, args...)
	}
	return append([]string{"sudo", "-n", "--"}, args...)
}

// sudoPassword says whether commands go through `sudo -S` with the
// password written first on their stdin.
func (s *SSH) sudoPassword() bool {
	return s.cfg.Sudo && s.cfg.User != "root" && s.cfg.SudoPassword != ""
}

// newSession opens a session on the connection. sshd frees a session slot
// a moment after the channel closed, so even with at most maxSessions+1 open
// it may refuse one ("no more sessions", sent as "connect failed"): a
// refusal is retried for a few seconds.
func (s *SSH) newSession(ctx context.Context) (*ssh.Session, error) {
	delay := 10 * time.Millisecond
	for i := 0; ; i++ {
		sess, err := s.client.NewSession()
		var oce *ssh.OpenChannelError
		if err == nil || !errors.As(err, &oce) || (oce.Reason != ssh.ConnectionFailed && oce.Reason != ssh.Prohibited && oce.Reason != ssh.ResourceShortage) || i >= 30 {
			return sess, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// Run implements Host. The argument list is quoted with Quote and run by the
// login shell of the user (`sudo -n --` first with Sudo); stdin is streamed,
// stdout and stderr are captured. A non-zero exit is an *ExitError carrying
// the host, the arguments (as given, without sudo), the code (128+n for a
// signal) and stderr. Input the command does not read is dropped, as with
// os/exec.
//
// When ctx ends first, Run sends SIGTERM to the remote command's process
// group, waits up to 2s, sends SIGKILL, closes the session and returns ctx's
// error. The signals go as SSH signal requests and, since OpenSSH ignores
// those on root logins (and before 7.9), also with kill(1) on the command's
// process group from a second session (sshd makes every command a process
// group leader; a small sh wrapper reports the group first). With Sudo the
// kill runs through sudo. Processes that leave the group (daemons) live on.
func (s *SSH) Run(ctx context.Context, c Cmd) (Result, error) {
	if len(c.Args) == 0 {
		return Result{}, s.errorf("run: empty command")
	}
	if err := ctx.Err(); err != nil {
		return Result{}, s.errorf("%s: %w", Quote(c.Args), err)
	}
	if err := s.acquire(ctx); err != nil {
		return Result{}, s.errorf("%s: %w", Quote(c.Args), err)
	}
	defer s.release()
	sess, err := s.newSession(ctx)
	if err != nil {
		if lost := s.connLost(); lost != "" {
			return Result{}, s.errorf("%s: %s: %w", Quote(c.Args), lost, err)
		}
		return Result{}, s.errorf("%s: open session: %w", Quote(c.Args), err)
	}
	defer sess.Close()
	stdout := &pgidWriter{ready: make(chan struct{}), out: c.Stdout}
	var stderr syncBuffer
	sess.Stdout, sess.Stderr = stdout, &stderr
	if c.Stderr != nil {
		sess.Stderr = io.MultiWriter(c.Stderr, &stderr)
	}
	stdin := c.Stdin
	if s.sudoPassword() {
		// sudo -S reads the password's line first; the command gets the rest.
		rest := stdin
		if rest == nil {
			rest = strings.NewReader("")
		}
		stdin = io.MultiReader(strings.NewReader(s.cfg.SudoPassword+"\n"), rest)
	}
	var in *errReader
	if stdin != nil {
		w, err := sess.StdinPipe()
		if err != nil {
			return Result{}, s.errorf("%s: %w", Quote(c.Args), err)
		}
		in = &errReader{r: stdin}
		go func() {
			// A write error means the command exited without reading
			// everything: not an error, as with os/exec.
			_, _ = io.Copy(w, in)
			w.Close()
		}()
	}
	// The command runs behind a shell that first prints its process group
	// (sshd makes each command a session leader): cancelling kills that
	// group, since OpenSSH ignores signal requests on root logins.
	line := Quote(append([]string{"sh", "-c", pgidScript, "sh"}, s.sudoArgs(c.Args)...))
	if err := sess.Start(line); err != nil {
		return Result{}, s.errorf("%s: start: %w", Quote(c.Args), err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		select { // the group is known a moment after the start
		case <-stdout.ready:
		case <-done:
		case <-time.After(killGrace):
		}
		s.interrupt(sess, stdout.group(), ssh.SIGTERM)
		select {
		case <-done:
		case <-time.After(killGrace):
			s.interrupt(sess, stdout.group(), ssh.SIGKILL)
			sess.Close()
			select {
			case <-done:
			case <-time.After(killGrace):
			}
		}
		res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
		return res, s.errorf("%s: %w", Quote(c.Args), ctx.Err())
	}
	stdout.flush()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var ee *ssh.ExitError
	switch {
	case err == nil:
		if rerr := in.err(); rerr != nil {
			return res, s.errorf("%s: reading its input: %w", Quote(c.Args), rerr)
		}
		return res, nil
	case errors.As(err, &ee):
		xe := &ExitError{Host: s.name, Args: c.Args, ExitCode: ee.ExitStatus(), Stderr: stderr.String()}
		if ee.Signal() != "" && xe.Stderr == "" {
			xe.Stderr = "killed by SIG" + ee.Signal()
		}
		if p := s.sudoProblem(xe.Stderr); p != "" && xe.ExitCode == 1 {
			return res, s.errorf("%s: %w", p, xe)
		}
		return res, s.errorf("%w", xe)
	default:
		// The session ended without an exit status: the connection or the
		// server dropped it.
		why := err.Error()
		if lost := s.connLostWait(); lost != "" {
			why = lost
		}
		return res, s.errorf("%w", &ExitError{Host: s.name, Args: c.Args, ExitCode: -1, Stderr: strings.TrimSpace(stderr.String() + "\n" + why)})
	}
}

// pgidScript prints the process group of the shell running it, then execs
// its arguments.
const pgidScript = `{ read -r _ _ _ _ g _ </proc/$$/stat; } 2>/dev/null || g=$$; echo "$g"; exec "$@"`

// interrupt sends sig to a running command: as a signal request (OpenSSH
// honours it for non-root users) and, when its process group is known, with
// kill(1) on the group from a second session (as root with Sudo).
func (s *SSH) interrupt(sess *ssh.Session, group int, sig ssh.Signal) {
	_ = sess.Signal(sig)
	if group <= 1 {
		return
	}
	ks, err := s.newSession(context.Background())
	if err != nil {
		return
	}
	defer ks.Close()
	killed := make(chan struct{})
	if s.sudoPassword() {
		ks.Stdin = strings.NewReader(s.cfg.SudoPassword + "\n")
	}
	go func() {
		_ = ks.Run(Quote(s.sudoArgs([]string{"sh", "-c", `kill -s "$1" -- "-$2"`, "sh", string(sig), strconv.Itoa(group)})))
		close(killed)
	}()
	select {
	case <-killed:
	case <-time.After(killGrace):
	}
}

// pgidWriter takes the first line of a command's stdout (pgidScript's
// process group) and keeps the rest.
type pgidWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	out   io.Writer // when set, the output goes there instead of buf
	head  []byte
	done  bool
	pgid  int
	ready chan struct{} // closed once the first line was seen
}

func (p *pgidWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return p.keep(b)
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		p.head = append(p.head, b...)
		if len(p.head) > 32 { // not ours
			p.finishLocked(false)
		}
		return len(b), nil
	}
	p.head = append(p.head, b[:i+1]...)
	p.finishLocked(true)
	if _, err := p.keep(b[i+1:]); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (p *pgidWriter) keep(b []byte) (int, error) {
	if p.out != nil {
		if len(b) == 0 {
			return 0, nil
		}
		return p.out.Write(b)
	}
	return p.buf.Write(b)
}

// finishLocked ends the header: a number is the group, anything else is
// output.
func (p *pgidWriter) finishLocked(line bool) {
	if n, err := strconv.Atoi(strings.TrimSuffix(string(p.head), "\n")); line && err == nil && n > 1 {
		p.pgid = n
	} else {
		_, _ = p.keep(p.head)
	}
	p.head, p.done = nil, true
	close(p.ready)
}

// flush ends the header at the end of the output.
func (p *pgidWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done {
		p.finishLocked(false)
	}
}

func (p *pgidWriter) group() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pgid
}

// Bytes returns a copy of the output so far.
func (p *pgidWriter) Bytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.buf.Bytes())
}

// errReader remembers the error (other than EOF) its reader returned.
type errReader struct {
	r   io.Reader
	mu  sync.Mutex
	bad error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.mu.Lock()
		e.bad = err
		e.mu.Unlock()
	}
	return n, err
}

func (e *errReader) err() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bad
}

// sftpClient returns the connection's SFTP client, starting it on first use:
// the server's sftp subsystem, or with Sudo the host's sftp-server binary run
// through `sudo -n`, so that files are read and written as root.
func (s *SSH) sftpClient(ctx context.Context) (*sftp.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, s.errorf("connection closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, s.errorf("sftp: %w", err)
	}
	if s.sftpc != nil {
		return s.sftpc, nil
	}
	sudo := s.cfg.Sudo && s.cfg.User != "root"
	what := "start sftp"
	if sudo {
		what = "start sftp-server with sudo"
	}
	sess, err := s.newSession(ctx)
	if err != nil {
		return nil, s.errorf("%s: %w", what, err)
	}
	stdin, err1 := sess.StdinPipe()
	stdout, err2 := sess.StdoutPipe()
	var stderr syncBuffer
	sess.Stderr = &stderr
	if err := errors.Join(err1, err2); err != nil {
		sess.Close()
		return nil, s.errorf("%s: %w", what, err)
	}
	if sudo {
		err = sess.Start(s.sudoSFTPCommand())
		if err == nil && s.sudoPassword() {
			// sudo -S reads this line; sftp-server the packets after it.
			_, err = io.WriteString(stdin, s.cfg.SudoPassword+"\n")
		}
	} else {
		err = sess.RequestSubsystem("sftp")
	}
	if err != nil {
		sess.Close()
		return nil, s.errorf("%s: %w", what, err)
	}
	c, err := sftp.NewClientPipe(stdout, stdin, sftp.UseConcurrentWrites(true), sftp.UseConcurrentReads(true))
	if err != nil {
		// Let the session end, so that its stderr is all there.
		waited := make(chan error, 1)
		go func() { waited <- sess.Wait() }()
		select {
		case <-waited:
		case <-time.After(killGrace):
		}
		sess.Close()
		msg := strings.TrimSpace(stderr.String())
		if p := s.sudoProblem(msg); sudo && p != "" {
			return nil, s.errorf("%s (starting sftp-server: %s)", p, msg)
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, s.errorf("%s: %s", what, msg)
	}
	s.sftpc, s.sftpEnd = c, sess.Close
	return c, nil
}

// sudoProblem explains sudo's refusals that kubeboot cannot get past.
func (s *SSH) sudoProblem(stderr string) string {
	if !s.cfg.Sudo || s.cfg.User == "root" {
		return ""
	}
	u := s.cfg.User
	switch {
	case s.sudoPassword() && (strings.Contains(stderr, "incorrect password") || strings.Contains(stderr, "Sorry, try again") || strings.Contains(stderr, "no password was provided")):
		return fmt.Sprintf("%v: sudo refused %s's password (ssh.sudo.passwordEnv or passwordFile holds the wrong one)", ErrSudoPassword, u)
	case strings.Contains(stderr, "sudo: a password is required"):
		return fmt.Sprintf("sudo asks %s for a password; kubeboot runs `sudo -n` and cannot answer: allow %s to run commands without one (NOPASSWD in sudoers) or connect as root", u, u)
	case strings.Contains(stderr, "you must have a tty to run sudo"):
		return fmt.Sprintf("sudoers requires a tty for %s (Defaults requiretty); kubeboot runs commands without one: add `Defaults:%s !requiretty` or connect as root", u, u)
	case strings.Contains(stderr, "is not in the sudoers file") || strings.Contains(stderr, "is not allowed to execute"):
		return fmt.Sprintf("%s may not use sudo: allow it in sudoers (NOPASSWD) or connect as root", u)
	}
	return ""
}

// sftpServers are where distributions install OpenSSH's sftp-server.
var sftpServers = []string{
	"/usr/lib/openssh/sftp-server",     // Debian, Ubuntu
	"/usr/libexec/openssh/sftp-server", // RHEL, Fedora, SUSE
	"/usr/lib/ssh/sftp-server",         // Arch
	"/usr/libexec/sftp-server",         // Alpine, BSDs
	"/usr/lib/sftp-server",
}

func (s *SSH) sudoSFTPCommand() string {
	script := `for p in "$@"; do [ -x "$p" ] && exec "$p"; done; echo "kubeboot: no sftp-server found (looked for $*)" >&2; exit 127`
	return Quote(s.sudoArgs(append([]string{"sh", "-c", script, "sh"}, sftpServers...)))
}

// syncBuffer is a bytes.Buffer safe for one writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// Bytes returns a copy of what was written so far.
func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.b.Bytes())
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var (
	_ Host     = (*SSH)(nil)
	_ Uploader = (*SSH)(nil)
	_ Uploader = (*Local)(nil)
	_ Uploader = (*DryRun)(nil)
)
