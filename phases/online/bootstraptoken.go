package online

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	tokenjws "k8s.io/cluster-bootstrap/token/jws"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/certs"
)

// The RBAC objects and ConfigMap of kubeadm v1.34's bootstrap-token phase.
const (
	// GetNodesRole (ClusterRole and ClusterRoleBinding) lets bootstrap
	// tokens get Nodes (join checks whether its Node name is taken).
	GetNodesRole = "kubeadm:get-nodes"
	// KubeletBootstrapBinding binds system:node-bootstrapper (post CSRs)
	// to the bootstrap token group.
	KubeletBootstrapBinding = "kubeadm:kubelet-bootstrap"
	// NodeAutoApproveBootstrapBinding lets the csrapprover approve the
	// token group's node client CSRs.
	NodeAutoApproveBootstrapBinding = "kubeadm:node-autoapprove-bootstrap"
	// NodeAutoApproveRotationBinding lets the csrapprover approve nodes'
	// renewals of their own client certificates.
	NodeAutoApproveRotationBinding = "kubeadm:node-autoapprove-certificate-rotation"
	// ClusterAdminsGroup is admin.conf's group; ClusterAdminsBinding binds it
	// to cluster-admin.
	ClusterAdminsGroup   = "kubeadm:cluster-admins"
	ClusterAdminsBinding = "kubeadm:cluster-admins"
	// ClusterInfoRole (Role and RoleBinding in kube-public) lets anonymous
	// users get cluster-info.
	ClusterInfoRole = "kubeadm:bootstrap-signer-clusterinfo"

	nodeBootstrapperClusterRole = "system:node-bootstrapper"
	nodeClientClusterRole       = "system:certificates.k8s.io:certificatesigningrequests:nodeclient"
	selfNodeClientClusterRole   = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"
	anonymousUser               = "system:anonymous"
)

// ConfigureBootstrap is what the bootstrap-token phase sets up besides the
// token: the RBAC that lets tokens join nodes and nodes renew their
// certificates, and kube-public/cluster-info (the cluster CA, read from
// caFile, and endpoint, signed for tok) with the Role that lets anyone read
// it.
func ConfigureBootstrap(ctx context.Context, a API, tok bootstraptoken.Token, endpoint string, ca []byte, caFile string) error {
	const tag = "bootstrap-token"
	a.Out.Printf(tag, "Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
	if err := a.Apply(ctx, tag, bootstrapRBAC()...); err != nil {
		return err
	}
	kubeconfig, err := clusterInfoKubeconfig(endpoint, ca, caFile)
	if err != nil {
		return err
	}
	if err := applyClusterInfo(ctx, a, kubeconfig, tok); err != nil {
		return err
	}
	return a.Apply(ctx, tag, clusterInfoRBAC()...)
}

// EnsureToken makes sure init's bootstrap token exists: token (--token)
// (reused when its Secret exists with the same secret, renewed when it has
// expired), else a valid token kubeboot could have created before (both
// usages, the default group, at least an hour left), else a new one.
func EnsureToken(ctx context.Context, a API, token string, ttl time.Duration, now time.Time) (bootstraptoken.Token, error) {
	const tag = "bootstrap-token"
	secrets := a.Kube.CoreV1().Secrets(metav1.NamespaceSystem)
	opts := bootstraptoken.DefaultOptions()
	opts.TTL = ttl

	var tok bootstraptoken.Token
	if token != "" {
		t, err := bootstraptoken.Parse(token)
		if err != nil {
			return tok, fmt.Errorf("--token: %w", err)
		}
		tok = t
	} else {
		reused, err := ReusableToken(ctx, secrets, now)
		if err != nil {
			return tok, err
		}
		if reused != nil {
			a.Out.Printf(tag, "Using existing bootstrap token %s (expires %s); pass --token to choose one", reused.Token.ID, expiry(reused))
			return reused.Token, nil
		}
		t, err := bootstraptoken.Generate()
		if err != nil {
			return tok, err
		}
		tok = t
	}
	desired, err := bootstraptoken.Secret(tok, opts, now)
	if err != nil {
		return tok, err
	}
	live, err := secrets.Get(ctx, desired.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := secrets.Create(ctx, desired, metav1.CreateOptions{}); err != nil {
			return tok, fmt.Errorf("create the bootstrap token Secret %s: %w", desired.Name, err)
		}
		a.Report(tag, apiclient.Created, "bootstrap token "+tok.ID+" (Secret kube-system/"+desired.Name+")")
		return tok, nil
	case err != nil:
		return tok, fmt.Errorf("get the bootstrap token Secret %s: %w", desired.Name, err)
	}
	info, err := bootstraptoken.FromSecret(live)
	if err != nil || info.Token.Secret != tok.Secret {
		return tok, fmt.Errorf("a bootstrap token with id %q already exists with another secret: choose another --token, or delete it first with `kubeboot token delete %s`", tok.ID, tok.ID)
	}
	if info.Expires != nil && !info.Expires.After(now) {
		live.Data = desired.Data
		if _, err := secrets.Update(ctx, live, metav1.UpdateOptions{}); err != nil {
			return tok, fmt.Errorf("renew the expired bootstrap token Secret %s: %w", desired.Name, err)
		}
		a.Report(tag, apiclient.Updated, "bootstrap token "+tok.ID+" (it had expired; new expiry "+expiry(&info)+")")
		return tok, nil
	}
	a.Out.Printf(tag, "Using existing bootstrap token %s (expires %s)", tok.ID, expiry(&info))
	return tok, nil
}

// ReusableToken returns the token, if any, that `kubeboot init` without
// --token reuses: authentication and signing, the default group, an hour or
// more left; the one that lives longest.
func ReusableToken(ctx context.Context, secrets bootstraptoken.SecretLister, now time.Time) (*bootstraptoken.Info, error) {
	infos, err := bootstraptoken.List(ctx, secrets, nil)
	if err != nil {
		return nil, err
	}
	var candidates []bootstraptoken.Info
	for _, info := range infos {
		if !slices.Contains(info.Usages, "authentication") || !slices.Contains(info.Usages, "signing") || !slices.Contains(info.Groups, bootstraptoken.DefaultGroup) {
			continue
		}
		if info.Expires != nil && info.Expires.Sub(now) < time.Hour {
			continue
		}
		candidates = append(candidates, info)
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	sort.Slice(candidates, func(i, j int) bool {
		a, b := candidates[i].Expires, candidates[j].Expires
		switch {
		case a == nil:
			return b != nil || candidates[i].Token.ID < candidates[j].Token.ID
		case b == nil:
			return false
		case !a.Equal(*b):
			return a.After(*b)
		}
		return candidates[i].Token.ID < candidates[j].Token.ID
	})
	return &candidates[0], nil
}

func expiry(info *bootstraptoken.Info) string {
	if info.Expires == nil {
		return "never"
	}
	return info.Expires.UTC().Format(time.RFC3339)
}

func clusterRoleBinding(name, role string, subject rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{subject},
	}
}

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

// bootstrapRBAC is kubeadm's RBAC for joining nodes, in the order kubeadm
// creates it, and the kubeadm:cluster-admins binding.
func bootstrapRBAC() []apiclient.Object {
	return []apiclient.Object{
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: GetNodesRole},
			Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}},
		},
		clusterRoleBinding(GetNodesRole, GetNodesRole, group(BootstrapTokenGroup)),
		clusterRoleBinding(KubeletBootstrapBinding, nodeBootstrapperClusterRole, group(BootstrapTokenGroup)),
		clusterRoleBinding(NodeAutoApproveBootstrapBinding, nodeClientClusterRole, group(BootstrapTokenGroup)),
		clusterRoleBinding(NodeAutoApproveRotationBinding, selfNodeClientClusterRole, group(NodesGroup)),
		clusterRoleBinding(ClusterAdminsBinding, "cluster-admin", group(ClusterAdminsGroup)),
	}
}

