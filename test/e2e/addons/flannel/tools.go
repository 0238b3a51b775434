//go:build tools

// Package flannel pins the flanneld command the e2e tests build.
package flannel

import _ "github.com/flannel-io/flannel"
