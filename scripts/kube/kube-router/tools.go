//go:build tools

// Package tools pins the command scripts/kube-up builds from this module.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
