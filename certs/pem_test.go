package certs_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory"
)

func TestPEMRoundTrip(t *testing.T) {
	for alg, keyType := range map[inventory.EncryptionAlgorithm]string{
		inventory.RSA2048:   "RSA PRIVATE KEY",
		inventory.ECDSAP256: "EC PRIVATE KEY",
	} {
		t.Run(string(alg), func(t *testing.T) {
			cfg := testConfig()
			p := issue(t, cfg, certstest.Keys(t, alg), now)
			cert, key := p.certs["apiserver"], p.keys["apiserver"]

			cb := certs.EncodeCert(cert)
			if b, _ := pem.Decode(cb); b == nil || b.Type != "CERTIFICATE" {
				t.Fatalf("EncodeCert: %q", cb)
			}
			got, err := certs.ParseCert(cb)
			if err != nil || !got.Equal(cert) {
				t.Fatalf("ParseCert = %v, %v", got, err)
			}
			// A chain: the first certificate counts.
			got, err = certs.ParseCert(append(cb, certs.EncodeCert(p.certs["ca"])...))
			if err != nil || !got.Equal(cert) {
				t.Errorf("ParseCert(chain) = %v, %v", got, err)
			}

			kb, err := certs.EncodeKey(key)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := pem.Decode(kb); b == nil || b.Type != keyType {
				t.Fatalf("EncodeKey: %q", kb)
			}
			k, err := certs.ParseKey(kb)
			if err != nil || !certs.KeyMatchesCert(k, cert) {
				t.Fatalf("ParseKey = %v, %v", k, err)
			}

			pub, err := certs.EncodePublicKey(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := pem.Decode(pub); b == nil || b.Type != "PUBLIC KEY" || string(b.Bytes) != string(cert.RawSubjectPublicKeyInfo) {
				t.Errorf("EncodePublicKey: %q", pub)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := certs.ParseCert([]byte("junk")); err == nil {
		t.Error("ParseCert accepted junk")
	}
	if _, err := certs.ParseKey([]byte("junk")); err == nil {
		t.Error("ParseKey accepted junk")
	}
	if _, err := certs.ParseKey(certs.EncodeCert(issue(t, testConfig(), certstest.Keys(t, inventory.ECDSAP256), now).certs["ca"])); err == nil {
		t.Error("ParseKey accepted a certificate")
	}
}

func TestCAPublicKeyHash(t *testing.T) {
	ca := issue(t, testConfig(), certstest.Keys(t, inventory.ECDSAP256), now).certs["ca"]
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	got := certs.CAPublicKeyHash(ca)
	if want := "sha256:" + hex.EncodeToString(sum[:]); got != want {
		t.Errorf("CAPublicKeyHash = %s, want %s", got, want)
	}
	if !strings.HasPrefix(got, "sha256:") || len(got) != len("sha256:")+64 {
		t.Errorf("CAPublicKeyHash = %s", got)
	}
}
