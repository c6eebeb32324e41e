// Package edge declares the load-balancer tier in front of the services:
// Nginx or HAProxy terminating TLS (or taking TLS terminated by the cloud
// load balancer), redirecting plain HTTP, routing only the public API's
// path prefixes, keeping the client's address (PROXY protocol, then an
// X-Forwarded-For it sets itself), with health checks, compression, a
// body-size limit, a first-line rate limit and no sticky sessions,
// rendered from typed inputs by pure functions.
//
// How each proxy balances, plainly: HAProxy resolves every pod behind a
// headless Service and balances across them by least connections. Nginx
// (open source, Debian's 1.22) cannot re-resolve pods, so its one upstream
// server is the Service's ClusterIP: kube-proxy picks a pod for each new
// upstream connection and nginx reuses its keepalive connections, so the
// spread is per connection, not per request and not by load.
package edge

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
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

// DefaultHSTSMaxAgeSeconds is two years, Mozilla's recommendation: long
// enough that browsers stop trying plain HTTP at all.
const DefaultHSTSMaxAgeSeconds = 63072000

// InternalPaths are path segments never served through the public
// listeners: the services' metrics, profiling and probes. A request with
// one of them as any path segment (/metrics, /v1/debug/pprof/, ...) gets
// 404 before routing, whatever the routes say, so a route of "/" cannot
// expose them.
var InternalPaths = []string{"metrics", "debug", "healthz", "readyz", "livez"}

// TLS 1.2 ciphers of Mozilla's "intermediate" profile (ECDHE only: no
// DHE, which would need our own dhparam file). TLS 1.3's suites are
// OpenSSL's defaults, which are the profile's.
const (
	tls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
		"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" +
		"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
	tls13Suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
)

