package kube

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	dnsLabel    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	imageDigest = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
)

// DNSLabel reports whether s is an RFC 1123 label, what Kubernetes accepts
// as a namespace or a Service name (length limits are the caller's).
func DNSLabel(s string) bool { return dnsLabel.MatchString(s) }

// ImageTagged reports whether ref pins a tag other than latest, or a digest:
// an untagged or latest image could change under a running Deployment.
func ImageTagged(ref string) bool {
	if ref == "" {
		return false
	}
	if imageDigest.MatchString(ref) {
		return true
	}
	last := ref[strings.LastIndexByte(ref, '/')+1:]
	i := strings.LastIndexByte(last, ':')
	return i > 0 && i < len(last)-1 && last[i+1:] != "latest"
}

// CheckName refuses a component name that is not a DNS label of at most
// maxLen characters; components derive object names from it with
// suffixes, so each sets the bound that keeps those under 63.
func CheckName(name string, maxLen int) error {
	if len(name) <= maxLen && DNSLabel(name) {
		return nil
	}
	return fmt.Errorf("name %q: must be a DNS label of at most %d characters", name, maxLen)
}

// CheckLabel refuses a value of field (a namespace, a caller's name) that
// is not a DNS label.
func CheckLabel(field, value string) error {
	if DNSLabel(value) {
		return nil
	}
	return fmt.Errorf("%s %q: must be a DNS label", field, value)
}

// CheckImage refuses an image reference of field that pins neither a tag
// other than latest nor a digest.
func CheckImage(field, ref string) error {
	if ImageTagged(ref) {
		return nil
	}
	return fmt.Errorf("%s %q: must carry an explicit tag or digest other than latest", field, ref)
}
