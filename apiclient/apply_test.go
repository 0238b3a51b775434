package apiclient

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestApplyCreateUnchangedUpdate(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset()
	cm := func(v string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "kube-system"}, Data: map[string]string{"k": v}}
	}
	steps := []struct {
		obj  *corev1.ConfigMap
		want Result
	}{{cm("a"), Created}, {cm("a"), Unchanged}, {cm("b"), Updated}, {cm("b"), Unchanged}}
	for i, s := range steps {
		got, err := Apply(ctx, c.CoreV1().ConfigMaps("kube-system"), s.obj)
		if err != nil || got != s.want {
			t.Fatalf("step %d: %v, %v; want %v", i, got, err, s.want)
		}
	}
	live, _ := c.CoreV1().ConfigMaps("kube-system").Get(ctx, "x", metav1.GetOptions{})
	if live.Data["k"] != "b" {
		t.Errorf("live data %v", live.Data)
	}
}

func TestApplyManifestKeepsOthersLabels(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset()
	manifest := []byte(`# a comment-only document
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system, labels: {a: "1"}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: system:coredns}
rules: [{apiGroups: [""], resources: [endpoints], verbs: [list]}]
`)
	objs, err := Decode(manifest)
	if err != nil || len(objs) != 2 {
		t.Fatalf("decode: %d objects, %v", len(objs), err)
	}
	done, err := ApplyObjects(ctx, c, objs)
	if err != nil || len(done) != 2 || done[0].Object != "ServiceAccount kube-system/coredns" || done[1].Result != Created {
		t.Fatalf("%+v %v", done, err)
	}
	sa, _ := c.CoreV1().ServiceAccounts("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	sa.Labels["other"] = "kept"
	if _, err := c.CoreV1().ServiceAccounts("kube-system").Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	objs, _ = Decode([]byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: coredns, namespace: kube-system, labels: {a: \"2\"}}\n"))
	if done, err := ApplyObjects(ctx, c, objs); err != nil || done[0].Result != Updated {
		t.Fatalf("%+v %v", done, err)
	}
	sa, _ = c.CoreV1().ServiceAccounts("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if sa.Labels["other"] != "kept" || sa.Labels["a"] != "2" {
		t.Errorf("labels %v", sa.Labels)
	}
	if _, err := Decode([]byte("apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n")); err == nil {
		t.Errorf("unknown kind decoded")
	}
}
