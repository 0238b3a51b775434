package encryption

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// Node is a control plane whose encryption configuration Rotate changes.
type Node struct {
	Name string
	Host transport.Host
	// Restart restarts the node's API server, so that it reads the
	// configuration again, and returns once it is healthy; ErrUpToDate
	// when its API server already runs with the file as it is.
	Restart func(ctx context.Context) error
}

// ErrUpToDate is Node.Restart's when the API server already read the
// configuration on disk: nothing to restart.
var ErrUpToDate = errors.New("the API server already runs with this configuration")

// RotateOptions are Rotate's.
type RotateOptions struct {
	// Provider is the new key's (the cluster's encryptionAtRest.provider:
	// a rotation is also how a cluster moves to another provider).
	Provider string
	// Client rewrites the Secrets (any control plane's API).
	Client kubernetes.Interface
	Out    *workflow.Printer
}

// RotateReport is what a rotation did.
type RotateReport struct {
	// From is the key Secrets were written with before, To the one now.
	From, To string
	// Restarts counts the API server restarts.
	Restarts int
	// Rewritten counts the Secrets rewritten under the new key.
	Rewritten int
}

const rotateTag = "rotate-key"

// Rotate replaces the key Secrets are encrypted with on every node, in
// the order Kubernetes documents, so that no API server ever meets a
// Secret it cannot read:
//
//  1. add: the new key goes second on every node (each API server can
//     read it, none writes with it yet), restarting each API server;
//  2. use: the new key goes first on every node (writes use it),
//     restarting each again;
//  3. rewrite: every Secret is written again through the API, so it is
//     stored under the new key;
//  4. drop: the old keys are removed (the identity provider stays last),
//     restarting each a third time.
//
// API servers restart one at a time, so with several control planes the
// API stays available. A rotation stopped half-way is resumed by running
// it again: the nodes' files say where it stopped (a key newer than the
// one every node writes with is the rotation's). At the end the
// kubeadm-certs Secret is deleted when there is one: its sealed copy of
// the configuration holds the old key.
func Rotate(ctx context.Context, nodes []Node, o RotateOptions) (RotateReport, error) {
	var rep RotateReport
	if len(nodes) == 0 {
		return rep, errors.New("no control plane to rotate the key on")
	}
	if o.Provider == inventory.EncryptionNone || o.Provider == "" {
		return rep, fmt.Errorf("encryptionAtRest.provider is %q: rotate-key needs a provider with a key (secretbox, aesgcm, aescbc)", o.Provider)
	}
	keys := make([][]templates.EncryptionKey, len(nodes))
	for i, n := range nodes {
		ks, found, err := ReadKeys(ctx, n.Host)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", n.Name, err)
		}
		if !found {
			return rep, fmt.Errorf("%s has no %s: Secrets are not encrypted there (encryptionAtRest.provider: none when it was set up?); run `kubeboot init phase control-plane apiserver` with a provider first", n.Name, inventory.EncryptionConfigPath)
		}
		keys[i] = ks
	}
	rep.From = describe(keys[0][0])
	target, resumed, err := rotationKey(keys, o.Provider)
	if err != nil {
		return rep, err
	}
	rep.To = describe(target)
	if resumed {
		o.Out.Printf(rotateTag, "Resuming the rotation to %s", rep.To)
	} else {
		o.Out.Printf(rotateTag, "New %s key %q; Secrets are written with %s", target.Provider, target.Name, rep.From)
	}
	step := func(what string, change func([]templates.EncryptionKey) []templates.EncryptionKey) error {
		for i, n := range nodes {
			next := change(keys[i])
			if sameKeys(next, keys[i]) {
				// The file may have been written by a rotation stopped
				// before the restart: its API server must run with it.
				switch err := n.Restart(ctx); {
				case errors.Is(err, ErrUpToDate):
					o.Out.Printf(rotateTag, "%s: %s: already done", n.Name, what)
				case err != nil:
					return fmt.Errorf("%s: restart the API server, which had not read its configuration: %w", n.Name, err)
				default:
					o.Out.Printf(rotateTag, "%s: %s: done before, and its API server restarted now (it had not read it)", n.Name, what)
					rep.Restarts++
				}
				continue
			}
			data, err := templates.EncryptionConfig(next)
			if err != nil {
				return err
			}
			if _, _, err := hostutil.WriteIfChanged(ctx, n.Host, inventory.EncryptionConfigPath, data, Mode); err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
			keys[i] = next
			o.Out.Printf(rotateTag, "%s: %s; restarting the API server", n.Name, what)
			if err := n.Restart(ctx); err != nil {
				return fmt.Errorf("%s: restart the API server after %s: %w (run rotate-key again to go on)", n.Name, what, err)
			}
			rep.Restarts++
		}
		return nil
	}
	if err := step("add "+rep.To+" to read with", func(ks []templates.EncryptionKey) []templates.EncryptionKey {
		if indexOf(ks, target) >= 0 {
			return ks
		}
		return append([]templates.EncryptionKey{ks[0], target}, ks[1:]...)
	}); err != nil {
		return rep, err
	}
	if err := step("write with "+rep.To, func(ks []templates.EncryptionKey) []templates.EncryptionKey {
		i := indexOf(ks, target)
		if i == 0 {
			return ks
		}
		out := []templates.EncryptionKey{ks[i]}
		out = append(out, ks[:i]...)
		return append(out, ks[i+1:]...)
	}); err != nil {
		return rep, err
	}
	n, err := RewriteSecrets(ctx, o.Client)
	rep.Rewritten = n
	if err != nil {
		return rep, fmt.Errorf("rewrite the Secrets under %s (%d done): %w; run rotate-key again to go on (the old key is still there to read them)", rep.To, n, err)
	}
	o.Out.Printf(rotateTag, "Rewrote %d Secrets: they are stored under %s", n, rep.To)
	if err := step("drop the old keys", func(ks []templates.EncryptionKey) []templates.EncryptionKey {
		out := []templates.EncryptionKey{target}
		for _, k := range ks {
			if k.Provider == inventory.EncryptionNone {
				out = append(out, k)
			}
		}
		return out
	}); err != nil {
		return rep, err
	}
	err = o.Client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, copycerts.SecretName, metav1.DeleteOptions{})
	switch {
	case err == nil:
		o.Out.Printf(rotateTag, "Deleted Secret kube-system/%s: it holds the old key; run `kubeboot init phase upload-certs --upload-certs` before joining another control plane", copycerts.SecretName)
	case !apierrors.IsNotFound(err):
		return rep, fmt.Errorf("delete Secret kube-system/%s (it holds the old key): %w", copycerts.SecretName, err)
	}
	return rep, nil
}

