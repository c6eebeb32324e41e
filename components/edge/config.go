// Package edge declares the load-balancer tier in front of the services:
// Nginx or HAProxy with least-connections balancing, health checks,
// compression, a body-size limit, a first-line rate limit and no sticky
// sessions, rendered from typed inputs by pure functions.
package edge

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// Kind selects the proxy.
type Kind string

// The supported proxies.
const (
	KindNginx   Kind = "nginx"
	KindHAProxy Kind = "haproxy"
)

// Kinds lists the supported proxies, for error messages and config docs.
var Kinds = []Kind{KindNginx, KindHAProxy}

// ParseKind turns a config value into a Kind.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("edge kind %q: must be one of %v", s, Kinds)
}

// Backend is one upstream the edge forwards to.
type Backend struct {
	// Name names the upstream/backend block.
	Name string
	// PathPrefix routes requests with this prefix here; "/" is the default route.
	PathPrefix string
	// Servers are static "host:port" addresses (a Service's DNS name in
	// Kubernetes, loopback backends in tests).
	Servers []string
	// Discovery, when set, makes HAProxy resolve every pod behind a headless
	// Service and balance across them itself. Nginx (open source, Debian's
	// 1.22) resolves names only at start, so it always uses Servers.
	Discovery *Discovery
	// HealthPath is actively checked by HAProxy; Nginx checks passively.
	HealthPath string
}

// Discovery finds a backend's pods through DNS.
type Discovery struct {
	// FQDN is the headless Service's name, e.g. gateway-headless.ns.svc.cluster.local.
	FQDN string
	Port int
	// Slots is how many pods HAProxy can track: the backend's maxReplicas.
	Slots int
}

// Config is everything both renderers need.
type Config struct {
	// ListenPort is where the edge accepts traffic (unprivileged: the pods run as non-root).
	ListenPort int
	// ListenHost restricts the listener to one address (tests use loopback); empty means all.
	ListenHost string
	// RuntimeDir holds the pid file and temp files; it must be writable
	// (an emptyDir in Kubernetes, a temp dir in tests).
	RuntimeDir string
	// BodyLimitBytes answers 413 above it (the articles warn against huge JSON bodies).
	BodyLimitBytes int64
	// RateLimitPerSecond and RateBurst bound each client IP.
	RateLimitPerSecond int
	RateBurst          int
	// KeepaliveConnections are idle upstream connections kept per worker.
	KeepaliveConnections int
	// MaxFails and FailTimeoutSeconds drive the passive and active health checks.
	MaxFails           int
	FailTimeoutSeconds int
	// MaxConnections bounds concurrent connections per proxy process
	// (HAProxy needs about two file descriptors per connection).
	MaxConnections int
	// ProxyTimeoutSeconds bounds upstream connect/read/send.
	ProxyTimeoutSeconds int
	// Resolver is the DNS server HAProxy's discovery asks ("" reads /etc/resolv.conf).
	Resolver string
	Backends []Backend
}

// Validate checks the config before anything is rendered.
func (c Config) Validate() error {
	var errs []error
	if c.ListenPort < 1024 || c.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("listenPort %d: must be in 1024..65535 (the edge runs as non-root)", c.ListenPort))
	}
	if c.RuntimeDir == "" {
		errs = append(errs, errors.New("runtimeDir: required (a writable directory for pid and temp files)"))
	}
	if c.BodyLimitBytes <= 0 {
		errs = append(errs, fmt.Errorf("bodyLimitBytes %d: must be positive", c.BodyLimitBytes))
	}
	if c.RateLimitPerSecond <= 0 {
		errs = append(errs, fmt.Errorf("rateLimitPerSecond %d: must be positive", c.RateLimitPerSecond))
	}
	if c.RateBurst < 0 {
		errs = append(errs, fmt.Errorf("rateBurst %d: must not be negative", c.RateBurst))
	}
	if len(c.Backends) == 0 {
		errs = append(errs, errors.New("backends: at least one is required"))
	}
	defaults := 0
	for _, b := range c.Backends {
		if b.PathPrefix == "/" {
			defaults++
		}
		if b.Name == "" || b.PathPrefix == "" || b.PathPrefix[0] != '/' {
			errs = append(errs, fmt.Errorf("backend %q: needs a name and a path prefix starting with /", b.Name))
		}
		if len(b.Servers) == 0 && b.Discovery == nil {
			errs = append(errs, fmt.Errorf("backend %q: needs servers or discovery", b.Name))
		}
		for _, s := range b.Servers {
			if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
				errs = append(errs, fmt.Errorf("backend %q server %q: must be host:port", b.Name, s))
			}
		}
		if d := b.Discovery; d != nil && (d.FQDN == "" || d.Port <= 0 || d.Slots <= 0) {
			errs = append(errs, fmt.Errorf("backend %q discovery: needs fqdn, port and slots", b.Name))
		}
	}
	if len(c.Backends) > 0 && defaults != 1 {
		errs = append(errs, fmt.Errorf("backends: exactly one must have path prefix \"/\", found %d", defaults))
	}
	return errors.Join(errs...)
}

// withDefaults fills the tuning knobs a caller may leave at zero.
func (c Config) withDefaults() Config {
	if c.KeepaliveConnections == 0 {
		c.KeepaliveConnections = 64
	}
	if c.MaxFails == 0 {
		c.MaxFails = 3
	}
	if c.FailTimeoutSeconds == 0 {
		c.FailTimeoutSeconds = 10
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 4096
	}
	if c.ProxyTimeoutSeconds == 0 {
		c.ProxyTimeoutSeconds = 30
	}
	return c
}

// ordered returns the backends with the default route last, so more
// specific prefixes match first in HAProxy's first-match rules.
func (c Config) ordered() []Backend {
	var out []Backend
	var def Backend
	for _, b := range c.Backends {
		if b.PathPrefix == "/" {
			def = b
			continue
		}
		out = append(out, b)
	}
	return append(out, def)
}

func itoa(i int) string { return strconv.Itoa(i) }

// listen is "[host:]port" for the listen/bind directives.
func (c Config) listen() string {
	if c.ListenHost == "" {
		return itoa(c.ListenPort)
	}
	return net.JoinHostPort(c.ListenHost, itoa(c.ListenPort))
}
