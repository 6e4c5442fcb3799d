//go:build tools

// Package apiserver only pins the upstream kube-apiserver for the tests;
// nothing here is part of the product.
package apiserver

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
