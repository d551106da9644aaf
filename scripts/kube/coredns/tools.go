//go:build tools

// Package tools pins the command scripts/kube-up builds from this module.
package tools

import _ "github.com/coredns/coredns"
