package cluster

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// TestCheckExpiration: -f's reading of every host, in parallel, a host
// that cannot be reached named with the others still read.
func TestCheckExpiration(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	hosts := map[string]*transporttest.Fake{}
	for _, h := range inv.Hosts {
		hosts[h.Name] = transporttest.New(h.Name)
	}
	hosts["cp1"].SetFile("/etc/kubernetes/pki/apiserver.crt", expiringCert(t, "kube-apiserver"), 0o644)
	hosts["w1"].SetFile("/var/lib/kubelet/pki/kubelet-client-current.pem", expiringCert(t, "system:node:w1"), 0o600)
	connect := func(_ context.Context, inv *Inventory, i int) (transport.Host, error) {
		if inv.Hosts[i].Name == "w3" {
			return nil, errors.New("ssh: handshake failed: knownhosts: key mismatch")
		}
		return hosts[inv.Hosts[i].Name], nil
	}
	got, err := CheckExpiration(context.Background(), inv, connect, 2)
	if err == nil || !strings.Contains(err.Error(), "w3: ssh: handshake failed") {
		t.Errorf("error %v, want w3's", err)
	}
	if len(got) != 6 || got[0].Host != "cp1" || got[5].Error == "" {
		t.Fatalf("got %+v", got)
	}
	var apiserver bool
	for _, e := range got[0].Certificates {
		apiserver = apiserver || e.Name == "apiserver" && !e.Missing
	}
	if !apiserver || got[3].KubeletClientCertificate == nil || len(got[1].Certificates) != 0 {
		t.Errorf("cp1 %+v\nw1 %+v\ncp2 %+v", got[0], got[3], got[1])
	}
	var out bytes.Buffer
	if err := WriteExpirations(&out, got); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"== cp1 (control-plane)\nCERTIFICATE ", "== cp2 (control-plane)\nno certificates", "== w1 (worker)\nKUBELET CLIENT CERTIFICATE", "== w3 (worker)\nerror: ssh: handshake failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}
