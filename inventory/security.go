package inventory

import (
	"fmt"
	"path"
	"strings"
)

// Secrets encryption at rest (EncryptionAtRest.Provider): the providers of
// kube-apiserver's EncryptionConfiguration that use a local key.
const (
	// EncryptionSecretbox is XSalsa20 and Poly1305: the provider Kubernetes'
	// documentation rates strong and fast among those with a local key
	// (aesgcm needs its key rotated every 200k writes, aescbc is weak
	// against padding oracles). The default.
	EncryptionSecretbox = "secretbox"
	EncryptionAESGCM    = "aesgcm"
	EncryptionAESCBC    = "aescbc"
	// EncryptionNone stores Secrets in plain text, as kubeadm does.
	EncryptionNone = "none"
)

// EncryptionProviders are the values EncryptionAtRest.Provider takes.
var EncryptionProviders = []string{EncryptionSecretbox, EncryptionAESGCM, EncryptionAESCBC, EncryptionNone}

// EncryptionAtRest encrypts Secrets in etcd with a key kept in
// EncryptionConfigPath on every control plane.
type EncryptionAtRest struct {
	// Provider is secretbox (default), aesgcm, aescbc or none.
	Provider string `yaml:"provider,omitempty" json:"provider,omitempty"`
}

// Enabled reports whether Secrets are encrypted.
func (e EncryptionAtRest) Enabled() bool { return e.Provider != EncryptionNone }

// Audit is kube-apiserver's audit log: the policy AuditPolicyPath
// (metadata for every request, never the bodies of Secrets, ConfigMaps
// and TokenReviews), written to AuditLogPath and rotated by size.
type Audit struct {
	// Enabled is true unless set to false.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// MaxAge is how many days a rotated log is kept (--audit-log-maxage).
	MaxAge int `yaml:"maxAge,omitempty" json:"maxAge,omitempty"`
	// MaxBackup is how many rotated logs are kept (--audit-log-maxbackup).
	MaxBackup int `yaml:"maxBackup,omitempty" json:"maxBackup,omitempty"`
	// MaxSize is the size in MiB at which the log rotates (--audit-log-maxsize).
	MaxSize int `yaml:"maxSize,omitempty" json:"maxSize,omitempty"`
}

// On reports whether the audit log is written.
func (a Audit) On() bool { return a.Enabled == nil || *a.Enabled }

// Pod Security Standards levels (PodSecurity's fields), and "none" for no
// cluster-wide default.
const (
	PodSecurityPrivileged = "privileged"
	PodSecurityBaseline   = "baseline"
	PodSecurityRestricted = "restricted"
	PodSecurityNone       = "none"
)

// PodSecurity is Pod Security Admission's cluster-wide default
// (kube-apiserver's --admission-control-config-file, written to
// AdmissionConfigPath): the level each mode applies to a namespace
// without its own pod-security.kubernetes.io labels.
type PodSecurity struct {
	// Enforce rejects pods that break the level: baseline by default;
	// none writes no admission configuration (kubeadm's default).
	Enforce string `yaml:"enforce,omitempty" json:"enforce,omitempty"`
	// Audit adds an audit annotation for pods that break it (restricted).
	Audit string `yaml:"audit,omitempty" json:"audit,omitempty"`
	// Warn returns a warning for pods that break it (restricted).
	Warn string `yaml:"warn,omitempty" json:"warn,omitempty"`
	// ExemptNamespaces are not checked at all (kube-system by default:
	// kube-proxy and the control plane need host access).
	ExemptNamespaces []string `yaml:"exemptNamespaces,omitempty" json:"exemptNamespaces,omitempty"`
}

// Enabled reports whether an admission configuration is written.
func (p PodSecurity) Enabled() bool { return p.Enforce != PodSecurityNone }

// Hardening values.
const (
	HardeningCIS  = "cis"
	HardeningNone = "none"
)

// CIS reports whether the CIS Benchmark settings are applied.
func (c *Cluster) CIS() bool { return c.Hardening != HardeningNone }

