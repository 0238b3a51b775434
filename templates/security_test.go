package templates

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/test/golden"
)

func key(provider, name string, b byte) EncryptionKey {
	return EncryptionKey{Provider: provider, Name: name, Secret: bytes.Repeat([]byte{b}, 32)}
}

func TestEncryptionConfig(t *testing.T) {
	cases := []struct {
		name string
		keys []EncryptionKey
	}{
		{"secretbox", []EncryptionKey{key("secretbox", "key1", 1)}},
		// a rotation's middle: key2 writes, key1 still reads
		{"rotation", []EncryptionKey{key("secretbox", "key2", 2), key("secretbox", "key1", 1)}},
		// a change of provider: aesgcm writes, secretbox reads
		{"provider-change", []EncryptionKey{key("aesgcm", "key2", 2), key("secretbox", "key1", 1)}},
		// turning encryption off: identity writes, the old key still reads
		{"off", []EncryptionKey{{Provider: "none", Name: "identity"}, key("aescbc", "key1", 1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncryptionConfig(tc.keys)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "encryption/"+tc.name+".yaml", b)
			back, err := ParseEncryptionConfig(b)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.keys
			if want[0].Provider != "none" {
				want = append(append([]EncryptionKey(nil), want...), EncryptionKey{Provider: "none", Name: "identity"})
			}
			if !reflect.DeepEqual(back, want) {
				t.Errorf("read back %+v, want %+v", back, want)
			}
		})
	}
}

func TestEncryptionConfigErrors(t *testing.T) {
	if _, err := EncryptionConfig(nil); err == nil {
		t.Error("no keys: no error")
	}
	if _, err := EncryptionConfig([]EncryptionKey{{Provider: "secretbox", Name: "k", Secret: []byte("short")}}); err == nil || !strings.Contains(err.Error(), "must be 32") {
		t.Errorf("short key: %v", err)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"kms", "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - kms: {apiVersion: v2, name: vault, endpoint: unix:///k.sock}\n", "KMS"},
		{"no secrets", "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [configmaps]\n  providers:\n  - identity: {}\n", "does not cover secrets"},
		{"wrong kind", "apiVersion: v1\nkind: ConfigMap\n", "not an apiserver.config.k8s.io/v1 EncryptionConfiguration"},
		{"unknown field", "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresourcez: []\n", "resourcez"},
	} {
		if _, err := ParseEncryptionConfig([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestSecurityFiles(t *testing.T) {
	files, err := SecurityFiles(secureConfig())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "secure/audit-policy.yaml", files[inventory.AuditPolicyPath])
	golden.Check(t, "secure/admission-config.yaml", files[inventory.AdmissionConfigPath])
	if len(files) != 2 {
		t.Errorf("%d files, want the audit policy and the admission configuration", len(files))
	}
	off, err := SecurityFiles(baseConfig())
	if err != nil || len(off) != 0 {
		t.Errorf("kubeadm's defaults: %d files (%v), want none", len(off), err)
	}
}
