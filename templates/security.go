package templates

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	psaapiv1 "k8s.io/pod-security-admission/admission/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/inventory"
)

// What kubeboot adds to kubeadm's kube-apiserver (each can be turned off in
// the cluster file; inventory.KubeadmDefaults turns them all off): Secrets
// encrypted at rest, the audit log, and Pod Security Admission's
// cluster-wide default.

// ConfigHashAnnotation is on kube-apiserver when kubeboot wrote files it
// reads (encryption, audit, admission configurations): their sha256, so
// that a change of one changes the static Pod (controlplane.APIServerConfigHash).
const ConfigHashAnnotation = "kubeboot.io/config-hash"

// EncryptionKey is one key of an EncryptionConfiguration: Provider is one
// of inventory's encryption providers (none: the identity provider, which
// has no key).
type EncryptionKey struct {
	Provider string
	Name     string
	Secret   []byte
}

// encryptedResources are what the EncryptionConfiguration covers.
var encryptedResources = []string{"secrets"}

// EncryptionConfig renders kube-apiserver's EncryptionConfiguration for
// Secrets: they are written with keys[0] and read with any of keys; the
// identity provider comes last (unless a key is already "none") so that
// Secrets stored before encryption was turned on stay readable until they
// are rewritten. Consecutive keys of one provider share its entry, in
// order.
func EncryptionConfig(keys []EncryptionKey) ([]byte, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("an encryption configuration needs a key")
	}
	var provs []apiserverv1.ProviderConfiguration
	identity := false
	for i, k := range keys {
		if k.Provider == inventory.EncryptionNone {
			if !identity {
				provs = append(provs, apiserverv1.ProviderConfiguration{Identity: &apiserverv1.IdentityConfiguration{}})
			}
			identity = true
			continue
		}
		if n := len(k.Secret); n != 32 && !(k.Provider == inventory.EncryptionAESGCM && n == 16) {
			return nil, fmt.Errorf("key %q (%s) is %d bytes; it must be 32", k.Name, k.Provider, n)
		}
		key := apiserverv1.Key{Name: k.Name, Secret: base64.StdEncoding.EncodeToString(k.Secret)}
		if i > 0 && keys[i-1].Provider == k.Provider {
			if ks := providerKeys(&provs[len(provs)-1]); ks != nil {
				*ks = append(*ks, key)
				continue
			}
		}
		var p apiserverv1.ProviderConfiguration
		switch k.Provider {
		case inventory.EncryptionSecretbox:
			p.Secretbox = &apiserverv1.SecretboxConfiguration{Keys: []apiserverv1.Key{key}}
		case inventory.EncryptionAESGCM:
			p.AESGCM = &apiserverv1.AESConfiguration{Keys: []apiserverv1.Key{key}}
		case inventory.EncryptionAESCBC:
			p.AESCBC = &apiserverv1.AESConfiguration{Keys: []apiserverv1.Key{key}}
		default:
			return nil, fmt.Errorf("key %q: unknown provider %q", k.Name, k.Provider)
		}
		provs = append(provs, p)
	}
	if !identity {
		provs = append(provs, apiserverv1.ProviderConfiguration{Identity: &apiserverv1.IdentityConfiguration{}})
	}
	c := apiserverv1.EncryptionConfiguration{
		TypeMeta:  metav1.TypeMeta{APIVersion: apiserverv1.SchemeGroupVersion.String(), Kind: "EncryptionConfiguration"},
		Resources: []apiserverv1.ResourceConfiguration{{Resources: encryptedResources, Providers: provs}},
	}
	return yaml.Marshal(c)
}

// providerKeys is the key list of a provider with keys, or nil.
func providerKeys(p *apiserverv1.ProviderConfiguration) *[]apiserverv1.Key {
	switch {
	case p.Secretbox != nil:
		return &p.Secretbox.Keys
	case p.AESGCM != nil:
		return &p.AESGCM.Keys
	case p.AESCBC != nil:
		return &p.AESCBC.Keys
	}
	return nil
}

