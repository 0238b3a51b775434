package bootstraptoken

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
)

func TestList(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var objs []*corev1.Secret
	for _, tok := range []Token{{ID: "zzzzzz", Secret: "0123456789abcdef"}, {ID: "aaaaaa", Secret: "fedcba9876543210"}} {
		s, err := Secret(tok, DefaultOptions(), now)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, s)
	}
	// A token Secret that is not valid (no secret), and a Secret of another type.
	objs = append(objs,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-bbbbbb", Namespace: "kube-system"}, Type: bootstrapapi.SecretTypeBootstrapToken,
			Data: map[string][]byte{bootstrapapi.BootstrapTokenIDKey: []byte("bbbbbb")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "kube-system"}, Type: corev1.SecretTypeOpaque})
	c := fake.NewClientset()
	for _, s := range objs {
		if _, err := c.CoreV1().Secrets("kube-system").Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var skipped []string
	infos, err := List(context.Background(), c.CoreV1().Secrets("kube-system"), func(name string, err error) { skipped = append(skipped, name) })
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Token.ID != "aaaaaa" || infos[1].Token.ID != "zzzzzz" {
		t.Errorf("List = %+v, want aaaaaa and zzzzzz in that order", infos)
	}
	if len(skipped) != 1 || skipped[0] != "bootstrap-token-bbbbbb" {
		t.Errorf("skipped %v, want the invalid token Secret only", skipped)
	}
}
