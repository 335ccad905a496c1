//go:build tools

// Package tools names the main packages build.sh compiles, so `go mod tidy`
// keeps them (and only what they need) in go.mod and go.sum.
package tools

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "helm.sh/helm/v3/cmd/helm"
)
