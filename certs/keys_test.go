package certs_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/certstest"
	"github.com/kubeboot/kubeboot/inventory"
)

// countingGen hands out fixture keys and counts the calls.
type countingGen struct {
	src   *certstest.Source
	calls atomic.Int32
}

func (g *countingGen) gen() (crypto.Signer, error) {
	n := g.calls.Add(1)
	return g.src.Get(fmt.Sprint(n))
}

func TestKeyPoolStartThenGet(t *testing.T) {
	g := &countingGen{src: certstest.Keys(t, inventory.ECDSAP256)}
	p := certs.NewKeyPool(inventory.ECDSAP256, g.gen)
	p.Start("a", "b", "a")
	p.Start("a")
	a1, err := p.Get("a")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := p.Get("a")
	b, _ := p.Get("b")
	if a1 != a2 {
		t.Error("Get(a) returned two keys")
	}
	if a1 == b {
		t.Error("a and b share a key")
	}
	if n := g.calls.Load(); n != 2 {
		t.Errorf("gen called %d times, want 2", n)
	}
}

func TestKeyPoolGetWithoutStart(t *testing.T) {
	g := &countingGen{src: certstest.Keys(t, inventory.ECDSAP256)}
	p := certs.NewKeyPool(inventory.ECDSAP256, g.gen)
	k1, err := p.Get("x")
	if err != nil || k1 == nil {
		t.Fatalf("Get = %v, %v", k1, err)
	}
	p.Start("x") // already there: nothing to do
	k2, _ := p.Get("x")
	if k1 != k2 || g.calls.Load() != 1 {
		t.Errorf("same key %v, gen calls %d", k1 == k2, g.calls.Load())
	}
}

func TestKeyPoolError(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int32
	p := certs.NewKeyPool(inventory.RSA2048, func() (crypto.Signer, error) { calls.Add(1); return nil, boom })
	p.Start("a")
	for range 2 {
		if _, err := p.Get("a"); !errors.Is(err, boom) {
			t.Errorf("Get = %v, want boom", err)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("gen called %d times, want 1", calls.Load())
	}
}

// TestKeyPoolConcurrent hammers one pool from many goroutines: each name is
// generated once, everyone gets the same key for it, and no more than NumCPU
// keys are generated at once.
func TestKeyPoolConcurrent(t *testing.T) {
	key, err := certstest.Keys(t, inventory.ECDSAP256).Get("k")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	calls := map[int]bool{}
	var seq atomic.Int32
	p := certs.NewKeyPool(inventory.ECDSAP256, func() (crypto.Signer, error) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		calls[int(seq.Add(1))] = true
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		return key, nil
	})

	limit := runtime.NumCPU()
	names := make([]string, 3*limit+2)
	for i := range names {
		names[i] = fmt.Sprintf("key-%d", i)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Start(names...)
			for i := range names {
				n := names[(i+w)%len(names)]
				if k, err := p.Get(n); err != nil || k != key {
					t.Errorf("Get(%s) = %v, %v", n, k, err)
				}
			}
		}()
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(calls) != len(names) {
		t.Errorf("gen called %d times for %d names", len(calls), len(names))
	}
	if maxInFlight > limit {
		t.Errorf("%d keys generated at once, limit %d", maxInFlight, limit)
	}
	if limit > 1 && maxInFlight < 2 {
		t.Errorf("keys were generated one at a time with %d CPUs", limit)
	}
}

func TestKeyPoolDefaultGenerator(t *testing.T) {
	// ECDSA only: tests never generate RSA keys.
	p := certs.NewKeyPool(inventory.ECDSAP256, nil)
	p.Start("a")
	k, err := p.Get("a")
	if err != nil {
		t.Fatal(err)
	}
	if ec, ok := k.(*ecdsa.PrivateKey); !ok || ec.Curve != elliptic.P256() {
		t.Errorf("got %T, want an ECDSA P-256 key", k)
	}
}

func TestGenerateKey(t *testing.T) {
	k, err := certs.GenerateKey(inventory.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if ec, ok := k.(*ecdsa.PrivateKey); !ok || ec.Curve != elliptic.P256() {
		t.Errorf("got %T, want an ECDSA P-256 key", k)
	}
	_, err = certs.GenerateKey("DSA-1024")
	if err == nil || !strings.Contains(err.Error(), `unsupported encryptionAlgorithm "DSA-1024"`) {
		t.Errorf("GenerateKey(DSA-1024) err = %v", err)
	}
}

func BenchmarkGenerateKey(b *testing.B) {
	for _, alg := range []inventory.EncryptionAlgorithm{inventory.RSA2048, inventory.ECDSAP256} {
		b.Run(string(alg), func(b *testing.B) {
			for b.Loop() {
				if _, err := certs.GenerateKey(alg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
