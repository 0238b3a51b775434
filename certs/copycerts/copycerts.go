// Package copycerts is kubeadm's upload-certs / download-certs: the
// control-plane CAs and service-account keys a joining control-plane node
// needs, each sealed with AES-256-GCM under a 32-byte "certificate key" and
// stored in the Secret kube-system/kubeadm-certs.
//
// It mirrors kubeadm v1.34.3 (cmd/kubeadm/app/phases/copycerts and
// app/util/crypto) closely enough that a Secret uploaded by kubeadm opens with
// kubeboot and the other way round: same entry names, same
// nonce||ciphertext||tag layout. It builds the Secret but never talks to the
// API server; the upload-certs phase creates it, the short-lived token Secret
// that owns it, and the RBAC that lets joining nodes read it.
package copycerts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
)

// Names kubeadm uses for the Secret and what surrounds it (kubeadm's
// constants KubeadmCertsSecret, KubeadmCertsClusterRoleName and
// DefaultCertTokenDuration, and the token's description in copycerts.go).
const (
	SecretName = "kubeadm-certs"
	// RoleName is the Role (and RoleBinding) that lets bootstrap tokens
	// (group system:bootstrappers:kubeadm:default-node-token) get the Secret.
	RoleName = "kubeadm:kubeadm-certs"
	// TokenTTL is the lifetime of the token Secret that owns the
	// kubeadm-certs Secret: when the token expires, the garbage collector
	// deletes both.
	TokenTTL = 2 * time.Hour
	// TokenDescription is the description of that token.
	TokenDescription = "Proxy for managing TTL for the kubeadm-certs secret"
)

// Entry names of the files kubeadm transfers with external etcd.
const (
	externalEtcdCA   = "external-etcd-ca.crt"
	externalEtcdCert = "external-etcd.crt"
	externalEtcdKey  = "external-etcd.key"
)

// File is one file the kubeadm-certs Secret carries.
type File struct {
	// Name is the Secret's data key: the file's name relative to
	// certificatesDir with "/" replaced by "-" ("etcd-ca.crt"), or kubeadm's
	// external-etcd-* name.
	Name string
	// Path is where the file lives on a control-plane node. It is empty for
	// an external etcd file the configuration does not set.
	Path string
	// Optional files may be missing: the external etcd client files (an
	// insecure external etcd has none). A missing optional file is uploaded as
	// an empty entry and not written on download, as kubeadm does. kubeadm
	// treats every file so; kubeboot requires the others, since a control
	// plane cannot join without them.
	Optional bool
	// Mode is the file's mode when it is neither a certificate nor a key
	// (the encryption configuration, 0600); 0 decides by content.
	Mode fs.FileMode
}

// EncryptionConfigName is the Secret's entry for the encryption
// configuration, kubeboot's addition to kubeadm's certificates.
const EncryptionConfigName = "encryption-config.yaml"

// Files returns the files the kubeadm-certs Secret carries for cfg, in the
// order of kubeadm's certsToTransfer: the cluster CA, the front-proxy CA and
// the service-account key pair, then the etcd CA (local etcd) or the external
// etcd CA and client certificate and key.
func Files(cfg *inventory.Cluster) []File {
	dir := cfg.CertificatesDir
	inDir := func(name string) File {
		return File{Name: secretName(name), Path: path.Join(dir, name)}
	}
	files := []File{
		inDir("ca.crt"),
		inDir("ca.key"),
		inDir("front-proxy-ca.crt"),
		inDir("front-proxy-ca.key"),
		inDir("sa.pub"),
		inDir("sa.key"),
	}
	if ext := cfg.Etcd.External; ext != nil {
		return withEncryptionConfig(cfg, append(files,
			File{Name: externalEtcdCA, Path: ext.CAFile, Optional: true},
			File{Name: externalEtcdCert, Path: ext.CertFile, Optional: true},
			File{Name: externalEtcdKey, Path: ext.KeyFile, Optional: true},
		))
	}
	files = append(files, inDir("etcd/ca.crt"), inDir("etcd/ca.key"))
	return withEncryptionConfig(cfg, files)
}

// withEncryptionConfig adds the encryption configuration (its key
// encrypts every Secret, so every control plane needs the same one).
func withEncryptionConfig(cfg *inventory.Cluster, files []File) []File {
	if !cfg.EncryptionAtRest.Enabled() {
		return files
	}
	return append(files, File{Name: EncryptionConfigName, Path: inventory.EncryptionConfigPath, Mode: 0o600})
}

// secretName is kubeadm's certOrKeyNameToSecretName: a Secret's data keys
// cannot hold "/".
func secretName(name string) string { return strings.ReplaceAll(name, "/", "-") }

