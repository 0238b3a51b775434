package copycerts

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testKey(t *testing.T) []byte {
	t.Helper()
	k, err := CreateCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseCertificateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestSealOpenRoundTrip(t *testing.T) {
	key := testKey(t)
	for _, plain := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("-----BEGIN CERTIFICATE-----\n"), 100)} {
		sealed, err := Seal(key, plain)
		if err != nil {
			t.Fatal(err)
		}
		if want := 12 + len(plain) + 16; len(sealed) != want {
			t.Errorf("sealed %d bytes into %d, want nonce+plaintext+tag = %d", len(plain), len(sealed), want)
		}
		got, err := Open(key, sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("Open(Seal(%q)) = %q", plain, got)
		}
	}
	a, _ := Seal(key, []byte("same"))
	b, _ := Seal(key, []byte("same"))
	if bytes.Equal(a[:12], b[:12]) || bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext share a nonce")
	}
}

func TestOpenWrongKey(t *testing.T) {
	sealed, err := Seal(testKey(t), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(testKey(t), sealed)
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), "wrong --certificate-key") {
		t.Errorf("error %q does not say the key is wrong", err)
	}
}

func TestOpenTruncated(t *testing.T) {
	key := testKey(t)
	sealed, err := Seal(key, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 5, 12, 27} {
		_, err := Open(key, sealed[:n])
		if err == nil || errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("Open(%d bytes) = %v, want a truncation error", n, err)
		}
	}
	// Long enough to hold a nonce and a tag, but cut: authentication fails.
	if _, err := Open(key, sealed[:len(sealed)-1]); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Open(one byte short) = %v, want ErrWrongKey", err)
	}
}

func TestOpenTampered(t *testing.T) {
	key := testKey(t)
	sealed, err := Seal(key, []byte("-----BEGIN RSA PRIVATE KEY-----"))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 11, 12, 20, len(sealed) - 1} { // nonce, ciphertext, tag
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := Open(key, bad); !errors.Is(err, ErrWrongKey) {
			t.Errorf("Open with byte %d flipped = %v, want ErrWrongKey", i, err)
		}
	}
}

// gcmSpecCase15 is Test Case 15 of "The Galois/Counter Mode of Operation
// (GCM)" (McGrew, Viega): AES-256, a 96-bit IV, no additional data, as
// kubeadm's cryptoutil uses it. Sealed as kubeadm lays it out, nonce||C||T.
var gcmSpecCase15 = struct{ key, nonce, plain, ciphertext, tag string }{
	key:        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	nonce:      "cafebabefacedbaddecaf888",
	plain:      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
	ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
	tag:        "b094dac5d93471bdec1a502270e3cc6c",
}

func TestKnownVector(t *testing.T) {
	v := gcmSpecCase15
	key, err := ParseCertificateKey(v.key)
	if err != nil {
		t.Fatal(err)
	}
	nonce, plain := mustHex(t, v.nonce), mustHex(t, v.plain)
	sealed := mustHex(t, v.nonce+v.ciphertext+v.tag)

	got, err := Open(key, sealed)
	if err != nil {
		t.Fatalf("Open(known vector): %v", err)
	}
	if !bytes.Equal(got, plain) {
		t.Errorf("Open(known vector) = %x, want %x", got, plain)
	}

	out, err := seal(bytes.NewReader(nonce), key, plain)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, sealed) {
		t.Errorf("seal with the vector's nonce =\n%x\nwant nonce||ciphertext||tag\n%x", out, sealed)
	}
}

// TestKubeadmLayout checks interoperability with kubeadm's EncryptBytes and
// DecryptBytes, restated with crypto/cipher: gcm.Seal(nonce, nonce, data,
// nil) to seal, the first NonceSize bytes as the nonce to open.
func TestKubeadmLayout(t *testing.T) {
	key := testKey(t)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

	nonce := bytes.Repeat([]byte{7}, gcm.NonceSize())
	byKubeadm := gcm.Seal(bytes.Clone(nonce), nonce, plain, nil)
	if got, err := Open(key, byKubeadm); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("Open(kubeadm-sealed) = %q, %v", got, err)
	}

	byKubeboot, err := Seal(key, plain)
	if err != nil {
		t.Fatal(err)
	}
	n := gcm.NonceSize()
	if got, err := gcm.Open(nil, byKubeboot[:n], byKubeboot[n:], nil); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("kubeadm's DecryptBytes(Seal()) = %q, %v", got, err)
	}
}

func TestKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33} {
		key := make([]byte, n)
		if _, err := Seal(key, []byte("x")); err == nil || !strings.Contains(err.Error(), "32 bytes") {
			t.Errorf("Seal with a %d-byte key: %v", n, err)
		}
		if _, err := Open(key, make([]byte, 64)); err == nil || !strings.Contains(err.Error(), "32 bytes") {
			t.Errorf("Open with a %d-byte key: %v", n, err)
		}
	}
}

func TestCreateCertificateKey(t *testing.T) {
	a, err := CreateCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := CreateCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 64 || strings.ToLower(a) != a {
		t.Errorf("CreateCertificateKey() = %q, want 64 lower-case hex characters", a)
	}
	if a == b {
		t.Error("two certificate keys are equal")
	}
	key, err := ParseCertificateKey(a)
	if err != nil || len(key) != 32 {
		t.Errorf("ParseCertificateKey(CreateCertificateKey()) = %d bytes, %v", len(key), err)
	}
}

func TestParseCertificateKey(t *testing.T) {
	good := strings.Repeat("0a", 32)
	if key, err := ParseCertificateKey(good); err != nil || !bytes.Equal(key, bytes.Repeat([]byte{0x0a}, 32)) {
		t.Errorf("ParseCertificateKey(%q) = %x, %v", good, key, err)
	}
	if _, err := ParseCertificateKey(strings.ToUpper(good)); err != nil {
		t.Errorf("upper-case hex: %v", err)
	}
	for name, in := range map[string]string{
		"empty":      "",
		"short":      good[:62],
		"long":       good + "00",
		"not hex":    strings.Repeat("zq", 32),
		"base64":     "q3V0ZSBrZXkgdGhhdCBpcyAzMiBieXRlcyBsb25nISE=q3V0ZSBrZXkgdGhhdCBp",
		"whitespace": good[:63] + "\n",
	} {
		_, err := ParseCertificateKey(in)
		if err == nil {
			t.Errorf("%s: ParseCertificateKey(%q) succeeded", name, in)
			continue
		}
		if !strings.Contains(err.Error(), "certificate key") {
			t.Errorf("%s: error %q does not name the certificate key", name, err)
		}
		if in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("%s: error %q repeats the key", name, err)
		}
	}
}
