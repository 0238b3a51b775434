package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// decoder knows client-go's kinds and CustomResourceDefinitions (which a
// CNI manifest such as Calico's carries). It is built on first use, not at
// start-up: most kubeboot commands never decode a manifest.
var decoder = sync.OnceValue(func() runtime.Decoder {
	s := runtime.NewScheme()
	utilruntime.Must(scheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	return serializer.NewCodecFactory(s).UniversalDeserializer()
})

// Applied is one object of a manifest and what Apply did with it.
type Applied struct {
	Object string // "Deployment kube-system/coredns"
	Result Result
}

// Decode splits a multi-document YAML manifest into typed objects known to
// client-go's scheme. A document that is not a known object is an error
// naming its position.
func Decode(manifest []byte) ([]Object, error) {
	r := utilyaml.NewYAMLReader(bufioReader(manifest))
	var out []Object
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := decoder().Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		o, ok := obj.(Object)
		if !ok {
			return nil, fmt.Errorf("document %d: %T is not an object with metadata", i, obj)
		}
		out = append(out, o)
	}
}

// Clients are the typed clients Clients.Apply chooses from. Ext may be nil
// when no object is a CustomResourceDefinition.
type Clients struct {
	Kube kubernetes.Interface
	Ext  apiextensionsclient.Interface
}

// Apply applies one object with the typed client for its kind.
func (c Clients) Apply(ctx context.Context, obj runtime.Object) (Result, error) {
	if crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
		if c.Ext == nil {
			return "", fmt.Errorf("kubeboot has no apiextensions client to apply %s", Describe(crd))
		}
		return Apply(ctx, c.Ext.ApiextensionsV1().CustomResourceDefinitions(), crd)
	}
	return ApplyObject(ctx, c.Kube, obj)
}

// ApplyObjects applies each object in order with the typed client for its
// kind, stopping at the first failure.
func ApplyObjects(ctx context.Context, c kubernetes.Interface, objs []Object) ([]Applied, error) {
	var done []Applied
	for _, o := range objs {
		res, err := ApplyObject(ctx, c, o)
		if err != nil {
			return done, err
		}
		done = append(done, Applied{Object: Describe(o), Result: res})
	}
	return done, nil
}

// ApplyObject applies one typed object.
func ApplyObject(ctx context.Context, c kubernetes.Interface, obj runtime.Object) (Result, error) {
	switch o := obj.(type) {
	case *corev1.Namespace:
		return Apply(ctx, c.CoreV1().Namespaces(), o)
	case *corev1.ServiceAccount:
		return Apply(ctx, c.CoreV1().ServiceAccounts(o.Namespace), o)
	case *corev1.ConfigMap:
		return Apply(ctx, c.CoreV1().ConfigMaps(o.Namespace), o)
	case *corev1.Secret:
		return Apply(ctx, c.CoreV1().Secrets(o.Namespace), o)
	case *corev1.Service:
		return Apply(ctx, serviceClient{c.CoreV1().Services(o.Namespace)}, o)
	case *appsv1.Deployment:
		return Apply(ctx, c.AppsV1().Deployments(o.Namespace), o)
	case *appsv1.DaemonSet:
		return Apply(ctx, c.AppsV1().DaemonSets(o.Namespace), o)
	case *rbacv1.ClusterRole:
		return Apply(ctx, c.RbacV1().ClusterRoles(), o)
	case *rbacv1.ClusterRoleBinding:
		return Apply(ctx, c.RbacV1().ClusterRoleBindings(), o)
	case *rbacv1.Role:
		return Apply(ctx, c.RbacV1().Roles(o.Namespace), o)
	case *rbacv1.RoleBinding:
		return Apply(ctx, c.RbacV1().RoleBindings(o.Namespace), o)
	case *policyv1.PodDisruptionBudget:
		return Apply(ctx, c.PolicyV1().PodDisruptionBudgets(o.Namespace), o)
	}
	return "", fmt.Errorf("kubeboot cannot apply a %T", obj)
}

// serviceClient keeps a Service's allocated ClusterIPs on update: the API
// server refuses an update that clears them.
type serviceClient struct {
	Client[*corev1.Service]
}

func (s serviceClient) Update(ctx context.Context, svc *corev1.Service, opts metav1.UpdateOptions) (*corev1.Service, error) {
	if svc.Spec.ClusterIP == "" {
		live, err := s.Client.Get(ctx, svc.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = live.Spec.ClusterIP, live.Spec.ClusterIPs
	}
	return s.Client.Update(ctx, svc, opts)
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// stripComments drops YAML comment lines, so a document of only comments
// counts as empty.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		out = append(out, line)
	}
	return bytes.Join(out, []byte("\n"))
}
