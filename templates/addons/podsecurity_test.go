package addons

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/kubeboot/kubeboot/inventory"
)

// TestPodSecurityAdmitsAddons evaluates every pod kubeboot's add-ons run
// with Pod Security Admission's own checks against the level that applies
// to its namespace under the default podSecurity (enforce baseline,
// kube-system exempt): the namespace's pod-security.kubernetes.io/enforce
// label when its manifest sets one, else the cluster-wide default. A CNI
// that the default would reject would leave every node NotReady.
func TestPodSecurityAdmitsAddons(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range testCases() {
		ps := tc.cfg.PodSecurity
		if ps.Enforce != inventory.PodSecurityBaseline || len(ps.ExemptNamespaces) != 1 || ps.ExemptNamespaces[0] != "kube-system" {
			t.Fatalf("%s: podSecurity defaults are %+v, want enforce baseline with kube-system exempt", tc.name, ps)
		}
		for file, b := range renderCase(t, tc) {
			objs := decode(t, file, b)
			labels := map[string]string{}
			for _, o := range objs {
				if ns, ok := o.typed.(*corev1.Namespace); ok {
					labels[ns.Name] = ns.Labels[psaapi.EnforceLevelLabel]
				}
			}
			for _, o := range objs {
				var meta metav1.ObjectMeta
				var spec *corev1.PodSpec
				switch v := o.typed.(type) {
				case *appsv1.Deployment:
					meta, spec = v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec
				case *appsv1.DaemonSet:
					meta, spec = v.Spec.Template.ObjectMeta, &v.Spec.Template.Spec
				default:
					continue
				}
				if contains(ps.ExemptNamespaces, o.namespace) {
					continue
				}
				level := ps.Enforce
				if l := labels[o.namespace]; l != "" {
					level = l
				}
				lv, err := psaapi.ParseLevel(level)
				if err != nil {
					t.Fatalf("%s: namespace %s: %v", file, o.namespace, err)
				}
				for _, r := range eval.EvaluatePod(psaapi.LevelVersion{Level: lv, Version: psaapi.LatestVersion()}, &meta, spec) {
					if !r.Allowed {
						t.Errorf("%s/%s: %s %s/%s is rejected at %s in its namespace: %s: %s", tc.name, file, o.kind, o.namespace, o.name, level, r.ForbiddenReason, r.ForbiddenDetail)
					}
				}
			}
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