// SecretData reads every file of Files(cfg) from h and seals it with key: the
// data of the kubeadm-certs Secret. A missing optional file becomes an empty
// entry (kubeadm's download skips those); a missing required file is an
// error naming it.
func SecretData(ctx context.Context, h transport.Host, cfg *inventory.Cluster, key []byte) (map[string][]byte, error) {
	// Check the key once, rather than once per file.
	if _, err := newGCM(key); err != nil {
		return nil, err
	}
	data := make(map[string][]byte, len(Files(cfg)))
	for _, f := range Files(cfg) {
		if f.Path == "" {
			// Only optional files can have no path.
			data[f.Name] = []byte{}
			continue
		}
		plain, err := h.ReadFile(ctx, f.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist) && f.Optional:
			data[f.Name] = []byte{}
			continue
		case errors.Is(err, fs.ErrNotExist):
			phase := "certs"
			if f.Name == EncryptionConfigName {
				phase = "control-plane"
			}
			return nil, fmt.Errorf("upload-certs: %s does not exist on %s; a joining control-plane node needs it (run the %s phase first)", f.Path, h.Name(), phase)
		case err != nil:
			return nil, fmt.Errorf("upload-certs: read %s on %s: %w", f.Path, h.Name(), err)
		}
		sealed, err := Seal(key, plain)
		if err != nil {
			return nil, fmt.Errorf("upload-certs: seal %s: %w", f.Path, err)
		}
		data[f.Name] = sealed
	}
	return data, nil
}

// Secret returns the kubeadm-certs Secret holding data (as SecretData
// returns it). The upload-certs phase sets its owner with WithOwner before
// creating it.
func Secret(data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      SecretName,
			Namespace: metav1.NamespaceSystem,
		},
		Type: corev1.SecretTypeOpaque,
		Data: maps.Clone(data),
	}
}

// WithOwner makes owner, the short-lived bootstrap-token Secret, the
// controller owner of secret, replacing any other owner, as kubeadm's
// getSecretOwnerRef does (metav1.NewControllerRef: apiVersion v1, kind
// Secret, owner's name and UID, controller and blockOwnerDeletion true). When
// the token expires and is deleted, the garbage collector deletes secret.
// owner must be the Secret as read back from the API server: the reference
// needs its UID.
func WithOwner(secret, owner *corev1.Secret) {
	ref := metav1.NewControllerRef(owner, schema.GroupVersionKind{Version: "v1", Kind: "Secret"})
	secret.OwnerReferences = []metav1.OwnerReference{*ref}
}

// WriteFiles opens every entry of the kubeadm-certs Secret for cfg's files
// with key and writes each to its path on h: private keys 0600, certificates
// and sa.pub 0644 (kubeadm's writeCertOrKey decides by content the same way).
// Every entry is opened and checked before any file is written, so a wrong
// key or a corrupt entry leaves h untouched. Empty entries (optional files
// the uploading node did not have) are skipped.
func WriteFiles(ctx context.Context, h transport.Host, cfg *inventory.Cluster, key []byte, secret *corev1.Secret) error {
	if secret == nil {
		return errors.New("download-certs: no kubeadm-certs Secret")
	}
	if _, err := newGCM(key); err != nil {
		return err
	}
	type write struct {
		path string
		data []byte
		mode fs.FileMode
	}
	var writes []write
	for _, f := range Files(cfg) {
		sealed, ok := secret.Data[f.Name]
		if !ok {
			return fmt.Errorf("download-certs: the %s Secret has no %q entry (for %s); upload the certificates again from a control-plane node (`kubeboot init phase upload-certs --upload-certs`)", SecretName, f.Name, describePath(f.Path))
		}
		if len(sealed) == 0 {
			if f.Optional {
				continue
			}
			// kubeadm skips any empty entry; a required file the uploader
			// did not have would make this node generate a new CA.
			return fmt.Errorf("download-certs: the %s Secret's %q entry is empty: the uploading node had no %s", SecretName, f.Name, describePath(f.Path))
		}
		plain, err := Open(key, sealed)
		if err != nil {
			return fmt.Errorf("download-certs: %w (entry %q)", err, f.Name)
		}
		if f.Path == "" {
			return fmt.Errorf("download-certs: the %s Secret carries %q, but etcd.external does not say where to write it", SecretName, f.Name)
		}
		mode, err := f.Mode, error(nil)
		if mode == 0 {
			mode, err = fileMode(plain)
		}
		if err != nil {
			return fmt.Errorf("download-certs: the %s Secret's %q entry: %w", SecretName, f.Name, err)
		}
		writes = append(writes, write{path: f.Path, data: plain, mode: mode})
	}
	for _, w := range writes {
		if err := h.WriteFile(ctx, w.path, w.data, w.mode); err != nil {
			return fmt.Errorf("download-certs: write %s on %s: %w", w.path, h.Name(), err)
		}
	}
	return nil
}

// fileMode is the mode kubeadm's writeCertOrKey gives data: 0600 for a
// private key (keyutil.WriteKey), 0644 for certificates and public keys
// (certutil.WriteCert).
func fileMode(data []byte) (fs.FileMode, error) {
	if _, err := keyutil.ParsePrivateKeyPEM(data); err == nil {
		return 0o600, nil
	}
	if _, err := keyutil.ParsePublicKeysPEM(data); err == nil {
		return 0o644, nil
	}
	if _, err := certutil.ParseCertsPEM(data); err == nil {
		return 0o644, nil
	}
	return 0, errors.New("neither a PEM certificate nor a PEM key")
}

func describePath(p string) string {
	if p == "" {
		return "an unset etcd.external file"
	}
	return p
}