// clusterInfoRBAC lets anonymous users get kube-public/cluster-info.
func clusterInfoRBAC() []apiclient.Object {
	return []apiclient.Object{
		&rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Name: ClusterInfoRole, Namespace: metav1.NamespacePublic},
			Rules: []rbacv1.PolicyRule{{
				Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{bootstrapapi.ConfigMapClusterInfo},
			}},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: ClusterInfoRole, Namespace: metav1.NamespacePublic},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ClusterInfoRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: anonymousUser}},
		},
	}
}

// clusterInfoKubeconfig is cluster-info's kubeconfig: one unnamed cluster
// with the cluster CA and the control-plane endpoint, no users (kubeadm
// copies admin.conf's cluster).
func clusterInfoKubeconfig(endpoint string, ca []byte, file string) (string, error) {
	if _, err := certs.ParseCert(ca); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	kc := clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: endpoint, CertificateAuthorityData: ca},
	}}
	b, err := clientcmd.Write(kc)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// applyClusterInfo creates kube-public/cluster-info or updates its
// kubeconfig, keeping the bootstrapsigner's jws-kubeconfig-* signatures of
// an unchanged kubeconfig. It signs the kubeconfig for init's own token
// itself (the detached JWS the bootstrapsigner computes, so the signer
// finds nothing to change): a node can join as soon as init is done,
// instead of waiting until kube-controller-manager is elected and its
// bootstrapsigner has run (about 7 s after a new control plane is up).
func applyClusterInfo(ctx context.Context, a API, kubeconfig string, tok bootstraptoken.Token) error {
	const tag = "bootstrap-token"
	cms := a.Kube.CoreV1().ConfigMaps(metav1.NamespacePublic)
	what := fmt.Sprintf("ConfigMap %s/%s", metav1.NamespacePublic, bootstrapapi.ConfigMapClusterInfo)
	sigKey := bootstrapapi.JWSSignatureKeyPrefix + tok.ID
	sig, err := tokenjws.ComputeDetachedSignature(kubeconfig, tok.ID, tok.Secret)
	if err != nil {
		return fmt.Errorf("sign %s for bootstrap token %s: %w", what, tok.ID, err)
	}
	live, err := cms.Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.ConfigMapClusterInfo, Namespace: metav1.NamespacePublic},
			Data:       map[string]string{bootstrapapi.KubeConfigKey: kubeconfig, sigKey: sig},
		}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create %s: %w", what, err)
		}
		a.Report(tag, apiclient.Created, what)
		return nil
	case err != nil:
		return fmt.Errorf("get %s: %w", what, err)
	}
	if live.Data[bootstrapapi.KubeConfigKey] == kubeconfig && live.Data[sigKey] == sig {
		a.Report(tag, apiclient.Unchanged, what)
		return nil
	}
	note := ""
	if live.Data[bootstrapapi.KubeConfigKey] != kubeconfig {
		note = " (the bootstrapsigner signs it again for the other tokens)"
	}
	if live.Data == nil {
		live.Data = map[string]string{}
	}
	live.Data[bootstrapapi.KubeConfigKey] = kubeconfig
	live.Data[sigKey] = sig
	if _, err := cms.Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update %s: %w", what, err)
	}
	a.Report(tag, apiclient.Updated, what+note)
	return nil
}
