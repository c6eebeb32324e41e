package conf

import (
	"net"
	"strings"
)

// CIDRList splits a list of networks as configs and environment
// variables write it: separated by commas, spaces or both.
func CIDRList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// WholeInternet reports whether a network is every address (0.0.0.0/0,
// ::/0, or "all"/"any" where a proxy accepts those words): trusting it is
// trusting no one in particular.
func WholeInternet(cidr string) bool {
	switch strings.ToLower(strings.TrimSpace(cidr)) {
	case "all", "any":
		return true
	}
	_, n, err := net.ParseCIDR(strings.TrimSpace(cidr))
	if err != nil {
		return false
	}
	ones, _ := n.Mask.Size()
	return ones == 0
}

// ValidCIDR reports whether s is a network in CIDR notation.
func ValidCIDR(s string) bool {
	_, _, err := net.ParseCIDR(strings.TrimSpace(s))
	return err == nil
}