// ParseEncryptionConfig reads the Secrets' keys back from an
// EncryptionConfiguration, in order (the first one writes). A
// configuration kubeboot cannot read back (no entry for secrets, a KMS
// provider) is an error naming what it found.
func ParseEncryptionConfig(b []byte) ([]EncryptionKey, error) {
	var c apiserverv1.EncryptionConfiguration
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, err
	}
	if c.Kind != "EncryptionConfiguration" || c.APIVersion != apiserverv1.SchemeGroupVersion.String() {
		return nil, fmt.Errorf("it is a %s %s, not an %s EncryptionConfiguration", c.APIVersion, c.Kind, apiserverv1.SchemeGroupVersion)
	}
	for _, r := range c.Resources {
		if !contains(r.Resources, "secrets") {
			continue
		}
		var keys []EncryptionKey
		for _, p := range r.Providers {
			var name string
			switch {
			case p.Identity != nil:
				keys = append(keys, EncryptionKey{Provider: inventory.EncryptionNone, Name: "identity"})
				continue
			case p.Secretbox != nil:
				name = inventory.EncryptionSecretbox
			case p.AESGCM != nil:
				name = inventory.EncryptionAESGCM
			case p.AESCBC != nil:
				name = inventory.EncryptionAESCBC
			default:
				return nil, fmt.Errorf("its secrets use a provider kubeboot does not manage (KMS?); manage the file yourself, with encryptionAtRest.provider: none")
			}
			for _, k := range *providerKeys(&p) {
				sec, err := base64.StdEncoding.DecodeString(k.Secret)
				if err != nil {
					return nil, fmt.Errorf("key %q of %s is not base64: %w", k.Name, name, err)
				}
				keys = append(keys, EncryptionKey{Provider: name, Name: k.Name, Secret: sec})
			}
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("its secrets have no provider")
		}
		return keys, nil
	}
	return nil, fmt.Errorf("it does not cover secrets")
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// AuditPolicy is the audit policy kubeboot writes: metadata (who, what,
// when, the response code) for every request; never a request or response
// body. Not logged at all: the health endpoints (the kubelet probes the API
// server every second) and the renewals of the node and leader-election
// leases (every few seconds, per node): the noise of an idle cluster, as
// in Kubernetes' own cluster/gce policy. The Secrets, ConfigMaps and
// TokenReviews rule pins them to Metadata so that an operator who raises
// the catch-all rule to Request still never logs their contents; the
// RequestReceived stage is left out (every request is logged again when
// its response starts).
func AuditPolicy() ([]byte, error) {
	leases := []auditv1.GroupResources{{Group: "coordination.k8s.io", Resources: []string{"leases"}}}
	renew := []string{"get", "update"}
	p := auditv1.Policy{
		TypeMeta:   metav1.TypeMeta{APIVersion: auditv1.SchemeGroupVersion.String(), Kind: "Policy"},
		OmitStages: []auditv1.Stage{auditv1.StageRequestReceived},
		Rules: []auditv1.PolicyRule{
			{Level: auditv1.LevelNone, NonResourceURLs: []string{"/healthz*", "/livez*", "/readyz*", "/version"}},
			{Level: auditv1.LevelNone, UserGroups: []string{"system:nodes"}, Verbs: renew, Resources: leases},
			{Level: auditv1.LevelNone, Users: []string{"system:kube-controller-manager", "system:kube-scheduler"}, Verbs: renew, Resources: leases},
			{
				Level: auditv1.LevelMetadata,
				Resources: []auditv1.GroupResources{
					{Group: "", Resources: []string{"secrets", "configmaps"}},
					{Group: "authentication.k8s.io", Resources: []string{"tokenreviews"}},
				},
			},
			{Level: auditv1.LevelMetadata},
		},
	}
	return yaml.Marshal(p)
}

