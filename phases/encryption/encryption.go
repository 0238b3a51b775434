// Package encryption keeps the key kube-apiserver encrypts Secrets in etcd
// with (inventory.EncryptionConfigPath): init makes it once and every
// re-run keeps it, a joining control plane gets the same one through the
// kubeadm-certs Secret (certs/copycerts), and Rotate replaces it on every
// control plane without a Secret ever becoming unreadable.
package encryption

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// Mode is the encryption configuration's: it holds the key.
const Mode fs.FileMode = 0o600

// ReadKeys reads the keys of the encryption configuration on h; found is
// false when there is none.
func ReadKeys(ctx context.Context, h transport.Host) (keys []templates.EncryptionKey, found bool, err error) {
	b, err := h.ReadFile(ctx, inventory.EncryptionConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s on %s: %w", inventory.EncryptionConfigPath, h.Name(), err)
	}
	keys, err = templates.ParseEncryptionConfig(b)
	if err != nil {
		return nil, true, fmt.Errorf("%s on %s: %w", inventory.EncryptionConfigPath, h.Name(), err)
	}
	return keys, true, nil
}

// NewKey makes a random key of provider named name.
func NewKey(provider, name string) (templates.EncryptionKey, error) {
	k := templates.EncryptionKey{Provider: provider, Name: name, Secret: make([]byte, 32)}
	if _, err := rand.Read(k.Secret); err != nil {
		return k, fmt.Errorf("generate an encryption key: %w", err)
	}
	return k, nil
}

// Ensure is the control-plane phase's part: on init it makes the
// encryption configuration with a new key of cfg's provider when there is
// none, and keeps the one there (a re-run must never change the key: the
// Secrets are encrypted with it). A joining control plane (join) never
// makes one: it must have the cluster's, downloaded or copied.
func Ensure(ctx context.Context, h transport.Host, cfg *inventory.Cluster, out *workflow.Printer, join bool) error {
	const tag = "control-plane"
	file := inventory.EncryptionConfigPath
	keys, found, err := ReadKeys(ctx, h)
	if err != nil {
		return err
	}
	want := cfg.EncryptionAtRest.Provider
	switch {
	case !cfg.EncryptionAtRest.Enabled() && found:
		return fmt.Errorf("encryptionAtRest.provider is none, but %s is there: the cluster's Secrets may be encrypted with it, and an API server without it could not read them; keep encryptionAtRest.provider: %s (what the file uses)", file, keys[0].Provider)
	case !cfg.EncryptionAtRest.Enabled():
		return nil
	case found && keys[0].Provider != want:
		return fmt.Errorf("encryptionAtRest.provider is %s, but %s writes with %s (key %q): run `kubeboot secrets rotate-key` to move the Secrets to a new %s key", want, file, keys[0].Provider, keys[0].Name, want)
	case found:
		out.Printf(tag, "Using the existing encryption configuration %q (Secrets are written with %s key %q)", file, keys[0].Provider, keys[0].Name)
		_, err := hostutil.EnsureMode(ctx, h, file, Mode)
		return err
	case join:
		return fmt.Errorf("%s is missing: every control plane must encrypt Secrets with the cluster's key; join with --certificate-key (after `kubeboot init phase upload-certs --upload-certs`), or copy the file from a control-plane node (0600)", file)
	}
	k, err := NewKey(want, "key1")
	if err != nil {
		return err
	}
	data, err := templates.EncryptionConfig([]templates.EncryptionKey{k})
	if err != nil {
		return err
	}
	if _, _, err := hostutil.WriteIfChanged(ctx, h, file, data, Mode); err != nil {
		return err
	}
	out.Printf(tag, "Creating the encryption configuration %q: Secrets are encrypted in etcd with a new %s key", file, want)
	return nil
}

// nextName is "key<N+1>" for the highest keyN among keys.
func nextName(keys ...[]templates.EncryptionKey) string {
	n := 0
	for _, ks := range keys {
		for _, k := range ks {
			n = max(n, keyNumber(k.Name))
		}
	}
	return "key" + strconv.Itoa(n+1)
}

// keyNumber is N of a name keyN, else 0.
func keyNumber(name string) int {
	if !strings.HasPrefix(name, "key") {
		return 0
	}
	i, err := strconv.Atoi(strings.TrimPrefix(name, "key"))
	if err != nil || i < 0 {
		return 0
	}
	return i
}
