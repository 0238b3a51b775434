package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"runtime"
	"sync"

	"github.com/kubeboot/kubeboot/inventory"
)

// rsaBits is the RSA key size of alg, 0 when alg is not RSA. An empty alg is
// RSA-2048, kubeadm's default.
func rsaBits(alg inventory.EncryptionAlgorithm) int {
	switch alg {
	case inventory.RSA2048, "":
		return 2048
	case inventory.RSA3072:
		return 3072
	case inventory.RSA4096:
		return 4096
	}
	return 0
}

// GenerateKey returns a new private key of type alg, as kubeadm's
// pkiutil.GeneratePrivateKey does.
func GenerateKey(alg inventory.EncryptionAlgorithm) (crypto.Signer, error) {
	if alg == inventory.ECDSAP256 {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	bits := rsaBits(alg)
	if bits == 0 {
		return nil, fmt.Errorf("unsupported encryptionAlgorithm %q: use %s, %s, %s or %s",
			alg, inventory.RSA2048, inventory.RSA3072, inventory.RSA4096, inventory.ECDSAP256)
	}
	return rsa.GenerateKey(rand.Reader, bits)
}

// KeyPool generates private keys ahead of use. Start queues names for
// generation in the background; Get returns a name's key, waiting for it or
// generating it. RSA generation dominates the time of the certs and
// kubeconfig phases; the pool overlaps it across CPUs while the phases stay
// sequential. At most runtime.NumCPU() keys are generated at once.
//
// A KeyPool is safe for concurrent use. Each name has one key: later calls
// for the same name return the same key (or error).
type KeyPool struct {
	gen func() (crypto.Signer, error)
	sem chan struct{}

	mu   sync.Mutex
	keys map[string]*pooledKey
}

// pooledKey is one name's key; done is closed once key and err are set.
type pooledKey struct {
	done chan struct{}
	key  crypto.Signer
	err  error
}

// NewKeyPool returns a pool generating keys of type alg, with gen when it
// is not nil (tests use fixture keys), otherwise with GenerateKey(alg).
func NewKeyPool(alg inventory.EncryptionAlgorithm, gen func() (crypto.Signer, error)) *KeyPool {
	if gen == nil {
		gen = func() (crypto.Signer, error) { return GenerateKey(alg) }
	}
	return &KeyPool{
		gen:  gen,
		sem:  make(chan struct{}, runtime.NumCPU()),
		keys: map[string]*pooledKey{},
	}
}

// Start begins generating the keys for names in the background. A name
// already started (or fetched) is left alone.
func (p *KeyPool) Start(names ...string) {
	for _, name := range names {
		if k, fresh := p.entry(name); fresh {
			go p.generate(k)
		}
	}
}

// Get returns the key for name: the one Start began, once it is ready, or,
// for a name never started, one generated now.
func (p *KeyPool) Get(name string) (crypto.Signer, error) {
	k, fresh := p.entry(name)
	if fresh {
		p.generate(k)
	}
	<-k.done
	return k.key, k.err
}

// entry returns name's entry, creating it (fresh) if there was none.
func (p *KeyPool) entry(name string) (k *pooledKey, fresh bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k, ok := p.keys[name]; ok {
		return k, false
	}
	k = &pooledKey{done: make(chan struct{})}
	p.keys[name] = k
	return k, true
}

// generate fills k, holding one of the pool's NumCPU slots while it works.
func (p *KeyPool) generate(k *pooledKey) {
	p.sem <- struct{}{}
	defer func() { <-p.sem }()
	defer close(k.done)
	k.key, k.err = p.gen()
}
