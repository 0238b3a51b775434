//go:build tools

// Package coredns pins the CoreDNS command the e2e tests build.
package coredns

import _ "github.com/coredns/coredns"
