package copycerts

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// KeySize is the size of the certificate key in bytes: an AES-256 key
// (kubeadm's constants.CertificateKeySize).
const KeySize = 32

// ErrWrongKey is returned when sealed data does not open with the key. GCM
// cannot tell a wrong key from modified data; in practice it is the key.
var ErrWrongKey = errors.New("the certificate key does not decrypt the kubeadm-certs Secret: wrong --certificate-key, or the Secret was re-uploaded")

// CreateCertificateKey returns a new random certificate key, hex encoded
// (64 characters), as kubeadm's copycerts.CreateCertificateKey does and
// `kubeadm certs certificate-key` prints.
func CreateCertificateKey() (string, error) {
	b := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("generate the certificate key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ParseCertificateKey decodes a hex certificate key (--certificate-key). It
// must be 64 hexadecimal characters: 32 bytes, an AES-256 key. The key is
// never repeated in the error, since it is a secret.
func ParseCertificateKey(hexKey string) ([]byte, error) {
	if len(hexKey) != 2*KeySize {
		return nil, fmt.Errorf("the certificate key must be %d hexadecimal characters (a %d-byte AES-256 key, as `kubeboot init --upload-certs` prints), not %d characters", 2*KeySize, KeySize, len(hexKey))
	}
	key, err := hex.DecodeString(hexKey)
	if err != nil {
		return nil, errors.New("the certificate key must be hexadecimal (0-9, a-f): it holds other characters")
	}
	return key, nil
}

// Seal encrypts plaintext with AES-256-GCM under key and returns
// nonce||ciphertext||tag, with a random 12-byte nonce and no additional data:
// the layout of kubeadm's cryptoutil.EncryptBytes, so that either tool opens
// what the other sealed.
func Seal(key, plaintext []byte) ([]byte, error) {
	return seal(rand.Reader, key, plaintext)
}

// seal is Seal with the nonce read from random, for tests.
func seal(random io.Reader, key, plaintext []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(plaintext)+gcm.Overhead())
	if _, err := io.ReadFull(random, nonce); err != nil {
		return nil, fmt.Errorf("generate a nonce: %w", err)
	}
	return gcm.Seal(nonce, nonce, plaintext, nil), nil
}

// Open decrypts what Seal (or kubeadm's cryptoutil.EncryptBytes) produced. A
// wrong key or modified data is ErrWrongKey.
func Open(key, sealed []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if min := gcm.NonceSize() + gcm.Overhead(); len(sealed) < min {
		return nil, fmt.Errorf("sealed data is %d bytes, shorter than the %d-byte nonce and tag: the kubeadm-certs Secret is truncated or corrupt", len(sealed), min)
	}
	nonce, ciphertext := sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():]
	out, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, ErrWrongKey
	}
	return out, nil
}

// newGCM returns AES-256-GCM for key. kubeadm would also accept 16- and
// 24-byte keys here, but its certificate key is always 32 bytes, and so is
// kubeboot's.
func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("the certificate key must be %d bytes (AES-256), not %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
