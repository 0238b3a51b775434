//go:build tools

// Package kubebench pins kube-bench (github.com/aquasecurity/kube-bench),
// the CIS Kubernetes Benchmark runner the e2e scenario copies into its
// machines. It is not part of the bundle.
package kubebench

import _ "github.com/aquasecurity/kube-bench"