// rotationKey is the key to rotate to: a new one of provider when every
// node has the same single key, else the newest key any node has (a
// rotation stopped half-way).
func rotationKey(keys [][]templates.EncryptionKey, provider string) (templates.EncryptionKey, bool, error) {
	same := true
	for _, ks := range keys[1:] {
		same = same && sameKeys(ks, keys[0])
	}
	if same && countKeys(keys[0]) == 1 {
		k, err := NewKey(provider, nextName(keys...))
		return k, false, err
	}
	newest, n := templates.EncryptionKey{}, -1
	for _, ks := range keys {
		for _, k := range ks {
			if k.Provider == inventory.EncryptionNone {
				continue
			}
			if i := keyNumber(k.Name); i > n {
				newest, n = k, i
			}
		}
	}
	if n < 0 {
		return newest, false, errors.New("the encryption configurations have no key")
	}
	return newest, true, nil
}

// RewriteSecrets writes every Secret of the cluster again, unchanged:
// the API server stores it with the key it now writes with (it writes
// an unchanged object when it was read with another key). A Secret
// changed or deleted in the meantime was written by someone else, with
// the same key, and is skipped. It returns how many it wrote.
func RewriteSecrets(ctx context.Context, c kubernetes.Interface) (int, error) {
	n := 0
	cont := ""
	for {
		list, err := c.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{Limit: 250, Continue: cont})
		if err != nil {
			return n, fmt.Errorf("list Secrets: %w", err)
		}
		for i := range list.Items {
			s := &list.Items[i]
			_, err := c.CoreV1().Secrets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
			switch {
			case err == nil:
				n++
			case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			default:
				return n, fmt.Errorf("rewrite Secret %s/%s: %w", s.Namespace, s.Name, err)
			}
		}
		if cont = list.Continue; cont == "" {
			return n, nil
		}
	}
}

func describe(k templates.EncryptionKey) string {
	if k.Provider == inventory.EncryptionNone {
		return "no encryption (identity)"
	}
	return fmt.Sprintf("%s key %q", k.Provider, k.Name)
}

func indexOf(ks []templates.EncryptionKey, k templates.EncryptionKey) int {
	for i, x := range ks {
		if x.Provider == k.Provider && x.Name == k.Name {
			return i
		}
	}
	return -1
}

func sameKeys(a, b []templates.EncryptionKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Provider != b[i].Provider || a[i].Name != b[i].Name || string(a[i].Secret) != string(b[i].Secret) {
			return false
		}
	}
	return true
}

func countKeys(ks []templates.EncryptionKey) int {
	n := 0
	for _, k := range ks {
		if k.Provider != inventory.EncryptionNone {
			n++
		}
	}
	return n
}
