package integration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/topology"
)

const (
	// slowedQuota is the CPU the slowed gateway pod keeps: 2 ms in every
	// 100 ms period (quota and period, as cgroup v2's cpu.max writes
	// them), so it answers, and passes its probes, but its requests wait
	// for the next slice. (At 5 ms the slowed pod still took 33.5 % of a
	// flow of 180 requests a second: too little concurrency for least
	// connections to tell the pods apart most of the time.)
	slowedQuota = "2000 100000"
	// balanceDuration is how long the clients send through the edge.
	balanceDuration = 6 * time.Second
	// balanceRatePerClient stays under the per-client limit (100/s in the
	// stacks), so every request is routed, none refused.
	balanceRatePerClient = 90
	// bucketRefill is how long an emptied per-client bucket takes to
	// fill again (the gateway's burst over its rate), with a margin.
	bucketRefill = 3 * time.Second
	// slowedShareMax is the share of requests above which the slowed pod
	// counts as balanced evenly rather than by least connections (an even
	// split over two pods is 0.5).
	slowedShareMax = 0.35
)

// checkLeastConnWithSlowedPod slows one of two gateway pods (its
// container's cgroup gets a CPU quota of 2 %), sends a steady flow through
// the HAProxy edge from the outside clients, and counts, from each pod's
// own request counter, who served what: least connections sends the slowed
// pod markedly fewer requests than the even half it would get in turn.
func checkLeastConnWithSlowedPod(t *testing.T, c *stackClient, a edgeAccess, clients []*outsideClient) {
	ctx := t.Context()
	pods := c.gatewayPodNames()
	require.Len(t, pods, 2, "the check needs exactly two gateway pods (dev's minimum)")
	slowed := pods[0]
	restore := throttlePod(t, slowed, "gateway")
	defer restore()

	// The clients come from the rate-limit check, which emptied the first
	// one's bucket: let every bucket refill (burst 200 at 100/s) first, so
	// the flow is routed, never refused.
	time.Sleep(bucketRefill)
	before := map[string]float64{}
	for _, p := range pods {
		before[p.name] = gatewayRequests(t, p.ip)
	}
	path := "/v1/users/" + randomUUID()
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- paced(ctx, cl.httpClient(a.roots, a.domain, nil), a.httpsURL(path), balanceRatePerClient, balanceDuration)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "the paced flow through the edge")
	}
	served := map[string]float64{}
	var total float64
	for _, p := range pods {
		served[p.name] = gatewayRequests(t, p.ip) - before[p.name]
		total += served[p.name]
	}
	require.Positive(t, total, "the gateway pods served the flow")
	share := served[slowed.name] / total
	t.Logf("least connections with %s slowed to %s of a CPU: %v requests, the slowed pod served %.0f (%.1f %%)",
		slowed.name, slowedQuota, served, served[slowed.name], 100*share)
	assert.Less(t, share, slowedShareMax, "HAProxy's leastconn sends the slowed pod markedly fewer requests than half")
}

// podRef is a pod's name and address.
type podRef struct{ name, ip string }

// gatewayPodNames lists the ready gateway pods, sorted by name.
func (c *stackClient) gatewayPodNames() []podRef {
	c.t.Helper()
	out := kubectlJSONPath(c.t, c.app, "get", "pods", "-l", "app.kubernetes.io/name=gateway", "--sort-by=.metadata.name",
		"-o", `jsonpath={range .items[?(@.status.podIP)]}{.metadata.name} {.status.podIP}{"\n"}{end}`)
	var pods []podRef
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if name, ip, ok := strings.Cut(line, " "); ok {
			pods = append(pods, podRef{name, ip})
		}
	}
	return pods
}

