package certstest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"flag"
	"os"
	"testing"

	"k8s.io/client-go/util/keyutil"

	"github.com/kubeboot/kubeboot/inventory"
)

var generate = flag.Bool("generate", false, "regenerate the fixture keys in testdata/")

// fixtureCount is how many keys of each type the fixtures hold: more than the
// 16 keys (10 certificates, sa, 5 kubeconfigs) an init needs.
const fixtureCount = 20

// TestGenerateFixtures writes testdata/*.pem when run with -generate.
func TestGenerateFixtures(t *testing.T) {
	if !*generate {
		t.Skip("run with -generate to regenerate the fixture keys")
	}
	gens := map[inventory.EncryptionAlgorithm]func() (crypto.Signer, error){
		inventory.RSA2048:   func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
		inventory.ECDSAP256: func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
	}
	for alg, gen := range gens {
		var buf bytes.Buffer
		for range fixtureCount {
			k, err := gen()
			if err != nil {
				t.Fatal(err)
			}
			b, err := keyutil.MarshalPrivateKeyToPEM(k)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(b)
		}
		if err := os.WriteFile(FixtureFile(alg), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKeys(t *testing.T) {
	for _, alg := range []inventory.EncryptionAlgorithm{inventory.RSA2048, inventory.ECDSAP256} {
		t.Run(string(alg), func(t *testing.T) {
			blocks, err := Blocks(alg)
			if err != nil {
				t.Fatal(err)
			}
			if len(blocks) < 16 {
				t.Fatalf("%d fixture keys, want at least 16", len(blocks))
			}
			s := Keys(t, alg)
			s.Start("a", "b")
			a1, err := s.Get("a")
			if err != nil {
				t.Fatal(err)
			}
			a2, _ := s.Get("a")
			b, _ := s.Get("b")
			if a1 != a2 {
				t.Error("Get(a) twice returned different keys")
			}
			if a1.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(b.Public()) {
				t.Error("Get(a) and Get(b) returned the same key")
			}
			switch k := a1.(type) {
			case *rsa.PrivateKey:
				if alg != inventory.RSA2048 || k.N.BitLen() != 2048 {
					t.Errorf("got RSA-%d for %s", k.N.BitLen(), alg)
				}
			case *ecdsa.PrivateKey:
				if alg != inventory.ECDSAP256 || k.Curve != elliptic.P256() {
					t.Errorf("got ECDSA %s for %s", k.Curve.Params().Name, alg)
				}
			}
			if got := s.Started(); len(got) != 2 {
				t.Errorf("Started() = %v", got)
			}
			// Distinct keys for every name, until they run out.
			seen := map[string]bool{}
			for i := 0; ; i++ {
				k, err := s.Get(string(rune('c' + i)))
				if err != nil {
					if i+2 != len(blocks) {
						t.Errorf("ran out after %d keys, have %d", i+2, len(blocks))
					}
					break
				}
				der, _ := keyutil.MarshalPrivateKeyToPEM(k)
				if seen[string(der)] {
					t.Fatalf("key %d handed out twice", i)
				}
				seen[string(der)] = true
			}
		})
	}
}
