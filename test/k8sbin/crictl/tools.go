//go:build tools

// Package crictl pins the crictl command (sigs.k8s.io/cri-tools) the e2e
// bundle carries.
package crictl

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
