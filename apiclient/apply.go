// Package apiclient holds kubeboot's helpers for talking to the API server
// with client-go's typed clients: an idempotent create-or-update that says
// what it did, and the application of multi-document manifests.
package apiclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// AppliedHashAnnotation holds a hash of the object kubeboot last applied. A
// run whose object hashes the same leaves the live object alone, so a second
// run changes nothing even for objects the API server fills with defaults.
const AppliedHashAnnotation = "kubeboot.io/applied-hash"

// Object is a typed API object (*corev1.ConfigMap, *rbacv1.Role, ...).
type Object interface {
	metav1.Object
	runtime.Object
}

// Client is the part of a typed client (c.CoreV1().ConfigMaps(ns), ...)
// that Apply uses.
type Client[T Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// Result says what Apply did.
type Result string

// The outcomes of Apply.
const (
	Created   Result = "created"
	Updated   Result = "updated"
	Unchanged Result = "unchanged"
)

// Apply creates desired, or updates the live object when what kubeboot
// applied last differs from desired, or leaves it alone. desired gets the
// applied-hash annotation. An update keeps labels and annotations others
// added to the live object.
func Apply[T Object](ctx context.Context, c Client[T], desired T) (Result, error) {
	hash, err := objectHash(desired)
	if err != nil {
		return "", err
	}
	ann := desired.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AppliedHashAnnotation] = hash
	desired.SetAnnotations(ann)

	live, err := c.Get(ctx, desired.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := c.Create(ctx, desired, metav1.CreateOptions{}); err != nil {
			if apierrors.IsAlreadyExists(err) { // created meanwhile: compare again
				return Apply(ctx, c, desired)
			}
			return "", fmt.Errorf("create %s: %w", Describe(desired), err)
		}
		return Created, nil
	case err != nil:
		return "", fmt.Errorf("get %s: %w", Describe(desired), err)
	}
	if live.GetAnnotations()[AppliedHashAnnotation] == hash {
		return Unchanged, nil
	}
	desired.SetResourceVersion(live.GetResourceVersion())
	desired.SetLabels(merge(live.GetLabels(), desired.GetLabels()))
	desired.SetAnnotations(merge(live.GetAnnotations(), desired.GetAnnotations()))
	if _, err := c.Update(ctx, desired, metav1.UpdateOptions{}); err != nil {
		return "", fmt.Errorf("update %s: %w", Describe(desired), err)
	}
	return Updated, nil
}

// objectHash hashes the object as it would be sent, without the hash
// annotation itself.
func objectHash(obj Object) (string, error) {
	ann := obj.GetAnnotations()
	saved, had := ann[AppliedHashAnnotation]
	if had {
		delete(ann, AppliedHashAnnotation)
		defer func() { ann[AppliedHashAnnotation] = saved }()
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", Describe(obj), err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

func merge(live, desired map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range live {
		out[k] = v
	}
	for k, v := range desired {
		out[k] = v
	}
	return out
}

// Describe names an object for messages: "ConfigMap kube-system/coredns".
func Describe(obj Object) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		kind = fmt.Sprintf("%T", obj)
		if i := lastDot(kind); i >= 0 {
			kind = kind[i+1:]
		}
	}
	if ns := obj.GetNamespace(); ns != "" {
		return kind + " " + ns + "/" + obj.GetName()
	}
	return kind + " " + obj.GetName()
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}
