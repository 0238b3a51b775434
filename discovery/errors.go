package discovery

import (
	"errors"
	"fmt"
)

// Kinds of discovery failure, for errors.Is. The error text itself is one
// line that says what went wrong and what to check.
var (
	// ErrUnreachable: no HTTPS answer from the endpoint (refused, timed out,
	// TLS handshake failed).
	ErrUnreachable = errors.New("the API server is unreachable")
	// ErrNoClusterInfo: the API server answered but did not hand out the
	// kube-public/cluster-info ConfigMap (missing, anonymous access denied).
	ErrNoClusterInfo = errors.New("no usable cluster-info ConfigMap")
	// ErrNoSignature: cluster-info has no JWS signature for the token ID
	// (not signed yet; without CA pins also an unknown, expired or deleted
	// token, which cannot be told apart then).
	ErrNoSignature = errors.New("no JWS signature for the token in cluster-info")
	// ErrBadSignature: the signature does not verify with the token secret.
	ErrBadSignature = errors.New("the cluster-info signature does not verify")
	// ErrTokenRejected: cluster-info has no signature for the token ID and
	// the API server, verified against the pinned CA, answers 401 to the
	// token: its ID is unknown, it expired or was deleted (or its secret
	// is wrong); a joining node cannot tell which.
	ErrTokenRejected = errors.New("the API server rejects the bootstrap token")
	// ErrNoPins: neither CA pins nor UnsafeSkipCAVerification were given.
	ErrNoPins = errors.New("no CA pin given")
	// ErrPinMismatch: the cluster CA matches none of the pins.
	ErrPinMismatch = errors.New("the cluster CA does not match the pins")
	// ErrUntrustedServer: on the second, CA-verified fetch the API server's
	// certificate did not verify against the pinned cluster CA.
	ErrUntrustedServer = errors.New("the API server certificate does not verify against the cluster CA")
	// ErrClusterInfoChanged: the CA-verified fetch returned a different
	// kubeconfig than the first one.
	ErrClusterInfoChanged = errors.New("cluster-info differs between the unverified and the CA-verified fetch")
)

// discoveryError is an error of a kind (one of the Err* values) with its own
// message, wrapping an optional cause.
type discoveryError struct {
	kind  error
	msg   string
	cause error
}

func newError(kind, cause error, format string, args ...any) error {
	return &discoveryError{kind: kind, msg: fmt.Sprintf(format, args...), cause: cause}
}

func (e *discoveryError) Error() string { return e.msg }

func (e *discoveryError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}
