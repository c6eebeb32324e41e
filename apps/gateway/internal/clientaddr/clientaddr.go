// Package clientaddr decides which address a request came from: the
// connection's peer, unless that peer is a proxy the stack trusts (the
// edge's network, TRUSTED_PROXY_CIDRS), in which case X-Forwarded-For says
// whom the proxy served. The rate limit's per-client buckets, the logs and
// the server span all key on this one decision, made once per request
// where the request enters the service (kit.HTTPHandler with
// kit.ResolveClient(Resolver.Resolve)) and read back with Of.
//
// X-Forwarded-For is a list each proxy appends its own peer to, so only its
// right end was written by hops we trust; everything left of the first
// untrusted address was written by that untrusted party (the client
// itself) and may be forged. Resolve therefore walks the list from the
// right, past addresses that are themselves trusted proxies, and takes the
// first one that is not.
package clientaddr

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/scaleplane/scaleplane/apps/kit"
)

// Resolver resolves client addresses behind a fixed set of trusted proxy
// networks, parsed once at start-up.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a resolver trusting X-Forwarded-For only from peers inside
// trusted; with none it trusts nobody and every request's client is its
// connection's peer.
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

// Resolve returns r's client address, in its canonical text form (IPv4
// dotted, IPv6 lower-case compressed, an IPv4-mapped IPv6 address as IPv4),
// so that one client never gets two rate-limit buckets for two spellings:
//   - the peer is not trusted (or nothing is): the peer, whatever the
//     header says;
//   - the peer is trusted: the rightmost X-Forwarded-For entry that is not
//     itself a trusted proxy, or the leftmost entry when every one is
//     (a client inside the trusted network, come through the edge);
//   - the header is absent, or an entry reached on the way is not an
//     address: the peer. Behind a misbehaving proxy the client shares the
//     proxy's bucket, which limits too much rather than too little.
//
// A RemoteAddr that is not host:port (a handler called directly in a test)
// is taken whole.
func (res *Resolver) Resolve(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(res.trusted) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if !res.trusts(peer) {
		return canonical(peer, host)
	}
	var last netip.Addr // the leftmost trusted entry walked so far
	var lastText string
	xff := r.Header["X-Forwarded-For"]
	// Repeated header lines are one list in order (RFC 9110, 5.3).
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			entry := list
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				entry, list = list[j+1:], list[:j]
			} else {
				list = ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue // an empty list element, which the syntax allows
			}
			addr, ok := parse(entry)
			if !ok {
				return canonical(peer, host)
			}
			if !res.trusts(addr) {
				return canonical(addr, entry)
			}
			last, lastText = addr, entry
		}
	}
	if last.IsValid() {
		return canonical(last, lastText)
	}
	return canonical(peer, host)
}

// Of returns the client address resolved for r where it entered the
// service (kit.ClientAddress); for a request that was not resolved, the connection's peer host, so that a
// handler tested on its own still keys on some address and never on "".
func Of(r *http.Request) string {
	if addr := kit.ClientAddress(r.Context()); addr != "" {
		return addr
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// trusts reports whether a is inside a trusted network. An IPv4-mapped
// IPv6 address is an IPv4 peer on a dual-stack socket and is matched as
// IPv4; a zone names the local interface, not the peer, and is ignored.
func (res *Resolver) trusts(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range res.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parse reads one X-Forwarded-For entry: an address, or an address with a
// port (1.2.3.4:5678, [2001:db8::1]:443), which some proxies write.
func parse(entry string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(entry); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(entry); err == nil {
		return ap.Addr(), true
	}
	return netip.Addr{}, false
}

// canonical is a's canonical text, reusing text (a substring of the header
// or of RemoteAddr) when it already is: the common case then allocates
// nothing per request.
func canonical(a netip.Addr, text string) string {
	a = a.Unmap().WithZone("")
	var buf [64]byte
	b := a.AppendTo(buf[:0])
	if string(b) == text {
		return text
	}
	return string(b)
}
