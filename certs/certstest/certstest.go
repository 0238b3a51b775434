// Package certstest provides fixture private keys for tests, so that tests
// never spend seconds generating RSA keys.
//
// The keys are committed PEM files under testdata/, embedded in the test
// binary. Regenerate them (rarely needed) with
//
//	go test ./certs/certstest -run TestGenerateFixtures -generate
package certstest

import (
	"crypto"
	"crypto/x509"
	"embed"
	"encoding/pem"
	"fmt"
	"sync"
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
)

//go:embed testdata/*.pem
var fixtures embed.FS

// FixtureFile is the testdata file holding alg's keys, "" for an algorithm
// without fixtures. An empty alg is RSA-2048, the default.
func FixtureFile(alg inventory.EncryptionAlgorithm) string {
	switch alg {
	case inventory.RSA2048, "":
		return "testdata/rsa-2048.pem"
	case inventory.ECDSAP256:
		return "testdata/ecdsa-p256.pem"
	}
	return ""
}

// Source hands out fixture keys. It satisfies phases.KeySource and is safe
// for concurrent use.
type Source struct {
	mu      sync.Mutex
	blocks  []*pem.Block // fixture keys not handed out yet
	byName  map[string]crypto.Signer
	started []string
}

// Keys returns a Source of distinct pre-generated alg keys (RSA-2048 or
// ECDSA-P256): Get returns the same key for the same name and a different
// key for every other name. Each Source starts from the first fixture key, so
// tests are deterministic.
func Keys(t testing.TB, alg inventory.EncryptionAlgorithm) *Source {
	t.Helper()
	blocks, err := Blocks(alg)
	if err != nil {
		t.Fatalf("certstest: %v", err)
	}
	return &Source{blocks: blocks, byName: map[string]crypto.Signer{}}
}

// Blocks returns alg's fixture keys as PEM blocks, in file order.
func Blocks(alg inventory.EncryptionAlgorithm) ([]*pem.Block, error) {
	file := FixtureFile(alg)
	if file == "" {
		return nil, fmt.Errorf("no fixture keys for %q: use %s or %s", alg, inventory.RSA2048, inventory.ECDSAP256)
	}
	data, err := fixtures.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var blocks []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%s holds no keys; regenerate it with -generate", file)
	}
	return blocks, nil
}

// Start records names; fixture keys need no generating.
func (s *Source) Start(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = append(s.started, names...)
}

// Started returns the names passed to Start so far, in order.
func (s *Source) Started() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.started...)
}

// Get returns name's key: the one handed out before, or the next unused
// fixture key. It fails once every fixture key is in use.
func (s *Source) Get(name string) (crypto.Signer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.byName[name]; ok {
		return k, nil
	}
	if len(s.blocks) == 0 {
		return nil, fmt.Errorf("certstest: all %d fixture keys are in use; add more with -generate", len(s.byName))
	}
	k, err := parse(s.blocks[0])
	if err != nil {
		return nil, err
	}
	s.blocks = s.blocks[1:]
	s.byName[name] = k
	return k, nil
}

// parse decodes one fixture key block.
func parse(b *pem.Block) (crypto.Signer, error) {
	switch b.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(b.Bytes)
	}
	return nil, fmt.Errorf("certstest: unexpected PEM block %q", b.Type)
}
