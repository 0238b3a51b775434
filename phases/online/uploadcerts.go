package online

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
)

// UploadCerts stores the control plane's shared certificates and keys on h
// in kube-system/kubeadm-certs, sealed with key and owned by a short-lived
// token, unless that Secret already holds them; and the RBAC that lets
// joining control planes read it.
func UploadCerts(ctx context.Context, a API, h transport.Host, cfg *inventory.Cluster, key []byte, now time.Time) error {
	a.Out.Printf("upload-certs", "Storing the certificates in Secret %q in the %q Namespace", copycerts.SecretName, metav1.NamespaceSystem)
	if err := uploadCerts(ctx, a, h, cfg, key, now); err != nil {
		return err
	}
	return a.Apply(ctx, "upload-certs", kubeadmCertsRBAC()...)
}

// uploadCerts creates or replaces kubeadm-certs. The ciphertext differs on
// every sealing (random nonces), so a Secret is left alone when it opens with
// key to exactly the local files and its owner token is still alive.
func uploadCerts(ctx context.Context, a API, h transport.Host, cfg *inventory.Cluster, key []byte, now time.Time) error {
	const tag = "upload-certs"
	secrets := a.Kube.CoreV1().Secrets(metav1.NamespaceSystem)
	what := "Secret " + metav1.NamespaceSystem + "/" + copycerts.SecretName
	live, err := secrets.Get(ctx, copycerts.SecretName, metav1.GetOptions{})
	found := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get %s: %w", what, err)
	}
	if found {
		same, why, err := secretHoldsLocalCerts(ctx, h, cfg, key, live)
		if err != nil {
			return err
		}
		alive, err := ownerAlive(ctx, now, secrets, live)
		if err != nil {
			return err
		}
		if same && alive {
			a.Report(tag, apiclient.Unchanged, what+" (it holds these certificates, sealed with this certificate key)")
			return nil
		}
		if !alive {
			why = "its owner token has expired or is gone, so it is about to be deleted"
		}
		a.Out.Printf(tag, "Replacing %s: %s", what, why)
	}
	data, err := copycerts.SecretData(ctx, h, cfg, key)
	if err != nil {
		return err
	}
	owner, err := createCertsToken(ctx, now, secrets)
	if err != nil {
		return err
	}
	s := copycerts.Secret(data)
	copycerts.WithOwner(s, owner)
	if !found {
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create %s: %w", what, err)
		}
		a.Report(tag, apiclient.Created, what+" (deleted with its owner, Secret "+owner.Name+", in "+copycerts.TokenTTL.String()+")")
		return nil
	}
	s.ResourceVersion = live.ResourceVersion
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update %s: %w", what, err)
	}
	a.Report(tag, apiclient.Updated, what)
	// The previous owner tokens own nothing any more.
	for _, ref := range live.OwnerReferences {
		if ref.Kind == "Secret" && ref.Name != owner.Name && strings.HasPrefix(ref.Name, bootstrapapi.BootstrapTokenSecretPrefix) {
			if err := secrets.Delete(ctx, ref.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete the previous owner token Secret %s: %w", ref.Name, err)
			}
		}
	}
	return nil
}

// secretHoldsLocalCerts opens every entry of the live Secret with key and
// compares it with the file on the node.
func secretHoldsLocalCerts(ctx context.Context, h transport.Host, cfg *inventory.Cluster, key []byte, live *corev1.Secret) (bool, string, error) {
	for _, f := range copycerts.Files(cfg) {
		var local []byte
		if f.Path != "" {
			b, err := h.ReadFile(ctx, f.Path)
			switch {
			case errors.Is(err, fs.ErrNotExist) && f.Optional:
			case err != nil:
				return false, "", fmt.Errorf("read %s on %s: %w", f.Path, h.Name(), err)
			default:
				local = b
			}
		}
		sealed, ok := live.Data[f.Name]
		if !ok {
			return false, fmt.Sprintf("it has no %q entry", f.Name), nil
		}
		if len(sealed) == 0 {
			if len(local) != 0 {
				return false, fmt.Sprintf("its %q entry is empty", f.Name), nil
			}
			continue
		}
		plain, err := copycerts.Open(key, sealed)
		if err != nil {
			return false, "it does not open with this certificate key", nil
		}
		if !bytes.Equal(plain, local) {
			return false, fmt.Sprintf("its %q differs from %s", f.Name, f.Path), nil
		}
	}
	return true, "", nil
}

// ownerAlive reports whether the token Secret owning kubeadm-certs exists and
// has not expired.
func ownerAlive(ctx context.Context, now time.Time, secrets corev1client.SecretInterface, s *corev1.Secret) (bool, error) {
	if len(s.OwnerReferences) == 0 {
		return false, nil
	}
	ref := s.OwnerReferences[0]
	owner, err := secrets.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get the owner token Secret %s: %w", ref.Name, err)
	}
	if ref.UID != "" && owner.UID != ref.UID {
		return false, nil
	}
	info, err := bootstraptoken.FromSecret(owner)
	if err != nil {
		return false, nil
	}
	// Less than a minute left: it would be gone before anyone joins.
	return info.Expires == nil || info.Expires.Sub(now) > time.Minute, nil
}

// createCertsToken creates kubeadm's short-lived token that owns
// kubeadm-certs: no usages, no groups, copycerts.TokenTTL.
func createCertsToken(ctx context.Context, now time.Time, secrets corev1client.SecretInterface) (*corev1.Secret, error) {
	tok, err := bootstraptoken.Generate()
	if err != nil {
		return nil, err
	}
	s, err := bootstraptoken.Secret(tok, bootstraptoken.Options{Description: copycerts.TokenDescription, TTL: copycerts.TokenTTL}, now)
	if err != nil {
		return nil, err
	}
	// kubeadm's token has neither usages nor groups: it only carries the
	// expiry. (bootstraptoken.Secret defaults empty usages.)
	for k := range s.Data {
		if strings.HasPrefix(k, bootstrapapi.BootstrapTokenUsagePrefix) || k == bootstrapapi.BootstrapTokenExtraGroupsKey {
			delete(s.Data, k)
		}
	}
	created, err := secrets.Create(ctx, s, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create the owner token Secret of %s: %w", copycerts.SecretName, err)
	}
	return created, nil
}

// kubeadmCertsRBAC lets the bootstrap token group get kubeadm-certs.
func kubeadmCertsRBAC() []apiclient.Object {
	return []apiclient.Object{
		&rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Name: copycerts.RoleName, Namespace: metav1.NamespaceSystem},
			Rules: []rbacv1.PolicyRule{{
				Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{copycerts.SecretName},
			}},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: copycerts.RoleName, Namespace: metav1.NamespaceSystem},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: copycerts.RoleName},
			Subjects:   []rbacv1.Subject{group(BootstrapTokenGroup)},
		},
	}
}
