package copycerts_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func externalConfig() *inventory.Cluster {
	cfg := inventory.Default()
	cfg.Etcd.Local = nil
	cfg.Etcd.External = &inventory.ExternalEtcd{
		Endpoints: []string{"https://10.0.0.20:2379"},
		CAFile:    "/etc/etcd/ca.pem",
		CertFile:  "/etc/etcd/client.pem",
		KeyFile:   "/etc/etcd/client-key.pem",
	}
	return cfg
}

func kubeadmDefaults() *inventory.Cluster {
	c := inventory.Default()
	inventory.KubeadmDefaults(c)
	return c
}

func TestFiles(t *testing.T) {
	pki := "/etc/kubernetes/pki"
	common := []copycerts.File{
		{Name: "ca.crt", Path: pki + "/ca.crt"},
		{Name: "ca.key", Path: pki + "/ca.key"},
		{Name: "front-proxy-ca.crt", Path: pki + "/front-proxy-ca.crt"},
		{Name: "front-proxy-ca.key", Path: pki + "/front-proxy-ca.key"},
		{Name: "sa.pub", Path: pki + "/sa.pub"},
		{Name: "sa.key", Path: pki + "/sa.key"},
	}
	encryption := copycerts.File{Name: "encryption-config.yaml", Path: "/etc/kubernetes/encryption-config.yaml", Mode: 0o600}
	tests := []struct {
		name string
		cfg  *inventory.Cluster
		want []copycerts.File
	}{
		{
			name: "local etcd",
			cfg:  inventory.Default(),
			want: append(append([]copycerts.File(nil), common...),
				copycerts.File{Name: "etcd-ca.crt", Path: pki + "/etcd/ca.crt"},
				copycerts.File{Name: "etcd-ca.key", Path: pki + "/etcd/ca.key"},
				encryption,
			),
		},
		{
			name: "kubeadm's: no encryption configuration",
			cfg:  kubeadmDefaults(),
			want: append(append([]copycerts.File(nil), common...),
				copycerts.File{Name: "etcd-ca.crt", Path: pki + "/etcd/ca.crt"},
				copycerts.File{Name: "etcd-ca.key", Path: pki + "/etcd/ca.key"},
			),
		},
		{
			name: "external etcd",
			cfg:  externalConfig(),
			want: append(append([]copycerts.File(nil), common...),
				copycerts.File{Name: "external-etcd-ca.crt", Path: "/etc/etcd/ca.pem", Optional: true},
				copycerts.File{Name: "external-etcd.crt", Path: "/etc/etcd/client.pem", Optional: true},
				copycerts.File{Name: "external-etcd.key", Path: "/etc/etcd/client-key.pem", Optional: true},
				encryption,
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.CertificatesDir != pki {
				t.Fatalf("default certificatesDir is %q", tt.cfg.CertificatesDir)
			}
			if got := copycerts.Files(tt.cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Files() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}

	cfg := inventory.Default()
	cfg.CertificatesDir = "/srv/pki"
	if got := copycerts.Files(cfg)[6].Path; got != "/srv/pki/etcd/ca.crt" {
		t.Errorf("etcd CA path with certificatesDir /srv/pki = %q", got)
	}
}

// controlPlane is a host with the files upload-certs sends, as the certs
// phase writes them, and their contents by path.
func controlPlane(t *testing.T, cfg *inventory.Cluster) (*transporttest.Fake, map[string][]byte) {
	t.Helper()
	keys := certstest.Keys(t, inventory.ECDSAP256)
	h := transporttest.New("cp-1")
	want := map[string][]byte{}
	put := func(p string, data []byte, mode fs.FileMode) {
		h.SetFile(p, data, mode)
		want[p] = data
	}
	cas := []string{"ca", "front-proxy-ca"}
	if cfg.Etcd.External == nil {
		cas = append(cas, "etcd-ca")
	}
	for _, name := range cas {
		spec, ok := certs.SpecByName(cfg, name)
		if !ok {
			t.Fatalf("no spec %q", name)
		}
		key, err := keys.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := certs.NewCA(spec, cfg, key, now)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := certs.EncodeKey(key)
		if err != nil {
			t.Fatal(err)
		}
		put(spec.CertPath(cfg), certs.EncodeCert(cert), 0o644)
		put(spec.KeyPath(cfg), keyPEM, 0o600)
	}
	sa, err := keys.Get("sa")
	if err != nil {
		t.Fatal(err)
	}
	saKey, err := certs.EncodeKey(sa)
	if err != nil {
		t.Fatal(err)
	}
	saPub, err := certs.EncodePublicKey(sa.Public())
	if err != nil {
		t.Fatal(err)
	}
	put(cfg.CertificatesDir+"/sa.key", saKey, 0o600)
	put(cfg.CertificatesDir+"/sa.pub", saPub, 0o644)
	if cfg.EncryptionAtRest.Enabled() {
		put(inventory.EncryptionConfigPath, []byte("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"), 0o600)
	}
	return h, want
}

func mustKey(t *testing.T) []byte {
	t.Helper()
	hexKey, err := copycerts.CreateCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := copycerts.ParseCertificateKey(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	cfg := inventory.Default()
	src, want := controlPlane(t, cfg)
	key := mustKey(t)

	data, err := copycerts.SecretData(ctx, src, cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 9 {
		t.Errorf("SecretData has %d entries, want 9 (with the encryption configuration)", len(data))
	}
	for _, f := range copycerts.Files(cfg) {
		sealed := data[f.Name]
		if len(sealed) == 0 {
			t.Errorf("entry %q is empty", f.Name)
		}
		if bytes.Contains(sealed, []byte("BEGIN")) {
			t.Errorf("entry %q holds PEM in the clear", f.Name)
		}
		// Each entry opens on its own, as kubeadm's DecryptBytes opens it.
		if plain, err := copycerts.Open(key, sealed); err != nil || !bytes.Equal(plain, want[f.Path]) {
			t.Errorf("Open(entry %q) = %v, not the contents of %s", f.Name, err, f.Path)
		}
	}

	dst := transporttest.New("cp-2")
	if err := copycerts.WriteFiles(ctx, dst, cfg, key, copycerts.Secret(data)); err != nil {
		t.Fatal(err)
	}
	if got := len(dst.Paths()); got != len(want) {
		t.Errorf("WriteFiles wrote %d files, want %d: %v", got, len(want), dst.Paths())
	}
	for p, content := range want {
		got, mode, ok := dst.File(p)
		if !ok {
			t.Errorf("%s was not written", p)
			continue
		}
		if !bytes.Equal(got, content) {
			t.Errorf("%s differs from the uploaded file", p)
		}
		wantMode := fs.FileMode(0o644)
		if strings.HasSuffix(p, ".key") || p == inventory.EncryptionConfigPath {
			wantMode = 0o600
		}
		if mode != wantMode {
			t.Errorf("%s has mode %v, want %v", p, mode, wantMode)
		}
	}
}

func TestRoundTripExternalEtcd(t *testing.T) {
	ctx := context.Background()
	cfg := externalConfig()
	src, want := controlPlane(t, cfg)
	// The etcd CA and client key pair are the user's; any PEM will do.
	caPEM, _, _ := src.File(cfg.CertificatesDir + "/front-proxy-ca.crt")
	keyPEM, _, _ := src.File(cfg.CertificatesDir + "/front-proxy-ca.key")
	for p, data := range map[string][]byte{cfg.Etcd.External.CAFile: caPEM, cfg.Etcd.External.CertFile: caPEM, cfg.Etcd.External.KeyFile: keyPEM} {
		src.SetFile(p, data, 0o640)
		want[p] = data
	}
	key := mustKey(t)

	data, err := copycerts.SecretData(ctx, src, cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"external-etcd-ca.crt", "external-etcd.crt", "external-etcd.key"} {
		if len(data[name]) == 0 {
			t.Errorf("entry %q is empty", name)
		}
	}
	if _, ok := data["etcd-ca.crt"]; ok {
		t.Error("external etcd: the Secret carries the local etcd CA")
	}

	dst := transporttest.New("cp-2")
	if err := copycerts.WriteFiles(ctx, dst, cfg, key, copycerts.Secret(data)); err != nil {
		t.Fatal(err)
	}
	for p, content := range want {
		if got, _, ok := dst.File(p); !ok || !bytes.Equal(got, content) {
			t.Errorf("%s was not written as uploaded", p)
		}
	}
	if _, mode, _ := dst.File(cfg.Etcd.External.KeyFile); mode != 0o600 {
		t.Errorf("external etcd key has mode %v, want 0600", mode)
	}
	if _, mode, _ := dst.File(cfg.Etcd.External.CAFile); mode != 0o644 {
		t.Errorf("external etcd CA has mode %v, want 0644", mode)
	}
}

// An insecure external etcd has no client files: kubeadm uploads empty
// entries and skips them on download.
func TestExternalEtcdWithoutFiles(t *testing.T) {
	ctx := context.Background()
	cfg := externalConfig()
	cfg.Etcd.External.CAFile = ""   // unset
	cfg.Etcd.External.CertFile = "" // unset
	// KeyFile is set but missing on disk.
	src, want := controlPlane(t, cfg)
	key := mustKey(t)

	data, err := copycerts.SecretData(ctx, src, cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"external-etcd-ca.crt", "external-etcd.crt", "external-etcd.key"} {
		v, ok := data[name]
		if !ok || len(v) != 0 {
			t.Errorf("entry %q = %d bytes (present %v), want present and empty", name, len(v), ok)
		}
	}

	dst := transporttest.New("cp-2")
	if err := copycerts.WriteFiles(ctx, dst, cfg, key, copycerts.Secret(data)); err != nil {
		t.Fatal(err)
	}
	if got := len(dst.Paths()); got != len(want) {
		t.Errorf("wrote %v, want only the %d cluster files", dst.Paths(), len(want))
	}
}

func TestSecretDataMissingRequired(t *testing.T) {
	cfg := inventory.Default()
	src, _ := controlPlane(t, cfg)
	if err := src.Remove(context.Background(), "/etc/kubernetes/pki/etcd/ca.key"); err != nil {
		t.Fatal(err)
	}
	_, err := copycerts.SecretData(context.Background(), src, cfg, mustKey(t))
	if err == nil || !strings.Contains(err.Error(), "/etc/kubernetes/pki/etcd/ca.key") {
		t.Fatalf("SecretData without etcd/ca.key: %v, want an error naming it", err)
	}
}

func TestSecretDataBadKey(t *testing.T) {
	cfg := inventory.Default()
	src, _ := controlPlane(t, cfg)
	if _, err := copycerts.SecretData(context.Background(), src, cfg, make([]byte, 16)); err == nil {
		t.Fatal("SecretData with a 16-byte key succeeded")
	}
}

// uploaded returns a Secret uploaded from a fresh control plane and its key.
func uploaded(t *testing.T, cfg *inventory.Cluster) (*corev1.Secret, []byte) {
	t.Helper()
	src, _ := controlPlane(t, cfg)
	key := mustKey(t)
	data, err := copycerts.SecretData(context.Background(), src, cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	return copycerts.Secret(data), key
}

func TestWriteFilesWrongKey(t *testing.T) {
	cfg := inventory.Default()
	secret, _ := uploaded(t, cfg)
	dst := transporttest.New("cp-2")
	err := copycerts.WriteFiles(context.Background(), dst, cfg, mustKey(t), secret)
	if !errors.Is(err, copycerts.ErrWrongKey) {
		t.Fatalf("WriteFiles with another key: %v, want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), "wrong --certificate-key") {
		t.Errorf("error %q does not say the key is wrong", err)
	}
	if p := dst.Paths(); len(p) != 0 {
		t.Errorf("WriteFiles with a wrong key wrote %v", p)
	}
}

func TestWriteFilesNothingHalfWritten(t *testing.T) {
	cfg := inventory.Default()
	tests := []struct {
		name    string
		corrupt func(s *corev1.Secret, key []byte)
		want    string
	}{
		{
			name: "last entry tampered",
			corrupt: func(s *corev1.Secret, _ []byte) {
				s.Data["etcd-ca.key"][20] ^= 1
			},
			want: "etcd-ca.key",
		},
		{
			name: "last entry truncated",
			corrupt: func(s *corev1.Secret, _ []byte) {
				s.Data["etcd-ca.key"] = s.Data["etcd-ca.key"][:10]
			},
			want: "truncated",
		},
		{
			name: "entry missing",
			corrupt: func(s *corev1.Secret, _ []byte) {
				delete(s.Data, "etcd-ca.key")
			},
			want: `no "etcd-ca.key" entry`,
		},
		{
			name: "required entry empty",
			corrupt: func(s *corev1.Secret, _ []byte) {
				s.Data["sa.key"] = nil
			},
			want: `"sa.key" entry is empty`,
		},
		{
			name: "entry not PEM",
			corrupt: func(s *corev1.Secret, key []byte) {
				sealed, err := copycerts.Seal(key, []byte("not a certificate"))
				if err != nil {
					panic(err)
				}
				s.Data["etcd-ca.crt"] = sealed
			},
			want: "neither a PEM certificate nor a PEM key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret, key := uploaded(t, cfg)
			tt.corrupt(secret, key)
			dst := transporttest.New("cp-2")
			err := copycerts.WriteFiles(context.Background(), dst, cfg, key, secret)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WriteFiles: %v, want an error containing %q", err, tt.want)
			}
			if p := dst.Paths(); len(p) != 0 {
				t.Errorf("WriteFiles failed but wrote %v", p)
			}
		})
	}

	dst := transporttest.New("cp-2")
	if err := copycerts.WriteFiles(context.Background(), dst, cfg, mustKey(t), nil); err == nil {
		t.Error("WriteFiles(nil Secret) succeeded")
	}
}

func TestSecret(t *testing.T) {
	data := map[string][]byte{"ca.crt": {1, 2, 3}}
	s := copycerts.Secret(data)
	if s.Name != "kubeadm-certs" || s.Namespace != "kube-system" {
		t.Errorf("Secret is %s/%s, want kube-system/kubeadm-certs", s.Namespace, s.Name)
	}
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("Secret type %q, want Opaque", s.Type)
	}
	if s.APIVersion != "v1" || s.Kind != "Secret" {
		t.Errorf("TypeMeta = %+v", s.TypeMeta)
	}
	if !reflect.DeepEqual(s.Data, data) {
		t.Errorf("Data = %v", s.Data)
	}
	if len(s.OwnerReferences) != 0 {
		t.Errorf("a new Secret has owners %v", s.OwnerReferences)
	}

	token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name:      "bootstrap-token-abcdef",
		Namespace: "kube-system",
		UID:       types.UID("0b0e1f7c-1111-2222-3333-444455556666"),
	}}
	copycerts.WithOwner(s, token)
	copycerts.WithOwner(s, token) // replaces, does not add
	yes := true
	want := []metav1.OwnerReference{{
		APIVersion:         "v1",
		Kind:               "Secret",
		Name:               "bootstrap-token-abcdef",
		UID:                "0b0e1f7c-1111-2222-3333-444455556666",
		Controller:         &yes,
		BlockOwnerDeletion: &yes,
	}}
	if !reflect.DeepEqual(s.OwnerReferences, want) {
		t.Errorf("OwnerReferences =\n%+v\nwant\n%+v", s.OwnerReferences, want)
	}
	if copycerts.TokenTTL != 2*time.Hour {
		t.Errorf("TokenTTL = %v, want kubeadm's 2h", copycerts.TokenTTL)
	}
}
