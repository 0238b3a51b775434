package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// EncodeCert returns cert as a PEM "CERTIFICATE" block.
func EncodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: cert.Raw})
}

// EncodeKey returns key in PEM the way kubeadm writes keys
// (keyutil.MarshalPrivateKeyToPEM): RSA as PKCS#1 "RSA PRIVATE KEY", ECDSA
// as SEC 1 "EC PRIVATE KEY".
func EncodeKey(key crypto.Signer) ([]byte, error) {
	b, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, fmt.Errorf("encode the private key: %w", err)
	}
	return b, nil
}

// EncodePublicKey returns pub as a PEM "PUBLIC KEY" (PKIX) block, the form of
// kubeadm's sa.pub.
func EncodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode the public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParseCert returns the first certificate of PEM data (a certificate file
// may hold a chain; the certificate itself comes first).
func ParseCert(data []byte) (*x509.Certificate, error) {
	certs, err := certutil.ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("not a PEM certificate: %w", err)
	}
	return certs[0], nil
}

// ParseKey returns the private key in PEM data: PKCS#1 or PKCS#8 RSA, or
// SEC 1 or PKCS#8 ECDSA, the types kubeadm accepts.
func ParseKey(data []byte) (crypto.Signer, error) {
	k, err := keyutil.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("not a PEM private key: %w", err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	}
	return nil, errors.New("the private key is neither RSA nor ECDSA")
}

// CAPublicKeyHash is the pin `kubeadm join --discovery-token-ca-cert-hash`
// takes: "sha256:" and the hex SHA-256 of the CA's DER SubjectPublicKeyInfo.
func CAPublicKeyHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}
