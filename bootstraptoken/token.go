// Package bootstraptoken handles bootstrap tokens the way kubeadm does: the
// "abcdef.0123456789abcdef" token string, its kube-system Secret
// (bootstrap-token-<id>) and the `token list` table.
//
// It mirrors kubeadm's cmd/kubeadm/app/apis/bootstraptoken/v1 (utils.go,
// defaults.go), the token validation of apis/kubeadm/validation and the
// text printer of cmd/token.go.
package bootstraptoken

import (
	"fmt"
	"strings"
	"time"

	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// Format is the expected shape of a token, for error messages.
const Format = "[a-z0-9]{6}.[a-z0-9]{16}"

// Token is a bootstrap token: a public ID and a secret.
type Token struct {
	ID     string
	Secret string
}

// String returns "id.secret", or "" when either part is empty (as kubeadm's
// BootstrapTokenString does).
func (t Token) String() string {
	if t.ID == "" || t.Secret == "" {
		return ""
	}
	return bootstraputil.TokenFromIDAndSecret(t.ID, t.Secret)
}

// Parse splits s, which must match [a-z0-9]{6}\.[a-z0-9]{16}, into a Token.
// The error does not repeat s: a mistyped token is still mostly a secret.
func Parse(s string) (Token, error) {
	m := bootstraputil.BootstrapTokenRegexp.FindStringSubmatch(s)
	if len(m) != 3 {
		return Token{}, fmt.Errorf("invalid bootstrap token (%d characters): expected the form %q, e.g. abcdef.0123456789abcdef", len(s), Format)
	}
	return Token{ID: m[1], Secret: m[2]}, nil
}

// Generate returns a new random token.
func Generate() (Token, error) {
	s, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return Token{}, fmt.Errorf("generate a bootstrap token: %w", err)
	}
	return Parse(s)
}

// Validate checks that t has a well-formed ID and secret.
func (t Token) Validate() error {
	if !bootstraputil.IsValidBootstrapTokenID(t.ID) {
		return fmt.Errorf("invalid bootstrap token ID %q: expected 6 characters of [a-z0-9]", t.ID)
	}
	if _, err := Parse(t.String()); err != nil {
		return err
	}
	return nil
}

// Defaults of kubeadm's SetDefaults_BootstrapToken.
const (
	// DefaultTTL is how long a token lives unless told otherwise.
	DefaultTTL = 24 * time.Hour
	// DefaultGroup is the extra group of tokens that join nodes.
	DefaultGroup = "system:bootstrappers:kubeadm:default-node-token"
)

// DefaultUsages returns kubeadm's default usages: signing, authentication.
func DefaultUsages() []string { return []string{"signing", "authentication"} }

// Options describes a token's Secret beyond the token itself.
type Options struct {
	Description string
	// TTL is the lifetime from creation; 0 means the token never expires.
	TTL time.Duration
	// Usages are "signing" and/or "authentication". Empty means both
	// (kubeadm's defaulting).
	Usages []string
	// Groups are the extra groups the token authenticates as; each must
	// match system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]. Empty means
	// DefaultGroup when the token is used for authentication, none otherwise.
	Groups []string
}

// DefaultOptions returns kubeadm's defaults: a 24h TTL, signing and
// authentication, the default-node-token group.
func DefaultOptions() Options {
	return Options{TTL: DefaultTTL, Usages: DefaultUsages(), Groups: []string{DefaultGroup}}
}

// usageAuthentication is the "authentication" usage, without the key prefix.
var usageAuthentication = strings.TrimPrefix(bootstrapapi.BootstrapTokenUsageAuthentication, bootstrapapi.BootstrapTokenUsagePrefix)

// withDefaults fills empty usages and groups the way kubeadm defaults them.
func (o Options) withDefaults() Options {
	if len(o.Usages) == 0 {
		o.Usages = DefaultUsages()
	}
	if len(o.Groups) == 0 && contains(o.Usages, usageAuthentication) {
		o.Groups = []string{DefaultGroup}
	}
	return o
}

// Validate checks o as kubeadm's ValidateTokenUsages and ValidateTokenGroups
// do, after defaulting.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.TTL < 0 {
		errs = append(errs, fmt.Errorf("invalid token TTL %s: must be 0 (never expires) or positive", o.TTL))
	}
	if err := bootstraputil.ValidateUsages(o.Usages); err != nil {
		errs = append(errs, err)
	}
	if len(o.Groups) > 0 && !contains(o.Usages, usageAuthentication) {
		errs = append(errs, fmt.Errorf("token groups %q cannot be specified unless the usages include %q", o.Groups, usageAuthentication))
	}
	for _, g := range o.Groups {
		if err := bootstraputil.ValidateBootstrapGroupName(g); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErrors(errs)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// joinErrors is errors.Join on one line: "a; b".
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return multiError(errs)
}

type multiError []error

func (m multiError) Error() string {
	msgs := make([]string, len(m))
	for i, err := range m {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (m multiError) Unwrap() []error { return m }
