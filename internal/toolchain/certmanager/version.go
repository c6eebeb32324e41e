//go:build scaleplane_certmanager

package main

import "github.com/cert-manager/cert-manager/pkg/util"

// versionString is the cert-manager release this binary was built from,
// stamped by the toolchain with -X into upstream's version variable (which
// also names the default ACME solver image's tag).
func versionString() string { return util.AppVersion }
