package certs

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"

	certutil "k8s.io/client-go/util/cert"

	"github.com/kubeboot/kubeboot/inventory"
)

// Backdate is how far before "now" a new certificate becomes valid, so that
// small clock differences between nodes do not make it "not yet valid"
// (kubeadm's CertificateBackdate).
const Backdate = 5 * time.Minute

// serialNumber is a uniform random value in [1, MaxInt64), as kubeadm draws.
func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(math.MaxInt64-1))
	if err != nil {
		return nil, fmt.Errorf("draw a serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// NewCA returns the self-signed CA certificate of spec for key, as kubeadm's
// NewSelfSignedCACert: valid from now-Backdate until
// now+cfg.CACertificateValidityPeriod, CA:TRUE, key usages DigitalSignature,
// KeyEncipherment and CertSign, and its CN as its only DNS SAN. The
// SubjectKeyId is derived from the key by crypto/x509.
func NewCA(spec Spec, cfg *inventory.Cluster, key crypto.Signer, now time.Time) (*x509.Certificate, error) {
	if !spec.IsCA() {
		return nil, fmt.Errorf("%s is not a CA: it is signed by %s", spec.Name, spec.CAName)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now = now.UTC()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(cfg.CACertificateValidityPeriod.Duration),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if spec.CommonName != "" {
		tmpl.DNSNames = []string{spec.CommonName}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// NewSigned returns spec's certificate for key, signed by ca with caKey, as
// kubeadm's NewSignedCert: valid from now-Backdate until
// now+cfg.CertificateValidityPeriod (but never beyond ca's own expiry), key
// usages DigitalSignature and KeyEncipherment (for ECDSA keys too, as
// kubeadm), spec's extended usages, and spec's SANs with DNS names sorted
// and duplicates removed. crypto/x509 copies the CA's SubjectKeyId into the
// AuthorityKeyId.
//
// kubeadm gives the client certificates of kubeconfig files the CA's
// NotBefore instead of now-Backdate; kubeboot backdates them all alike.
func NewSigned(spec Spec, cfg *inventory.Cluster, key crypto.Signer, ca *x509.Certificate, caKey crypto.Signer, now time.Time) (*x509.Certificate, error) {
	if spec.IsCA() {
		return nil, fmt.Errorf("%s is a CA: create it with NewCA", spec.Name)
	}
	if spec.CommonName == "" {
		return nil, fmt.Errorf("%s: must specify a CommonName (for etcd certificates, the node name)", spec.Name)
	}
	if len(spec.Usages) == 0 {
		return nil, fmt.Errorf("%s: must specify at least one ExtKeyUsage", spec.Name)
	}
	alt, err := altNames(spec, cfg)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now = now.UTC()
	notAfter := now.Add(cfg.CertificateValidityPeriod.Duration)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		DNSNames:              alt.DNSNames,
		IPAddresses:           alt.IPs,
		NotBefore:             now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           spec.Usages,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// altNames evaluates spec.AltNames for cfg and normalises the result as
// kubeadm's RemoveDuplicateAltNames: DNS names sorted and unique, IPs
// unique in their first-seen order.
func altNames(spec Spec, cfg *inventory.Cluster) (certutil.AltNames, error) {
	if spec.AltNames == nil {
		return certutil.AltNames{}, nil
	}
	a, err := spec.AltNames(cfg)
	if err != nil {
		return certutil.AltNames{}, fmt.Errorf("%s SANs: %w", spec.Name, err)
	}
	var out certutil.AltNames
	if a.DNSNames != nil {
		out.DNSNames = slices.Compact(slices.Sorted(slices.Values(a.DNSNames)))
	}
	seen := map[string]bool{}
	for _, ip := range a.IPs {
		if !seen[ip.String()] {
			seen[ip.String()] = true
			out.IPs = append(out.IPs, ip)
		}
	}
	return out, nil
}

// Check tells whether cert, an existing certificate for spec, can be reused
// with cfg at time now; ca is the CA that must have signed it (for a CA spec,
// ca is ignored). A CA must be a CA and be valid now; its CN is not checked,
// since kubeadm accepts a user-provided CA with any subject. A leaf must be
// valid now, verify against ca for each of spec's usages, and have spec's CN,
// O and at least spec's SANs for cfg (extra SANs are fine).
//
// The error lists every problem and says what to do about it.
func Check(spec Spec, cfg *inventory.Cluster, cert, ca *x509.Certificate, now time.Time) error {
	problems, err := certProblems(spec, cfg, cert, ca, now)
	if err != nil {
		return err
	}
	if len(problems) == 0 {
		return nil
	}
	what := fmt.Sprintf("delete %s and %s to have them regenerated", spec.CertPath(cfg), spec.KeyPath(cfg))
	if spec.IsCA() {
		what = fmt.Sprintf("replace %s and %s, or delete them to have a new CA generated "+
			"(everything it signed, including kubeconfig files, must then be regenerated too)",
			spec.CertPath(cfg), spec.KeyPath(cfg))
	}
	return fmt.Errorf("%s; %s", strings.Join(problems, "; "), what)
}

// certProblems lists what is wrong with cert for spec. err is for a spec that
// cannot be evaluated (bad configuration), which deleting files won't fix.
func certProblems(spec Spec, cfg *inventory.Cluster, cert, ca *x509.Certificate, now time.Time) (problems []string, err error) {
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	note := func(problem string) {
		if problem != "" {
			problems = append(problems, problem)
		}
	}
	note(period("", cert, now))
	if spec.IsCA() {
		if !cert.IsCA {
			add("is not a CA certificate (no CA:TRUE basic constraint)")
		}
		return problems, nil
	}
	if ca == nil {
		return nil, errors.New("no CA to check the certificate against")
	}
	note(period("its CA "+caPath(spec, cfg)+" ", ca, now))

	// The signature, verified at a time both certificates are valid (their
	// periods are reported above), for any usage: every usage is checked on
	// its own below, since x509 accepts a chain valid for any one of them.
	at := now
	lo, hi := laterOf(cert.NotBefore, ca.NotBefore), earlierOf(cert.NotAfter, ca.NotAfter)
	if (at.Before(lo) || at.After(hi)) && !lo.After(hi) {
		at = lo
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if _, err := cert.Verify(opts); err != nil {
		var invalid x509.CertificateInvalidError
		switch {
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
			// A period, reported above.
		case errors.As(err, new(x509.UnknownAuthorityError)):
			if cert.Issuer.String() == ca.Subject.String() {
				add("is not signed by %s (but by another CA of the same name, e.g. an earlier one)", caPath(spec, cfg))
			} else {
				add("is not signed by %s (its issuer is %q)", caPath(spec, cfg), cert.Issuer.String())
			}
		default:
			add("does not verify against %s: %v", caPath(spec, cfg), err)
		}
	}
	for _, u := range spec.Usages {
		if !slices.Contains(cert.ExtKeyUsage, u) && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
			add("lacks the %s extended key usage", usageName(u))
		}
	}

	if cert.Subject.CommonName != spec.CommonName {
		add("has CN %q, want %q", cert.Subject.CommonName, spec.CommonName)
	}
	if !sameSet(cert.Subject.Organization, spec.Organization) {
		add("has O %q, want %q", cert.Subject.Organization, spec.Organization)
	}

	alt, err := altNames(spec, cfg)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, name := range alt.DNSNames {
		if cert.VerifyHostname(name) != nil {
			missing = append(missing, "DNS:"+name)
		}
	}
	for _, ip := range alt.IPs {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			missing = append(missing, "IP:"+ip.String())
		}
	}
	if len(missing) > 0 {
		add("lacks SANs %s (it has %s)", strings.Join(missing, ", "), describeSANs(cert))
	}
	return problems, nil
}

// timeLayout is how messages print certificate validity bounds.
const timeLayout = "2006-01-02 15:04:05 MST"

// period describes, prefixed with who, how cert is not valid at now; "" if
// it is.
func period(who string, cert *x509.Certificate, now time.Time) string {
	switch {
	case now.Before(cert.NotBefore):
		return fmt.Sprintf("%sis not valid until %s (is this host's clock right?)", who, cert.NotBefore.UTC().Format(timeLayout))
	case now.After(cert.NotAfter):
		return fmt.Sprintf("%sexpired on %s", who, cert.NotAfter.UTC().Format(timeLayout))
	}
	return ""
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlierOf(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// caPath is the certificate file of spec's CA.
func caPath(spec Spec, cfg *inventory.Cluster) string {
	if ca, ok := SpecByName(cfg, spec.CAName); ok {
		return ca.CertPath(cfg)
	}
	return "the " + spec.CAName + " CA"
}

func describeSANs(cert *x509.Certificate) string {
	var s []string
	for _, n := range cert.DNSNames {
		s = append(s, "DNS:"+n)
	}
	for _, ip := range cert.IPAddresses {
		s = append(s, "IP:"+ip.String())
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "server auth"
	case x509.ExtKeyUsageClientAuth:
		return "client auth"
	}
	return fmt.Sprintf("#%d", u)
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Compact(slices.Sorted(slices.Values(a))), slices.Compact(slices.Sorted(slices.Values(b))))
}

// KeyMatchesCert reports whether key is the private key of cert.
func KeyMatchesCert(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}