// gatewayRequests sums a gateway pod's http_server_requests_total, read
// from its admin port.
func gatewayRequests(t *testing.T, ip string) float64 {
	t.Helper()
	url := "http://" + net.JoinHostPort(ip, strconv.Itoa(topology.AdminHTTPPort)) + "/metrics"
	resp, err := httpClient.Get(url)
	require.NoError(t, err, "GET %s", url)
	defer func() { _ = resp.Body.Close() }()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "http_server_requests_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		require.NoError(t, err, "a counter line of %s: %q", url, line)
		sum += v
	}
	require.NoError(t, sc.Err(), "reading %s", url)
	return sum
}

// paced sends GETs at rate per second for d, eight at a time at most.
func paced(ctx context.Context, c *http.Client, url string, rate int, d time.Duration) error {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.After(d)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for {
		select {
		case <-end:
			wg.Wait()
			return first
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-tick.C:
			select {
			case sem <- struct{}{}:
			default:
				continue // eight in flight: skip a beat rather than queue
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				code, _, err := fetch(ctx, c, http.MethodGet, url, nil, nil)
				if err == nil && code != http.StatusNotFound {
					err = fmt.Errorf("GET %s: %d, want 404", url, code)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}()
		}
	}
}

// throttlePod sets a CPU quota of 2 % on the cgroup of a pod's
// container, found through /proc: the container's processes carry the
// pod's name as HOSTNAME and the binary's name as their command. The node's
// cgroups are v1 (cpu.cfs_quota_us, per 100 ms period) or v2 (cpu.max);
// both are handled. The returned function puts the old quota back.
func throttlePod(t *testing.T, pod podRef, comm string) func() {
	t.Helper()
	file, value := containerCPUQuota(t, pod.name, comm)
	old, err := os.ReadFile(file)
	require.NoError(t, err, "reading %s", file)
	require.NoError(t, os.WriteFile(file, []byte(value), 0o644), "slowing %s: writing %s", pod.name, file)
	return func() {
		assert.NoError(t, os.WriteFile(file, old, 0o644), "restoring %s's CPU quota", pod.name)
	}
}

// containerCPUQuota finds the CPU quota file of the process named comm
// whose HOSTNAME is the pod's name, and the value that slows it to
// slowedQuota.
func containerCPUQuota(t *testing.T, podName, comm string) (file, value string) {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err, "listing /proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		p := filepath.Join("/proc", e.Name())
		if c, err := os.ReadFile(filepath.Join(p, "comm")); err != nil || strings.TrimSpace(string(c)) != comm {
			continue
		}
		env, err := os.ReadFile(filepath.Join(p, "environ"))
		if err != nil || !strings.Contains("\x00"+string(env)+"\x00", "\x00HOSTNAME="+podName+"\x00") {
			continue
		}
		cg, err := os.ReadFile(filepath.Join(p, "cgroup"))
		require.NoError(t, err, "reading %s/cgroup", p)
		quota, period, _ := strings.Cut(slowedQuota, " ")
		for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				continue
			}
			// v1: the cpu controller's own hierarchy, at the period the
			// kubelet set (100 ms, as slowedQuota assumes).
			if slices.Contains(strings.Split(parts[1], ","), "cpu") {
				for _, mount := range []string{"/sys/fs/cgroup/" + parts[1], "/sys/fs/cgroup/cpu"} {
					f := filepath.Join(mount, parts[2], "cpu.cfs_quota_us")
					if pf, err := os.ReadFile(filepath.Join(mount, parts[2], "cpu.cfs_period_us")); err == nil {
						require.Equal(t, period, strings.TrimSpace(string(pf)), "%s: the CFS period slowedQuota assumes", mount)
						return f, quota
					}
				}
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
			if rel, ok := strings.CutPrefix(line, "0::"); ok {
				if f := filepath.Join("/sys/fs/cgroup", rel, "cpu.max"); fileExists(f) {
					return f, slowedQuota
				}
			}
		}
		t.Fatalf("%s (pod %s) has no CPU quota file in its cgroups: %q", p, podName, cg)
	}
	t.Fatalf("no %s process of pod %s on this node", comm, podName)
	return "", ""
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
