package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// clientNet is the range the outside clients' addresses come from:
// TEST-NET-2 (RFC 5737), documentation space that is on no network this
// machine can reach, so a client address can never be confused with a
// pod's, a Service's or the host's own.
var clientNet = netip.MustParsePrefix("198.51.100.0/24")

// outsideClient is a client of the edge with an address of its own, the
// way a user on the internet reaches a load balancer: a network namespace
// joined to this host by a veth pair, whose packets arrive on the host from
// outside (they cross PREROUTING, where kube-proxy's NodePort rules see
// them as external traffic) instead of leaving from the host's own stack,
// which kube-proxy would masquerade.
//
// The namespace is held by a process of its own (`unshare --net sleep`),
// not named under /run/netns: `ip netns add` turns /run/netns into a
// shared bind mount, and the pods' network namespaces the CNI plugin
// mounts there afterwards can then no longer be removed (unlinkat: device
// or resource busy), which leaves every later pod stuck Terminating.
type outsideClient struct {
	// Addr is the client's address, the one the edge and the gateway must see.
	Addr netip.Addr
	// netns is the holder process's network namespace, /proc/<pid>/ns/net.
	netns string
	// transports are the client's HTTP transports: their idle connections
	// are sockets in the namespace, which would keep it (and its veth
	// pair and routes) alive after the holder exits.
	mu         sync.Mutex
	transports []*http.Transport
}

// nextLink numbers the clients' /30 links across the whole run, so a
// client never takes the addresses of one an earlier test made.
var nextLink atomic.Int32

// newOutsideClients creates n clients with distinct addresses in
// clientNet, each in its own network namespace with a /30 link to the host,
// and removes them when the test ends (the veth pair goes with the
// namespace when its holder exits). The interface names carry a random
// suffix so concurrent runs never collide.
func newOutsideClients(t *testing.T, n int) []*outsideClient {
	t.Helper()
	suffix := uniqueName("c")[2:] // six hex digits
	var out []*outsideClient
	for range n {
		i := int(nextLink.Add(1)) - 1
		require.Less(t, i, 64, "the run's clients fit the /30 links of clientNet")
		c := &outsideClient{}
		// The holder says "ready" from inside its new namespace, then
		// sleeps there: no link is made before the namespace exists.
		holder := exec.Command("unshare", "--net", "sh", "-c", "echo ready; exec sleep infinity")
		stdout, err := holder.StdoutPipe()
		require.NoError(t, err, "the holder's output")
		require.NoError(t, holder.Start(), "starting the holder of client %d's network namespace", i)
		t.Cleanup(func() {
			c.mu.Lock()
			for _, tr := range c.transports {
				tr.CloseIdleConnections()
			}
			c.mu.Unlock()
			_ = holder.Process.Kill()
			_ = holder.Wait()
		})
		pid := strconv.Itoa(holder.Process.Pid)
		netns := "/proc/" + pid + "/ns/net"
		line, err := bufio.NewReader(stdout).ReadString('\n')
		require.NoError(t, err, "the holder of client %d's namespace starts", i)
		require.Equal(t, "ready\n", line, "the holder is in its namespace")
		host, peer := fmt.Sprintf("sph%s%d", suffix, i), fmt.Sprintf("spp%s%d", suffix, i)
		base := clientNet.Addr().As4()
		hostAddr := netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(4*i + 1)})
		clientAddr := hostAddr.Next()
		inNS := func(args ...string) []string { return append([]string{"nsenter", "-t", pid, "-n", "ip"}, args...) }
		for _, args := range [][]string{
			{"ip", "link", "add", host, "type", "veth", "peer", "name", peer, "netns", pid},
			{"ip", "addr", "add", hostAddr.String() + "/30", "dev", host},
			{"ip", "link", "set", host, "up"},
			inNS("link", "set", "lo", "up"),
			inNS("addr", "add", clientAddr.String()+"/30", "dev", peer),
			inNS("link", "set", peer, "up"),
			inNS("route", "add", "default", "via", hostAddr.String()),
		} {
			out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
			require.NoError(t, err, "%s: %s", strings.Join(args, " "), out)
		}
		c.Addr, c.netns = clientAddr, netns
		out = append(out, c)
	}
	return out
}

// dial opens a connection from inside the client's network namespace. The
// socket is created by a goroutine locked to an OS thread that has joined
// the namespace, so the socket belongs to it; the thread then rejoins this
// process's namespace before it is unlocked (it may be the main thread,
// whose namespace /proc/self shows and every child process inherits), and
// the connection, once made, works from any thread.
func (c *outsideClient) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The thread goes back to this process's namespace once the socket
		// exists; if it cannot, it stays locked and dies with the goroutine,
		// so no other goroutine ever runs in the client's namespace.
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer func() { _ = home.Close() }()
		f, err := os.Open(c.netns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer func() { _ = f.Close() }()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("joining %s: %w", c.netns, err)}
			return
		}
		d := net.Dialer{Timeout: 10 * time.Second}
		conn, err := d.DialContext(ctx, network, addr)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}

// httpClient is an HTTP client whose connections come from this client's
// address. TLS trusts roots (the stack's CA) and names serverName (SNI and
// verification), whatever address it dials; redirects are not followed,
// so a test sees them.
func (c *outsideClient) httpClient(roots *x509.CertPool, serverName string, tlsCfg func(*tls.Config)) *http.Client {
	cfg := &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if tlsCfg != nil {
		tlsCfg(cfg)
	}
	tr := &http.Transport{
		DialContext:         c.dial,
		TLSClientConfig:     cfg,
		MaxIdleConnsPerHost: 16,
	}
	c.mu.Lock()
	c.transports = append(c.transports, tr)
	c.mu.Unlock()
	return &http.Client{
		Timeout:       15 * time.Second,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
