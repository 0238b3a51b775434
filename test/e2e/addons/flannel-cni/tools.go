//go:build tools

// Package flannelcni pins the flannel CNI plugin the e2e tests build.
package flannelcni

import _ "github.com/containernetworking/plugins/plugins/meta/flannel"