// The files kube-apiserver reads for the settings above, on every control
// plane, and the audit log's directory.
var (
	EncryptionConfigPath = path.Join(KubernetesDir, "encryption-config.yaml")
	AuditPolicyPath      = path.Join(KubernetesDir, "audit-policy.yaml")
	AdmissionConfigPath  = path.Join(KubernetesDir, "admission-config.yaml")
	AuditLogDir          = "/var/log/kubernetes/audit"
	AuditLogPath         = path.Join(AuditLogDir, "audit.log")
)

// The audit log's defaults: the CIS Benchmark's minimums (1.2.17-1.2.19).
const (
	DefaultAuditMaxAge    = 30
	DefaultAuditMaxBackup = 10
	DefaultAuditMaxSize   = 100
)

func setSecurityDefaults(c *Cluster) {
	if c.EncryptionAtRest.Provider == "" {
		c.EncryptionAtRest.Provider = EncryptionSecretbox
	}
	a := &c.APIServer.Audit
	for _, f := range []struct {
		v   *int
		def int
	}{{&a.MaxAge, DefaultAuditMaxAge}, {&a.MaxBackup, DefaultAuditMaxBackup}, {&a.MaxSize, DefaultAuditMaxSize}} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	p := &c.PodSecurity
	if p.Enforce == "" {
		p.Enforce = PodSecurityBaseline
	}
	if p.Audit == "" {
		p.Audit = PodSecurityRestricted
	}
	if p.Warn == "" {
		p.Warn = PodSecurityRestricted
	}
	if p.ExemptNamespaces == nil {
		p.ExemptNamespaces = []string{"kube-system"}
	}
	if c.Hardening == "" {
		c.Hardening = HardeningCIS
	}
}

func (v *validator) security(c *Cluster) {
	oneOf := func(field, val string, allowed []string) {
		for _, a := range allowed {
			if val == a {
				return
			}
		}
		v.add(field, "%q is not supported; use one of %s", val, strings.Join(allowed, ", "))
	}
	oneOf("encryptionAtRest.provider", c.EncryptionAtRest.Provider, EncryptionProviders)
	a := c.APIServer.Audit
	for f, n := range map[string]int{"apiServer.audit.maxAge": a.MaxAge, "apiServer.audit.maxBackup": a.MaxBackup, "apiServer.audit.maxSize": a.MaxSize} {
		if n < 0 {
			v.add(f, "%d must be positive", n)
		}
	}
	levels := []string{PodSecurityPrivileged, PodSecurityBaseline, PodSecurityRestricted}
	oneOf("podSecurity.enforce", c.PodSecurity.Enforce, append(levels, PodSecurityNone))
	oneOf("podSecurity.audit", c.PodSecurity.Audit, levels)
	oneOf("podSecurity.warn", c.PodSecurity.Warn, levels)
	seen := map[string]bool{}
	for i, ns := range c.PodSecurity.ExemptNamespaces {
		f := fmt.Sprintf("podSecurity.exemptNamespaces[%d]", i)
		if len(ns) > 63 || !dnsLabelRE.MatchString(ns) {
			v.add(f, "%q is not a namespace name: at most 63 lower-case letters, digits or '-', starting and ending with a letter or digit", ns)
		} else if seen[ns] {
			v.add(f, "%q is listed twice", ns)
		}
		seen[ns] = true
	}
	oneOf("hardening", c.Hardening, []string{HardeningCIS, HardeningNone})
}

// KubeadmDefaults turns off what kubeboot adds to kubeadm's defaults
// (encryption at rest, the audit log, Pod Security's default and the CIS
// settings): what is left renders kubeadm's own files.
func KubeadmDefaults(c *Cluster) {
	off := false
	c.EncryptionAtRest.Provider = EncryptionNone
	c.APIServer.Audit.Enabled = &off
	c.PodSecurity.Enforce = PodSecurityNone
	c.Hardening = HardeningNone
}
