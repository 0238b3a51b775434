package bootstraptoken

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// SecretName returns the name of the Secret holding the token with this ID:
// bootstrap-token-<id>.
func SecretName(id string) string { return bootstraputil.BootstrapTokenSecretName(id) }

// Secret returns the kube-system Secret that stores t, as kubeadm's
// BootstrapTokenToSecret builds it. now is the creation time that TTL counts
// from.
func Secret(t Token, o Options, now time.Time) (*corev1.Secret, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("bootstrap token %s: %w", t.ID, err)
	}
	o = o.withDefaults()

	data := map[string][]byte{
		bootstrapapi.BootstrapTokenIDKey:     []byte(t.ID),
		bootstrapapi.BootstrapTokenSecretKey: []byte(t.Secret),
	}
	if o.Description != "" {
		data[bootstrapapi.BootstrapTokenDescriptionKey] = []byte(o.Description)
	}
	if o.TTL > 0 {
		data[bootstrapapi.BootstrapTokenExpirationKey] = []byte(now.Add(o.TTL).UTC().Format(time.RFC3339))
	}
	for _, u := range o.Usages {
		data[bootstrapapi.BootstrapTokenUsagePrefix+u] = []byte("true")
	}
	if len(o.Groups) > 0 {
		data[bootstrapapi.BootstrapTokenExtraGroupsKey] = []byte(strings.Join(o.Groups, ","))
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      SecretName(t.ID),
			Namespace: metav1.NamespaceSystem,
		},
		Type: bootstrapapi.SecretTypeBootstrapToken,
		Data: data,
	}, nil
}

// Info is a token as read back from its Secret, for `token list`.
type Info struct {
	Token       Token
	Description string
	// Expires is nil for a token that never expires.
	Expires *time.Time
	// Usages are sorted; Groups keep the Secret's order.
	Usages []string
	Groups []string
}

// FromSecret reads a bootstrap token Secret back, as kubeadm's
// BootstrapTokenFromSecret does.
func FromSecret(s *corev1.Secret) (Info, error) {
	get := func(key string) string { return string(s.Data[key]) }

	id := get(bootstrapapi.BootstrapTokenIDKey)
	if id == "" {
		return Info{}, fmt.Errorf("bootstrap token Secret %s has no %s data", s.Name, bootstrapapi.BootstrapTokenIDKey)
	}
	if want := SecretName(id); s.Name != want {
		return Info{}, fmt.Errorf("bootstrap token Secret %q is not named %s<token-id>: expected %q", s.Name, bootstrapapi.BootstrapTokenSecretPrefix, want)
	}
	secret := get(bootstrapapi.BootstrapTokenSecretKey)
	if secret == "" {
		return Info{}, fmt.Errorf("bootstrap token Secret %s has no %s data", s.Name, bootstrapapi.BootstrapTokenSecretKey)
	}
	t := Token{ID: id, Secret: secret}
	if err := t.Validate(); err != nil {
		return Info{}, fmt.Errorf("bootstrap token Secret %s is invalid: %w", s.Name, err)
	}

	info := Info{Token: t, Description: get(bootstrapapi.BootstrapTokenDescriptionKey)}
	if exp := get(bootstrapapi.BootstrapTokenExpirationKey); exp != "" {
		e, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			return Info{}, fmt.Errorf("bootstrap token Secret %s: cannot parse the expiration time: %w", s.Name, err)
		}
		info.Expires = &e
	}
	for k, v := range s.Data {
		if strings.HasPrefix(k, bootstrapapi.BootstrapTokenUsagePrefix) && string(v) == "true" {
			info.Usages = append(info.Usages, strings.TrimPrefix(k, bootstrapapi.BootstrapTokenUsagePrefix))
		}
	}
	sort.Strings(info.Usages)
	if g := get(bootstrapapi.BootstrapTokenExtraGroupsKey); g != "" {
		info.Groups = strings.Split(g, ",")
	}
	return info, nil
}

// SecretLister is the part of a typed Secrets client (kube-system) that List uses.
type SecretLister interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.SecretList, error)
}

// List reads every bootstrap token Secret, sorted by token ID. A Secret of
// the bootstrap token type that is not a valid token is left out, as kubeadm
// does, and handed to skipped when it is not nil.
func List(ctx context.Context, secrets SecretLister, skipped func(name string, err error)) ([]Info, error) {
	sel := fields.OneTermEqualSelector("type", string(bootstrapapi.SecretTypeBootstrapToken)).String()
	list, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list the bootstrap token Secrets: %w", err)
	}
	var infos []Info
	for i := range list.Items {
		s := &list.Items[i]
		if s.Type != bootstrapapi.SecretTypeBootstrapToken {
			continue
		}
		info, err := FromSecret(s)
		if err != nil {
			if skipped != nil {
				skipped(s.Name, err)
			}
			continue
		}
		infos = append(infos, info)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Token.ID < infos[j].Token.ID })
	return infos, nil
}