// Backend is one upstream the edge forwards to.
type Backend struct {
	// Name names the upstream/backend block.
	Name string
	// PathPrefix routes requests with this prefix here ("/v1/" for the
	// gateway). A request no prefix matches gets 404; "/" is allowed and
	// catches the rest, but never the InternalPaths.
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

// TLSFiles are the certificate chain and key the edge serves on its
// https listener. HAProxy reads the key from CertFile+".key" (its
// ssl-load-extra-files default), so KeyFile must be exactly that for it.
type TLSFiles struct {
	// CertFile is the PEM chain, leaf first.
	CertFile string
	// KeyFile is the PEM private key.
	KeyFile string
}

// ProxyProtocol makes the public listeners expect a PROXY protocol (v1 or
// v2) header, whose source address is then the client's: the cloud load
// balancer sends it so the address survives its own connection.
type ProxyProtocol struct {
	Enabled bool
	// TrustedCIDRs are the networks the load balancer connects from; only
	// their PROXY headers are believed (nginx: set_real_ip_from; HAProxy
	// refuses connections from anywhere else).
	TrustedCIDRs []string
}

// Config is everything both renderers need.
type Config struct {
	// ListenHost restricts the listeners to one address (tests use loopback); empty means all.
	ListenHost string
	// HTTPSPort is the "https" listener: TLS (TLS set) or plain HTTP behind
	// a load balancer that terminated TLS (TLSTerminatedUpstream); HSTS and
	// X-Forwarded-Proto https either way. Unprivileged: the pods run as non-root.
	HTTPSPort int
	// HTTPPort is the "http" listener: it only answers a permanent redirect
	// to https://<host><uri>.
	HTTPPort int
	// StatusPort serves /healthz for the kubelet and, on HAProxy, the
	// Prometheus exporter at /metrics; it is never behind the load balancer.
	StatusPort int
	// TLS is the certificate the edge terminates TLS with. Exactly one of
	// TLS and TLSTerminatedUpstream is required: TLS at the edge is not optional.
	TLS *TLSFiles
	// TLSTerminatedUpstream says the cloud load balancer terminated TLS
	// (an AWS NLB with an ACM certificate) and sends plain HTTP to HTTPSPort.
	TLSTerminatedUpstream bool
	// HSTSMaxAgeSeconds is Strict-Transport-Security's max-age; 0 takes
	// DefaultHSTSMaxAgeSeconds.
	HSTSMaxAgeSeconds int
	// ProxyProtocol applies to both public listeners.
	ProxyProtocol ProxyProtocol
	// RuntimeDir holds the pid file and temp files; it must be writable
	// (an emptyDir in Kubernetes, a temp dir in tests).
	RuntimeDir string
	// BodyLimitBytes answers 413 above it (the articles warn against huge JSON bodies).
	BodyLimitBytes int64
	// RateLimitPerSecond and RateBurst bound each client address (the
	// PROXY protocol's when enabled, else the connection's).
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

// validPrefix is a path prefix both proxies take literally: no spaces,
// quotes, braces or regex-looking characters that would change a location.
var validPrefix = regexp.MustCompile(`^/[A-Za-z0-9._~/-]*$`)

// Validate checks the config before anything is rendered.
func (c Config) Validate() error {
	var errs []error
	ports := map[int]string{}
	for _, p := range []struct {
		name string
		v    int
	}{{"httpsPort", c.HTTPSPort}, {"httpPort", c.HTTPPort}, {"statusPort", c.StatusPort}} {
		if p.v < 1024 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: must be in 1024..65535 (the edge runs as non-root)", p.name, p.v))
			continue
		}
		if other, ok := ports[p.v]; ok {
			errs = append(errs, fmt.Errorf("%s %d: already used by %s; the three listeners need distinct ports", p.name, p.v, other))
		}
		ports[p.v] = p.name
	}
	switch {
	case c.TLS == nil && !c.TLSTerminatedUpstream:
		errs = append(errs, errors.New("tls: required: set TLS (certificate files) or TLSTerminatedUpstream (the load balancer terminates TLS); plain HTTP at the edge is not allowed"))
	case c.TLS != nil && c.TLSTerminatedUpstream:
		errs = append(errs, errors.New("tls: set exactly one of TLS (certificate files) and TLSTerminatedUpstream, not both"))
	case c.TLS != nil && (c.TLS.CertFile == "" || c.TLS.KeyFile == ""):
		errs = append(errs, fmt.Errorf("tls: certFile %q and keyFile %q: both are required", c.TLS.CertFile, c.TLS.KeyFile))
	}
	if c.HSTSMaxAgeSeconds < 0 {
		errs = append(errs, fmt.Errorf("hstsMaxAgeSeconds %d: must not be negative (0 takes %d)", c.HSTSMaxAgeSeconds, DefaultHSTSMaxAgeSeconds))
	}
	if pp := c.ProxyProtocol; pp.Enabled {
		if len(pp.TrustedCIDRs) == 0 {
			errs = append(errs, errors.New("proxyProtocol.trustedCidrs: at least one network the load balancer connects from is required when enabled"))
		}
		for _, cidr := range pp.TrustedCIDRs {
			if _, _, err := net.ParseCIDR(cidr); err != nil {
				errs = append(errs, fmt.Errorf("proxyProtocol.trustedCidrs %q: must be a CIDR such as 10.0.0.0/16", cidr))
			}
		}
	} else if len(pp.TrustedCIDRs) > 0 {
		errs = append(errs, fmt.Errorf("proxyProtocol.trustedCidrs %v: set only when proxyProtocol.enabled", pp.TrustedCIDRs))
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
	prefixes := map[string]string{}
	for _, b := range c.Backends {
		if b.Name == "" || !validPrefix.MatchString(b.PathPrefix) {
			errs = append(errs, fmt.Errorf("backend %q path prefix %q: needs a name and a path prefix of /, letters, digits and ._~- starting with /", b.Name, b.PathPrefix))
		}
		if other, ok := prefixes[b.PathPrefix]; ok {
			errs = append(errs, fmt.Errorf("backend %q path prefix %q: already routed to %q", b.Name, b.PathPrefix, other))
		}
		prefixes[b.PathPrefix] = b.Name
		if internal := internalSegment(b.PathPrefix); internal != "" {
			errs = append(errs, fmt.Errorf("backend %q path prefix %q: contains the internal path %q, which the edge never serves", b.Name, b.PathPrefix, internal))
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
	return errors.Join(errs...)
}

// internalSegment returns the first of InternalPaths that is a segment of p.
func internalSegment(p string) string {
	for _, seg := range strings.Split(p, "/") {
		for _, ip := range InternalPaths {
			if strings.EqualFold(seg, ip) {
				return ip
			}
		}
	}
	return ""
}

// internalPathRegex matches a path with one of InternalPaths as any
// segment; both proxies use it, case-insensitively, on the normalized path.
func internalPathRegex() string {
	return "(^|/)(" + strings.Join(InternalPaths, "|") + ")(/|$)"
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
	if c.HSTSMaxAgeSeconds == 0 {
		c.HSTSMaxAgeSeconds = DefaultHSTSMaxAgeSeconds
	}
	return c
}

// ordered returns the backends longest prefix first, so more specific
// prefixes match first in HAProxy's first-match rules (nginx picks the
// longest prefix itself).
func (c Config) ordered() []Backend {
	out := append([]Backend(nil), c.Backends...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && len(out[j].PathPrefix) > len(out[j-1].PathPrefix); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// listen is "[host:]port" for nginx's listen directive.
func (c Config) listen(port int) string {
	if c.ListenHost == "" {
		return itoa(port)
	}
	return net.JoinHostPort(c.ListenHost, itoa(port))
}

// hsts is the Strict-Transport-Security value.
func (c Config) hsts() string { return "max-age=" + itoa(c.HSTSMaxAgeSeconds) }
