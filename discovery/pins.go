package discovery

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/kubeboot/kubeboot/certs"
)

// PinFormat describes the one pin format accepted, for error messages.
const PinFormat = `"sha256:<64 hex digits>"`

// pinHint tells how to compute the right pin on a control-plane node.
const pinHint = "openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum"

// ParsePins validates CA pins (--discovery-token-ca-cert-hash values) as
// kubeadm's pubkeypin.Set.Allow does and returns them canonical:
// "sha256:" and the hash in lower-case hex. The error names the first bad pin.
func ParsePins(pins []string) ([]string, error) {
	out := make([]string, 0, len(pins))
	for _, pin := range pins {
		p, err := parsePin(pin)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePin(pin string) (string, error) {
	format, value, ok := strings.Cut(pin, ":")
	if !ok || strings.Contains(value, ":") {
		return "", fmt.Errorf("invalid CA pin %q: expected %s, the SHA-256 of the CA certificate's public key", pin, PinFormat)
	}
	if !strings.EqualFold(format, "sha256") {
		return "", fmt.Errorf("invalid CA pin %q: unknown hash format %q, expected %s", pin, format, PinFormat)
	}
	if n := hex.DecodedLen(len(value)); n != sha256.Size {
		return "", fmt.Errorf("invalid CA pin %q: expected a %d-byte SHA-256 hash (%s), found %d bytes", pin, sha256.Size, PinFormat, n)
	}
	if _, err := hex.DecodeString(value); err != nil {
		return "", fmt.Errorf("invalid CA pin %q: the hash is not hex (%v), expected %s", pin, err, PinFormat)
	}
	return "sha256:" + strings.ToLower(value), nil
}

// CheckPins returns nil when ca's public key matches one of pins, and an
// error wrapping ErrPinMismatch that gives ca's actual hash otherwise (or the
// ParsePins error for a malformed pin).
func CheckPins(ca *x509.Certificate, pins []string) error {
	return checkPins([]*x509.Certificate{ca}, pins)
}

// checkPins is kubeadm's pubkeypin.Set.CheckAny: one of cas must be pinned.
func checkPins(cas []*x509.Certificate, pins []string) error {
	canonical, err := ParsePins(pins)
	if err != nil {
		return err
	}
	if len(canonical) == 0 {
		return newError(ErrNoPins, nil, "no CA pin to check the cluster CA against: give --discovery-token-ca-cert-hash or --discovery-token-unsafe-skip-ca-verification")
	}
	allowed := make(map[string]bool, len(canonical))
	for _, p := range canonical {
		allowed[p] = true
	}
	hashes := make([]string, 0, len(cas))
	for _, ca := range cas {
		h := certs.CAPublicKeyHash(ca)
		if allowed[h] {
			return nil
		}
		hashes = append(hashes, h)
	}
	return newError(ErrPinMismatch, nil,
		"the cluster CA does not match the --discovery-token-ca-cert-hash pin(s): its hash is %s; check the pin on a control-plane node with: %s",
		strings.Join(hashes, ", "), pinHint)
}
