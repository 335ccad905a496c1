//go:build tools

// Package tools names the main package build.sh compiles, so `go mod tidy`
// keeps it (and only what it needs) in go.mod and go.sum.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
