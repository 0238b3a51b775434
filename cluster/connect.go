package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
)

// SSHDialer connects to the inventory's hosts over SSH.
type SSHDialer struct {
	// AcceptNewHostKeys records the key of a host known_hosts does not
	// know yet (--accept-new-host-keys); a changed key is always refused.
	AcceptNewHostKeys bool
	// Getenv reads the password and passphrase variables (os.Getenv).
	Getenv func(string) string
	// Prompt asks for an encrypted key's passphrase when no variable
	// holds it; nil: on the terminal, if there is one.
	Prompt func(what string) ([]byte, error)

	mu          sync.Mutex
	passphrases map[string][]byte // by key file: asked once
}

// Connect is an Options.Connect: host i of inv over SSH.
func (d *SSHDialer) Connect(ctx context.Context, inv *Inventory, i int) (transport.Host, error) {
	cfg, err := d.Config(inv, i)
	if err != nil {
		return nil, err
	}
	return transport.DialSSH(ctx, cfg)
}

// Config is host i's transport.SSHConfig, with the passwords and
// passphrases read from their variables and files.
func (d *SSHDialer) Config(inv *Inventory, i int) (transport.SSHConfig, error) {
	h := &inv.Hosts[i]
	s := inv.HostSSH(i, inv.Dir, inv.Home)
	field := func(f string) string { return fmt.Sprintf("hosts[%d] (%s) ssh.%s", i, h.Name, f) }
	cfg := transport.SSHConfig{
		Name:             h.Name,
		Address:          h.Address,
		Port:             s.Port,
		User:             s.User,
		KeyFile:          s.KeyFile,
		Agent:            s.Agent != nil && *s.Agent,
		KnownHostsFile:   s.KnownHostsFile,
		AcceptNewHostKey: d.AcceptNewHostKeys,
		Sudo:             s.User != "root" && s.Sudo.Mode != inventory.SudoNone,
	}
	var err error
	if cfg.Password, err = d.secret(field("password"), s.Password, s.PasswordEnv, s.PasswordFile); err != nil {
		return cfg, err
	}
	if cfg.KeyPassphrase, err = d.passphrase(field("passphraseEnv"), s.KeyFile, s.PassphraseEnv); err != nil {
		return cfg, err
	}
	if s.Sudo.Mode == inventory.SudoPassword {
		if cfg.SudoPassword, err = d.secret(field("sudo"), "", s.Sudo.PasswordEnv, s.Sudo.PasswordFile); err != nil {
			return cfg, err
		}
		if cfg.SudoPassword == "" {
			return cfg, fmt.Errorf("%s: mode password, but the sudo password is empty", field("sudo"))
		}
	}
	if b := s.Bastion; b != nil {
		bc := transport.SSHConfig{
			Name:             h.Name + " bastion",
			Address:          b.Address,
			Port:             b.Port,
			User:             b.User,
			KeyFile:          b.KeyFile,
			Agent:            b.Agent != nil && *b.Agent,
			KnownHostsFile:   b.KnownHostsFile,
			AcceptNewHostKey: d.AcceptNewHostKeys,
		}
		if bc.Password, err = d.secret(field("bastion.password"), "", b.PasswordEnv, b.PasswordFile); err != nil {
			return cfg, err
		}
		if bc.KeyPassphrase, err = d.passphrase(field("bastion.passphraseEnv"), b.KeyFile, b.PassphraseEnv); err != nil {
			return cfg, err
		}
		cfg.Bastion = &bc
	}
	return cfg, nil
}

// secret is an inline value, an environment variable's or a file's first
// line.
func (d *SSHDialer) secret(field, inline, env, file string) (string, error) {
	getenv := d.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	switch {
	case env != "":
		v := getenv(env)
		if v == "" {
			return "", fmt.Errorf("%s: the environment variable %s is not set (or empty): export it before kubeboot apply", field, env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		v, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(v, "\r"), nil
	}
	return inline, nil
}

// passphrase is an encrypted key's passphrase: from env when named, else
// asked once per key on the terminal when the key is encrypted, else nil.
func (d *SSHDialer) passphrase(field, keyFile, env string) ([]byte, error) {
	if env != "" {
		v, err := d.secret(field, "", env, "")
		return []byte(v), err
	}
	if keyFile == "" || !keyEncrypted(keyFile) {
		return nil, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.passphrases[keyFile]; ok {
		return p, nil
	}
	prompt := d.Prompt
	if prompt == nil {
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return nil, fmt.Errorf("%s: %s is encrypted and there is no terminal to ask for its passphrase: set ssh.passphraseEnv", field, keyFile)
		}
		prompt = func(what string) ([]byte, error) {
			fmt.Fprintf(os.Stderr, "Passphrase for %s: ", what)
			defer fmt.Fprintln(os.Stderr)
			return term.ReadPassword(int(os.Stdin.Fd()))
		}
	}
	p, err := prompt(keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: read the passphrase: %w", field, err)
	}
	if d.passphrases == nil {
		d.passphrases = map[string][]byte{}
	}
	d.passphrases[keyFile] = p
	return p, nil
}

// keyEncrypted says whether a private key file needs a passphrase.
func keyEncrypted(p string) bool {
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	_, err = ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	return errors.As(err, &missing)
}
