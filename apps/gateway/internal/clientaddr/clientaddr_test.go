package clientaddr

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/scaleplane/scaleplane/apps/kit"
)

func prefixes(t *testing.T, cidrs ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

// TestResolve: the header counts only from a trusted peer, and then only
// its right end, written by hops we trust.
func TestResolve(t *testing.T) {
	// The embedded cluster's pod network, where the edge pods live, and an
	// IPv6 one for the dual-stack cases.
	edgeNets := []string{"10.244.0.0/16", "fd00:10:244::/56"}
	const edge = "10.244.0.7:41000" // an edge pod
	for _, tc := range []struct {
		name    string
		trusted []string
		peer    string
		xff     []string // header lines, in order; nil for none
		want    string
	}{
		{name: "trusted peer, the one address the edge wrote", trusted: edgeNets, peer: edge,
			xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "trusted peer, no header: the peer", trusted: edgeNets, peer: edge,
			want: "10.244.0.7"},
		{name: "forged chain, the edge appended a trusted hop: the client's own left part never wins", trusted: edgeNets, peer: edge,
			xff: []string{"6.6.6.6, 10.244.3.9"}, want: "6.6.6.6"},
		{name: "forged chain, the edge appended the client it saw", trusted: edgeNets, peer: edge,
			xff: []string{"6.6.6.6, 198.51.100.4"}, want: "198.51.100.4"},
		{name: "forged chain, 10.0.0.9 outside the trusted network is the rightmost untrusted", trusted: edgeNets, peer: edge,
			xff: []string{"6.6.6.6, 10.0.0.9"}, want: "10.0.0.9"},
		{name: "forged chain over two header lines, read as one list", trusted: edgeNets, peer: edge,
			xff: []string{"6.6.6.6", "198.51.100.4, 10.244.1.2"}, want: "198.51.100.4"},
		{name: "every entry a trusted hop: the leftmost, the client inside the network", trusted: edgeNets, peer: edge,
			xff: []string{"10.244.5.5, 10.244.1.2"}, want: "10.244.5.5"},
		{name: "untrusted peer: the header is ignored", trusted: edgeNets, peer: "198.51.100.20:5555",
			xff: []string{"203.0.113.9"}, want: "198.51.100.20"},
		{name: "untrusted peer naming a trusted address: ignored", trusted: edgeNets, peer: "198.51.100.20:5555",
			xff: []string{"10.244.0.1"}, want: "198.51.100.20"},
		{name: "no trusted networks: always the peer, even an edge pod's", trusted: nil, peer: edge,
			xff: []string{"203.0.113.9"}, want: "10.244.0.7"},
		{name: "IPv6 trusted peer, IPv6 client in canonical form", trusted: edgeNets, peer: "[fd00:10:244::5]:41000",
			xff: []string{"2001:DB8:0:0::1"}, want: "2001:db8::1"},
		{name: "IPv6 trusted peer, IPv4 client", trusted: edgeNets, peer: "[fd00:10:244::5]:41000",
			xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "IPv6 untrusted peer", trusted: edgeNets, peer: "[2001:db8::66]:41000",
			xff: []string{"203.0.113.9"}, want: "2001:db8::66"},
		{name: "IPv4-mapped trusted peer of a dual-stack socket is matched as IPv4", trusted: edgeNets, peer: "[::ffff:10.244.0.7]:41000",
			xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "IPv4-mapped client is one client with its IPv4 spelling", trusted: edgeNets, peer: edge,
			xff: []string{"::ffff:203.0.113.9"}, want: "203.0.113.9"},
		{name: "an entry with a port", trusted: edgeNets, peer: edge,
			xff: []string{"[2001:db8::1]:443"}, want: "2001:db8::1"},
		{name: "garbage header: the peer", trusted: edgeNets, peer: edge,
			xff: []string{"<script>"}, want: "10.244.0.7"},
		{name: "garbage reached after a trusted hop: the peer", trusted: edgeNets, peer: edge,
			xff: []string{"unknown, 10.244.1.2"}, want: "10.244.0.7"},
		{name: "garbage left of the client is never read", trusted: edgeNets, peer: edge,
			xff: []string{"not an address, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "empty list elements are skipped", trusted: edgeNets, peer: edge,
			xff: []string{" , 203.0.113.9 ,, "}, want: "203.0.113.9"},
		{name: "a header of nothing: the peer", trusted: edgeNets, peer: edge,
			xff: []string{""}, want: "10.244.0.7"},
		{name: "RemoteAddr without a port is taken whole", trusted: edgeNets, peer: "garbage",
			xff: []string{"203.0.113.9"}, want: "garbage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/me", nil)
			r.RemoteAddr = tc.peer
			if tc.xff != nil {
				r.Header["X-Forwarded-For"] = tc.xff
			}
			if got := New(prefixes(t, tc.trusted...)).Resolve(r); got != tc.want {
				t.Errorf("Resolve(peer %s, X-Forwarded-For %q, trusted %v) = %q, want %q", tc.peer, tc.xff, tc.trusted, got, tc.want)
			}
		})
	}
}

// TestOfReadsTheResolvedClient: handlers see the address resolved where
// the request entered (kit.ClientAddress), and a request that was never
// resolved is keyed on its peer, never on "".
func TestOfReadsTheResolvedClient(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	if of := Of(r); of != "127.0.0.1" {
		t.Errorf("Of on a request never resolved = %q, want its peer 127.0.0.1", of)
	}
	r = r.WithContext(kit.WithClientAddress(r.Context(), "192.0.2.1"))
	if of := Of(r); of != "192.0.2.1" {
		t.Errorf("Of on a resolved request = %q, want the resolved 192.0.2.1", of)
	}
	r.RemoteAddr = "pipe"
	r = r.WithContext(kit.WithClientAddress(r.Context(), ""))
	if of := Of(r); of != "pipe" {
		t.Errorf("Of with a RemoteAddr that is not host:port = %q, want it whole", of)
	}
}

// TestResolveAllocatesNothingForCanonicalText: the gateway resolves every
// request, so the common case (the edge's one canonical address) must not
// cost an allocation.
func TestResolveAllocatesNothingForCanonicalText(t *testing.T) {
	res := New(prefixes(t, "10.244.0.0/16"))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.244.0.7:41000"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if n := testing.AllocsPerRun(100, func() { _ = res.Resolve(r) }); n != 0 {
		t.Errorf("Resolve allocated %v times per request, want 0", n)
	}
}

func BenchmarkResolve(b *testing.B) {
	res := New([]netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")})
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.244.0.7:41000"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	b.ReportAllocs()
	for b.Loop() {
		_ = res.Resolve(r)
	}
}
