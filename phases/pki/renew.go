package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/kubelet"
)

// Renewable is one certificate `certs check-expiration` lists and `certs
// renew` renews, by kubeadm's name: a leaf under certificatesDir
// ("apiserver") or a kubeconfig's client certificate ("admin.conf").
type Renewable struct {
	Name   string
	CAName string
	// CertPath and KeyPath are the leaf's files; File is the kubeconfig.
	CertPath, KeyPath string
	File              string
	// Components are the static Pods that read it and must be restarted
	// to use a renewed one.
	Components []string
}

// Renewables lists, sorted by name as kubeadm prints them, every leaf
// certificate of certs.Specs(cfg) and the kubeconfigs admin.conf,
// super-admin.conf, controller-manager.conf and scheduler.conf (kubelet.conf
// is the kubelet's own: it rotates its client certificate).
func Renewables(cfg *inventory.Cluster) []Renewable {
	users := map[string][]string{
		"apiserver": {"kube-apiserver"}, "apiserver-kubelet-client": {"kube-apiserver"},
		"apiserver-etcd-client": {"kube-apiserver"}, "front-proxy-client": {"kube-apiserver"},
		"etcd-server": {"etcd"}, "etcd-peer": {"etcd"},
		"controller-manager.conf": {"kube-controller-manager"}, "scheduler.conf": {"kube-scheduler"},
	}
	var out []Renewable
	for _, s := range certs.Specs(cfg) {
		if s.IsCA() {
			continue
		}
		out = append(out, Renewable{Name: s.Name, CAName: s.CAName, CertPath: s.CertPath(cfg), KeyPath: s.KeyPath(cfg), Components: users[s.Name]})
	}
	for _, k := range certs.KubeconfigSpecs(cfg) {
		if k.Name == "kubelet" {
			continue
		}
		out = append(out, Renewable{Name: k.File, CAName: "ca", File: path.Join(inventory.KubernetesDir, k.File), Components: users[k.File]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Expiry is one row of `certs check-expiration`, with the fields of kubeadm's
// output.kubeadm.k8s.io/v1alpha3 CertificateExpirationInfo.
type Expiry struct {
	Name              string        `json:"name"`
	ExpirationDate    time.Time     `json:"expirationDate"`
	ResidualTime      time.Duration `json:"residualTime"`
	CAName            string        `json:"caName,omitempty"`
	ExternallyManaged bool          `json:"externallyManaged"`
	Missing           bool          `json:"missing,omitempty"`
}

// ExpirationInfo is `certs check-expiration`'s answer for one node.
type ExpirationInfo struct {
	Kind                   string   `json:"kind"`
	APIVersion             string   `json:"apiVersion"`
	Certificates           []Expiry `json:"certificates"`
	CertificateAuthorities []Expiry `json:"certificateAuthorities"`
	// KubeletClientCertificate is the kubelet's own client certificate
	// (kubelet-client-current.pem, which the kubelet rotates), when the
	// node has one: kubeboot's addition to kubeadm's list.
	KubeletClientCertificate *Expiry `json:"kubeletClientCertificate,omitempty"`
}

// Expiration reads every CA and Renewable of cfg on d.Host. A CA whose key
// is missing is externally managed, and so is what it signs; a missing file
// is listed as missing. A node with none of the leaves and kubeconfigs (a
// worker, which has only ca.crt) gets empty lists.
func Expiration(ctx context.Context, d *Data) (ExpirationInfo, error) {
	info := ExpirationInfo{Kind: "CertificateExpirationInfo", APIVersion: "output.kubeadm.k8s.io/v1alpha3",
		Certificates: []Expiry{}, CertificateAuthorities: []Expiry{}}
	now := d.Clock()
	external := map[string]bool{}
	found := false
	for _, s := range certs.Specs(d.Cfg) {
		if !s.IsCA() {
			continue
		}
		e := Expiry{Name: s.Name}
		cert, err := readCert(ctx, d, s.CertPath(d.Cfg))
		if err != nil {
			return info, err
		}
		if e.from(cert, now) {
			if _, err := d.Host.Stat(ctx, s.KeyPath(d.Cfg)); errors.Is(err, fs.ErrNotExist) {
				e.ExternallyManaged = true
			} else if err != nil {
				return info, fmt.Errorf("stat %s: %w", s.KeyPath(d.Cfg), err)
			}
		}
		external[s.Name] = e.ExternallyManaged
		info.CertificateAuthorities = append(info.CertificateAuthorities, e)
	}
	for _, r := range Renewables(d.Cfg) {
		e := Expiry{Name: r.Name, CAName: r.CAName, ExternallyManaged: external[r.CAName]}
		cert, _, err := r.read(ctx, d, false)
		if err != nil {
			return info, err
		}
		found = e.from(cert, now) || found
		info.Certificates = append(info.Certificates, e)
	}
	pem := kubelet.ClientCertPath(d.Cfg.Node)
	if c, err := readCert(ctx, d, pem); err != nil {
		return info, err
	} else if c != nil {
		e := Expiry{Name: pem, CAName: "ca", ExternallyManaged: external["ca"]}
		e.from(c, now)
		info.KubeletClientCertificate = &e
	}
	sort.Slice(info.CertificateAuthorities, func(i, j int) bool {
		return info.CertificateAuthorities[i].Name < info.CertificateAuthorities[j].Name
	})
	if !found {
		// Not a control plane: nothing is missing.
		info.Certificates, info.CertificateAuthorities = []Expiry{}, []Expiry{}
	}
	return info, nil
}

// from fills in e from cert, or marks it missing; it says whether cert is.
func (e *Expiry) from(cert *x509.Certificate, now time.Time) bool {
	if cert == nil {
		e.Missing = true
		return false
	}
	e.ExpirationDate, e.ResidualTime = cert.NotAfter.UTC(), cert.NotAfter.Sub(now)
	return true
}

// readCert reads a certificate file; nil when it does not exist.
func readCert(ctx context.Context, d *Data, file string) (*x509.Certificate, error) {
	b, err := d.Host.ReadFile(ctx, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	c, err := certs.ParseCert(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

// read returns r's certificate (nil when its file is missing) and, with
// withKey, its key.
func (r Renewable) read(ctx context.Context, d *Data, withKey bool) (*x509.Certificate, crypto.Signer, error) {
	if r.File == "" {
		if !withKey {
			c, err := readCert(ctx, d, r.CertPath)
			return c, nil, err
		}
		return readCertAndKey(ctx, d.Host, r.CertPath, r.KeyPath)
	}
	kc, user, err := readKubeconfig(ctx, d, r.File)
	if kc == nil || err != nil {
		return nil, nil, err
	}
	if len(user.ClientCertificateData) == 0 {
		return nil, nil, fmt.Errorf("%s has no embedded client certificate (client-certificate-data)", r.File)
	}
	c, err := certs.ParseCert(user.ClientCertificateData)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: client-certificate-data: %w", r.File, err)
	}
	var key crypto.Signer
	if withKey {
		if key, err = certs.ParseKey(user.ClientKeyData); err != nil {
			return nil, nil, fmt.Errorf("%s: client-key-data: %w", r.File, err)
		}
	}
	return c, key, nil
}

// readKubeconfig loads file and its one user (kubeadm's kubeconfigs have
// one); nil when the file does not exist.
func readKubeconfig(ctx context.Context, d *Data, file string) (*clientcmdapi.Config, *clientcmdapi.AuthInfo, error) {
	b, err := d.Host.ReadFile(ctx, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", file, err)
	}
	kc, err := clientcmd.Load(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(kc.AuthInfos) != 1 {
		return nil, nil, fmt.Errorf("%s has %d users, want the one kubeboot wrote", file, len(kc.AuthInfos))
	}
	for _, u := range kc.AuthInfos {
		return kc, u, nil
	}
	return nil, nil, nil
}

// Renewed is what Renew did to one certificate.
type Renewed struct {
	Renewable
	Old, New *x509.Certificate
}

// Renew renews the named Renewables ("all": every one that exists) with
// their CA, keeping their keys, subjects, SANs and usages
// (certs.Renew), each file written atomically. A name that does not exist
// on the node is an error, except under "all"; so is a CA without its key
// (externally managed: its owner renews).
func Renew(ctx context.Context, d *Data, names []string) ([]Renewed, error) {
	all := Renewables(d.Cfg)
	var todo []Renewable
	explicit := true
	if len(names) == 1 && names[0] == "all" {
		todo, explicit = all, false
	} else {
		for _, n := range names {
			found := false
			for _, r := range all {
				if r.Name == n {
					todo, found = append(todo, r), true
				}
			}
			if !found {
				var valid []string
				for _, r := range all {
					valid = append(valid, r.Name)
				}
				return nil, fmt.Errorf("unknown certificate %q: want all or one of %v", n, valid)
			}
		}
	}
	var done []Renewed
	for _, r := range todo {
		old, key, err := r.read(ctx, d, true)
		if err != nil {
			return done, err
		}
		if old == nil {
			if explicit {
				return done, fmt.Errorf("%s: %s does not exist on %s", r.Name, r.path(), d.Host.Name())
			}
			d.Out.Printf("renew", "%s: %s does not exist on this node, skipping", r.Name, r.path())
			continue
		}
		if key == nil {
			return done, fmt.Errorf("%s: %s is missing", r.Name, r.KeyPath)
		}
		_, ca, caKey, err := loadCA(ctx, d, r.CAName)
		if err != nil {
			return done, fmt.Errorf("renew %s: %w (a CA without its key is externally managed: renew with it)", r.Name, err)
		}
		cert, err := certs.Renew(old, key, ca, caKey, d.Cfg.CertificateValidityPeriod.Duration, d.Clock())
		if err != nil {
			return done, fmt.Errorf("renew %s: %w", r.Name, err)
		}
		if err := r.write(ctx, d, cert); err != nil {
			return done, err
		}
		d.Out.Printf("renew", "%s renewed: valid until %s (was %s)", r.Name, cert.NotAfter.UTC().Format(time.RFC3339), old.NotAfter.UTC().Format(time.RFC3339))
		done = append(done, Renewed{Renewable: r, Old: old, New: cert})
	}
	return done, nil
}

func (r Renewable) path() string {
	if r.File != "" {
		return r.File
	}
	return r.CertPath
}

// write replaces r's certificate with cert: the .crt file, or the
// kubeconfig's client-certificate-data (0600: it holds the key).
func (r Renewable) write(ctx context.Context, d *Data, cert *x509.Certificate) error {
	if r.File == "" {
		if err := d.Host.WriteFile(ctx, r.CertPath, certs.EncodeCert(cert), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", r.CertPath, err)
		}
		return nil
	}
	kc, user, err := readKubeconfig(ctx, d, r.File)
	if err != nil {
		return err
	}
	user.ClientCertificateData = certs.EncodeCert(cert)
	b, err := clientcmd.Write(*kc)
	if err != nil {
		return fmt.Errorf("encode %s: %w", r.File, err)
	}
	if err := d.Host.WriteFile(ctx, r.File, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", r.File, err)
	}
	return nil
}

// WriteExpirationTable prints info as kubeadm's check-expiration does: the
// certificates, then the CAs, residual times as "364d" or "9y" ("<invalid>"
// once expired), missing files as "!MISSING! name"; then the kubelet's own
// client certificate. A worker gets only that.
func WriteExpirationTable(w io.Writer, info ExpirationInfo) error {
	const date = "Jan 02, 2006 15:04 MST"
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	tw := tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
	if len(info.Certificates)+len(info.CertificateAuthorities) == 0 {
		if e := info.KubeletClientCertificate; e != nil {
			fmt.Fprintln(tw, "KUBELET CLIENT CERTIFICATE (ROTATED BY THE KUBELET)\tEXPIRES\tRESIDUAL TIME\t")
			fmt.Fprintf(tw, "%s\t%s\t%s\t\n", e.Name, e.ExpirationDate.Format(date), duration.ShortHumanDuration(e.ResidualTime))
		}
		return tw.Flush()
	}
	fmt.Fprintln(tw, "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED")
	for _, e := range info.Certificates {
		if e.Missing {
			fmt.Fprintf(tw, "!MISSING! %s\t\t\t\t\n", e.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%-8v\n", e.Name, e.ExpirationDate.Format(date), duration.ShortHumanDuration(e.ResidualTime), e.CAName, yesNo(e.ExternallyManaged))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED")
	for _, e := range info.CertificateAuthorities {
		if e.Missing {
			fmt.Fprintf(tw, "!MISSING! %s\t\t\t\n", e.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%-8v\n", e.Name, e.ExpirationDate.Format(date), duration.ShortHumanDuration(e.ResidualTime), yesNo(e.ExternallyManaged))
	}
	if e := info.KubeletClientCertificate; e != nil {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "KUBELET CLIENT CERTIFICATE (ROTATED BY THE KUBELET)\tEXPIRES\tRESIDUAL TIME\t")
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", e.Name, e.ExpirationDate.Format(date), duration.ShortHumanDuration(e.ResidualTime))
	}
	return tw.Flush()
}

// ExpiringWithin lists the certificates and CAs of info that expire within
// d (or have expired).
func ExpiringWithin(info ExpirationInfo, d time.Duration) []Expiry {
	var out []Expiry
	all := append(append([]Expiry(nil), info.Certificates...), info.CertificateAuthorities...)
	if info.KubeletClientCertificate != nil {
		all = append(all, *info.KubeletClientCertificate)
	}
	for _, e := range all {
		if !e.Missing && e.ResidualTime < d {
			out = append(out, e)
		}
	}
	return out
}

// restartOrder is the order the static Pods are restarted in after a
// renewal: etcd first, so the API server finds it, then the API server,
// then its clients.
var restartOrder = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// RestartOrder lists, in the order they are to be restarted, the static
// Pods that read what was renewed.
func RestartOrder(done []Renewed) []string {
	affected := map[string]bool{}
	for _, r := range done {
		for _, c := range r.Components {
			affected[c] = true
		}
	}
	var out []string
	for _, c := range restartOrder {
		if affected[c] {
			out = append(out, c)
		}
	}
	return out
}

// DueForRenewal names the certificates among names ("all": every
// Renewable) that exist on d.Host and expire within the given time.
func DueForRenewal(ctx context.Context, d *Data, names []string, within time.Duration) ([]string, error) {
	info, err := Expiration(ctx, d)
	if err != nil {
		return nil, err
	}
	var due []string
	for _, e := range ExpiringWithin(ExpirationInfo{Certificates: info.Certificates}, within) {
		if slices.Contains(names, "all") || slices.Contains(names, e.Name) {
			due = append(due, e.Name)
		}
	}
	return due, nil
}
