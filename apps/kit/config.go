// Package kit is what the three sample services share: configuration from
// the environment, telemetry (traces, metrics, JSON logs), health and a
// bounded graceful shutdown. It is deliberately small: anything that belongs
// to one service lives in that service.
package kit

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads settings from environment variables and collects every problem,
// so that a misconfigured pod fails once listing all of them instead of
// crash-looping through them one restart at a time.
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
}

// NewEnv reads from lookup; nil means the process environment. Tests pass a
// map's lookup so that they never mutate the process environment.
func NewEnv(lookup func(string) (string, bool)) *Env {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return &Env{lookup: lookup}
}

// MapEnv returns an Env reading from m, for tests and for services embedded
// in-process.
func MapEnv(m map[string]string) *Env {
	return NewEnv(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

func (e *Env) get(name string) (string, bool) {
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (e *Env) fail(name, value, allowed string) {
	e.errs = append(e.errs, fmt.Errorf("%s=%q: %s", name, value, allowed))
}

// String returns the variable or def when unset.
func (e *Env) String(name, def string) string {
	if v, ok := e.get(name); ok {
		return v
	}
	return def
}

// Required returns the variable and records an error when it is unset.
func (e *Env) Required(name, meaning string) string {
	v, ok := e.get(name)
	if !ok {
		e.fail(name, "", "is required: "+meaning)
	}
	return v
}

// OneOf returns the variable when it is one of allowed, else records an error.
func (e *Env) OneOf(name, def string, allowed ...string) string {
	v := e.String(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.fail(name, v, "must be one of "+strings.Join(allowed, ", "))
	return def
}

// List splits a comma-separated variable, dropping empty items.
func (e *Env) List(name string, def []string) []string {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	if len(out) == 0 {
		e.fail(name, v, "must list at least one comma-separated item")
		return def
	}
	return out
}

// Addrs is List whose items must each be host:port.
func (e *Env) Addrs(name string, def []string) []string {
	out := e.List(name, def)
	for _, a := range out {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			e.fail(name, strings.Join(out, ","), "each item must be host:port, e.g. 127.0.0.1:9092")
			return def
		}
	}
	return out
}

// CIDRs is a comma-separated list of networks, such as 10.244.0.0/16 or
// fd00::/8; unset or empty is none. A network with host bits set
// (10.244.1.0/16) is refused rather than widened or narrowed silently: it is
// a typo of one of two networks, and which one decides whom a service
// trusts. So is an IPv4 network written in IPv6 (::ffff:10.0.0.0/104),
// which would never contain the IPv4 peers a listener reports.
func (e *Env) CIDRs(name string) []netip.Prefix {
	v, ok := e.get(name)
	if !ok {
		return nil
	}
	var out []netip.Prefix
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		switch {
		case err != nil:
			e.fail(name, v, fmt.Sprintf("%q is not a network: each comma-separated item must be a CIDR such as 10.244.0.0/16 or fd00::/8", item))
			return nil
		case p.Addr().Is4In6():
			e.fail(name, v, fmt.Sprintf("%q is an IPv4 network written as IPv6: write it as IPv4, e.g. %s", item,
				netip.PrefixFrom(p.Addr().Unmap(), max(0, p.Bits()-96)).Masked()))
			return nil
		case p != p.Masked():
			e.fail(name, v, fmt.Sprintf("%q has host bits set: write the network, e.g. %s", item, p.Masked()))
			return nil
		}
		out = append(out, p)
	}
	return out
}

// Addr returns a listen or dial address of the form [host]:port.
func (e *Env) Addr(name, def string) string {
	v := e.String(name, def)
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		e.fail(name, v, "must be [host]:port, e.g. :8080 or 127.0.0.1:8080")
		return def
	}
	return v
}

// Int returns an integer within [lo, hi].
func (e *Env) Int(name string, def, lo, hi int) int {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		e.fail(name, v, fmt.Sprintf("must be an integer from %d to %d", lo, hi))
		return def
	}
	return n
}

// Float returns a number within [lo, hi].
func (e *Env) Float(name string, def, lo, hi float64) float64 {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < lo || f > hi {
		e.fail(name, v, fmt.Sprintf("must be a number from %g to %g", lo, hi))
		return def
	}
	return f
}

// Duration returns a Go duration (300ms, 5s, 1m) within [lo, hi].
func (e *Env) Duration(name string, def, lo, hi time.Duration) time.Duration {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		e.fail(name, v, fmt.Sprintf("must be a duration from %s to %s, e.g. 500ms or 5s", lo, hi))
		return def
	}
	return d
}

// Bool accepts true/false/1/0.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, v, "must be true or false")
		return def
	}
	return b
}

// Err returns every problem found so far, one per line, or nil.
func (e *Env) Err() error {
	if len(e.errs) == 0 {
		return nil
	}
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return fmt.Errorf("invalid configuration:\n  %s", strings.Join(msgs, "\n  "))
}