// AdmissionConfig is kube-apiserver's AdmissionConfiguration with Pod
// Security Admission's cluster-wide defaults (the latest version of each
// level) and exemptions.
func AdmissionConfig(ps inventory.PodSecurity) ([]byte, error) {
	psc := psaapiv1.PodSecurityConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: psaapiv1.SchemeGroupVersion.String(), Kind: "PodSecurityConfiguration"},
		Defaults: psaapiv1.PodSecurityDefaults{
			Enforce: ps.Enforce, EnforceVersion: "latest",
			Audit: ps.Audit, AuditVersion: "latest",
			Warn: ps.Warn, WarnVersion: "latest",
		},
		Exemptions: psaapiv1.PodSecurityExemptions{Namespaces: ps.ExemptNamespaces},
	}
	raw, err := yaml.Marshal(psc)
	if err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, err
	}
	c := apiserverv1.AdmissionConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: apiserverv1.SchemeGroupVersion.String(), Kind: "AdmissionConfiguration"},
		Plugins:  []apiserverv1.AdmissionPluginConfiguration{{Name: "PodSecurity", Configuration: &runtime.Unknown{Raw: j, ContentType: runtime.ContentTypeJSON}}},
	}
	return yaml.Marshal(c)
}

// SecurityFiles are the files kube-apiserver reads for cfg's security
// settings, by path, as kubeboot writes them on every control plane
// (the encryption configuration is not here: it holds a key, made once by
// init and shared, not rendered).
func SecurityFiles(cfg *inventory.Cluster) (map[string][]byte, error) {
	files := map[string][]byte{}
	if cfg.APIServer.Audit.On() {
		b, err := AuditPolicy()
		if err != nil {
			return nil, err
		}
		files[inventory.AuditPolicyPath] = b
	}
	if cfg.PodSecurity.Enabled() {
		b, err := AdmissionConfig(cfg.PodSecurity)
		if err != nil {
			return nil, err
		}
		files[inventory.AdmissionConfigPath] = b
	}
	return files, nil
}

// apiServerSecurity adds the flags and mounts of cfg's security settings.
func apiServerSecurity(cfg *inventory.Cluster, args []arg, m *mounts) []arg {
	if cfg.EncryptionAtRest.Enabled() {
		args = setArg(args, "encryption-provider-config", inventory.EncryptionConfigPath)
		m.add("encryption-config", inventory.EncryptionConfigPath, true, corev1.HostPathFile)
	}
	if a := cfg.APIServer.Audit; a.On() {
		args = setArg(args, "audit-policy-file", inventory.AuditPolicyPath)
		args = setArg(args, "audit-log-path", inventory.AuditLogPath)
		args = setArg(args, "audit-log-maxage", strconv.Itoa(a.MaxAge))
		args = setArg(args, "audit-log-maxbackup", strconv.Itoa(a.MaxBackup))
		args = setArg(args, "audit-log-maxsize", strconv.Itoa(a.MaxSize))
		m.add("audit-policy", inventory.AuditPolicyPath, true, corev1.HostPathFile)
		m.add("audit-log", inventory.AuditLogDir, false, corev1.HostPathDirectoryOrCreate)
	}
	if cfg.PodSecurity.Enabled() {
		args = setArg(args, "admission-control-config-file", inventory.AdmissionConfigPath)
		m.add("admission-config", inventory.AdmissionConfigPath, true, corev1.HostPathFile)
	}
	return args
}

// CISCipherSuites are the TLS 1.2 cipher suites kube-apiserver and the
// kubelet offer with the CIS settings (1.2.29, 4.2.12): the ECDHE AEAD
// suites, which both of the benchmark's lists accept (TLS 1.3's are not
// configurable and always on).
var CISCipherSuites = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
}

// cisArgs are the CIS Benchmark's flags for component, when cfg has them
// (inventory's hardening: cis): no profiling endpoints (1.2.15, 1.3.2,
// 1.4.1); for the API server, service account tokens that expire when
// they say (1.2.30) and the cipher suites above (1.2.29).
func cisArgs(cfg *inventory.Cluster, component string, args []arg) []arg {
	if !cfg.CIS() {
		return args
	}
	args = setArg(args, "profiling", "false")
	if component == KubeAPIServer {
		args = setArg(args, "service-account-extend-token-expiration", "false")
		args = setArg(args, "tls-cipher-suites", strings.Join(CISCipherSuites, ","))
	}
	return args
}
