package transport

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// errKnownHosts marks a known_hosts file that cannot be used; retrying
// does not help.
var errKnownHosts = errors.New("known_hosts")

// knownHostsMu serialises appends to known_hosts files by this process
// (DialSSH to many new hosts at once with AcceptNewHostKey).
var knownHostsMu sync.Mutex

// hostKeyCallback returns the strict host key check for addr and the host
// key algorithms to ask the server for: those of the keys known_hosts holds
// for it, so that a host with several keys presents the recorded one.
func (s *SSH) hostKeyCallback(addr string) (ssh.HostKeyCallback, []string, error) {
	file := s.cfg.KnownHostsFile
	db, err := loadKnownHosts(file, s.cfg.AcceptNewHostKey)
	if err != nil {
		return nil, nil, err
	}
	algos := knownAlgorithms(db, addr)
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := db(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return fmt.Errorf("%w: the host's %s key %s is marked @revoked in %s:%d", ErrHostKeyMismatch, key.Type(), ssh.FingerprintSHA256(key), re.Revoked.Filename, re.Revoked.Line)
		case errors.As(err, &ke) && len(ke.Want) > 0:
			w := ke.Want[0]
			return fmt.Errorf("%w: the host presented %s key %s, but %s:%d records %s %s for %s; if the host was reinstalled, remove the old entry (ssh-keygen -R '%s' -f %s) and connect again, otherwise someone may be intercepting the connection",
				ErrHostKeyMismatch, key.Type(), ssh.FingerprintSHA256(key), w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key),
				knownhosts.Normalize(addr), knownhosts.Normalize(addr), file)
		case errors.As(err, &ke):
			if s.cfg.AcceptNewHostKey {
				return recordHostKey(file, addr, hostname, remote, key)
			}
			host, port, _ := net.SplitHostPort(addr)
			return fmt.Errorf("%w: %s is not in %s; check that the host's %s key is %s and record it (ssh-keyscan -p %s %s >> %s), or allow accepting new host keys",
				ErrHostKeyUnknown, knownhosts.Normalize(addr), file, key.Type(), ssh.FingerprintSHA256(key), port, host, file)
		default:
			return fmt.Errorf("%w: check the host key against %s: %v", errKnownHosts, file, err)
		}
	}
	return cb, algos, nil
}

// loadKnownHosts parses file; with acceptNew a missing file is an empty one.
func loadKnownHosts(file string, acceptNew bool) (ssh.HostKeyCallback, error) {
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) && acceptNew {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	} else if err != nil {
		return nil, fmt.Errorf("%w file %s: %w; record the host's key there or allow accepting new host keys", errKnownHosts, file, err)
	}
	db, err := knownhosts.New(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errKnownHosts, err)
	}
	return db, nil
}

// knownAlgorithms asks db which keys it holds for addr (a key that matches
// nothing yields a KeyError listing them) and returns their algorithms, or
// nil (any algorithm) when there are none.
func knownAlgorithms(db ssh.HostKeyCallback, addr string) []string {
	probe, _ := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	remote, _ := net.ResolveTCPAddr("tcp", addr)
	if remote == nil {
		remote = &net.TCPAddr{}
	}
	var ke *knownhosts.KeyError
	if err := db(addr, remote, probe); !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		names := []string{k.Key.Type()}
		if k.Key.Type() == ssh.KeyAlgoRSA {
			names = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				algos = append(algos, n)
			}
		}
	}
	return algos
}

// recordHostKey appends the key of a new host to file (created 0600, its
// directory 0700), after checking again under the lock that no other dial
// recorded a different key for it meanwhile.
func recordHostKey(file, addr, hostname string, remote net.Addr, key ssh.PublicKey) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	if _, err := os.Stat(file); err == nil {
		db, err := knownhosts.New(file)
		if err != nil {
			return fmt.Errorf("%w: %v", errKnownHosts, err)
		}
		err = db(hostname, remote, key)
		var ke *knownhosts.KeyError
		if err == nil {
			return nil
		}
		if !errors.As(err, &ke) || len(ke.Want) > 0 {
			return fmt.Errorf("%w: the host's key changed while it was being recorded in %s", ErrHostKeyMismatch, file)
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("%w: record the host key: %w", errKnownHosts, err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%w: record the host key: %w", errKnownHosts, err)
	}
	_, err = f.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n")
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("%w: record the host key in %s: %w", errKnownHosts, file, err)
	}
	return nil
}
