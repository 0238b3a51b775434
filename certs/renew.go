package certs

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"time"
)

// Renew re-signs old with ca for the same key, as kubeadm's `certs renew`:
// the subject, the SANs and the key and extended key usages stay what they
// are in old (not what the configuration would give today), with a new
// serial number, valid from now-Backdate for validity (never beyond ca's
// own expiry). It refuses a CA (renewing a CA re-issues everything it
// signed) and a key that is not old's.
func Renew(old *x509.Certificate, key crypto.Signer, ca *x509.Certificate, caKey crypto.Signer, validity time.Duration, now time.Time) (*x509.Certificate, error) {
	if old.IsCA {
		return nil, fmt.Errorf("%s is a CA: kubeboot renews only the certificates a CA signed", old.Subject.CommonName)
	}
	if !KeyMatchesCert(key, old) {
		return nil, fmt.Errorf("%s: the private key does not match the certificate", old.Subject.CommonName)
	}
	if err := old.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("%s is not signed by %s: %w", old.Subject.CommonName, ca.Subject.CommonName, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now = now.UTC()
	notAfter := now.Add(validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               old.Subject,
		DNSNames:              old.DNSNames,
		IPAddresses:           old.IPAddresses,
		URIs:                  old.URIs,
		EmailAddresses:        old.EmailAddresses,
		NotBefore:             now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              old.KeyUsage,
		ExtKeyUsage:           old.ExtKeyUsage,
		BasicConstraintsValid: true,
	}
	tmpl.Subject.ExtraNames = nil
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
