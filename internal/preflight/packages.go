package preflight

// Job is one of the things a user asks of this repository, each needing a
// different part of the machine.
type Job string

// The jobs, as the Makefile names them.
const (
	// Up is `make up`: the embedded cluster, the images, the real engine.
	Up Job = "up"
	// Test is `make test`: everything Up needs (the integration suites
	// deploy on the embedded cluster) and the servers the tests start.
	Test Job = "test"
	// Bench is `make bench`: the servers the benchmarks start and the load
	// generator.
	Bench Job = "bench"
)

// Jobs lists every job, in the order the help shows them.
var Jobs = []Job{Up, Test, Bench}

// Package is a Debian package one or more jobs need.
type Package struct {
	// Name is the Debian package's name.
	Name string
	// Why says what uses it, for the preflight's report and the README.
	Why string
	// Jobs are the jobs that need it.
	Jobs []Job
	// Services are the init scripts Debian starts when the package is
	// installed. scaleplane starts its own copies (the tests on free
	// loopback ports, the node its own containerd), so these are stopped
	// after an install, as they would otherwise hold ports and memory.
	Services []string
}

var (
	// node: every job deploys on the embedded cluster (the benchmarks time
	// `pulumi up` against server-side apply on it).
	node  = []Job{Up, Test, Bench}
	tests = []Job{Test, Bench}
)

// Packages is the one list of the machine's Debian packages: `make up`,
// `make test`, `make bench` and .ci/run all install from it, through the
// preflight command.
var Packages = []Package{
	// The embedded node (internal/cluster).
	{Name: "containerd", Why: "the embedded node's container runtime; ctr loads the images", Jobs: node, Services: []string{"containerd"}},
	{Name: "runc", Why: "runs the node's containers", Jobs: node},
	{Name: "containernetworking-plugins", Why: "the node's pod network (bridge, host-local, portmap, loopback)", Jobs: node},
	{Name: "iptables", Why: "kube-proxy's Services and the pod network's masquerade", Jobs: node},
	{Name: "conntrack", Why: "kube-proxy clears stale Service connections", Jobs: node},
	{Name: "iproute2", Why: "the node's bridge and the tests' network namespaces", Jobs: node},
	// The images (internal/images) and the tool cache (internal/toolchain).
	{Name: "debootstrap", Why: "the Debian base of the nginx, HAProxy, Redis, PostgreSQL, PgBouncer and JRE images", Jobs: node},
	{Name: "maven", Why: "fetches Kafka's jars from Maven Central into the tool cache", Jobs: node},
	{Name: "openjdk-17-jre-headless", Why: "runs Maven and the tests' KRaft Kafka", Jobs: node},
	// The real servers the tests and benchmarks start (internal/realserver).
	{Name: "nginx-light", Why: "the rendered nginx edge, proven by nginx -t and served", Jobs: tests, Services: []string{"nginx"}},
	{Name: "haproxy", Why: "the rendered HAProxy edge, proven by haproxy -c and served", Jobs: tests, Services: []string{"haproxy"}},
	{Name: "redis-server", Why: "the Redis Cluster of the service and data-tier tests", Jobs: tests, Services: []string{"redis-server"}},
	{Name: "redis-tools", Why: "redis-cli forms the tests' Redis Cluster", Jobs: tests},
	{Name: "postgresql", Why: "the Postgres primary and replica of the tests", Jobs: tests, Services: []string{"postgresql"}},
	{Name: "pgbouncer", Why: "the pooler in front of the tests' Postgres", Jobs: tests, Services: []string{"pgbouncer"}},
	{Name: "prometheus", Why: "the rendered alert rules and scrape config, loaded by a real Prometheus", Jobs: tests, Services: []string{"prometheus"}},
	{Name: "graphviz", Why: "dot draws render's topology picture", Jobs: []Job{Test}},
	{Name: "wrk", Why: "the benchmarks' closed-loop load", Jobs: []Job{Bench}},
}

// PackagesFor returns the names of the packages job needs, in list order.
func PackagesFor(job Job) []string {
	var names []string
	for _, p := range Packages {
		for _, j := range p.Jobs {
			if j == job {
				names = append(names, p.Name)
				break
			}
		}
	}
	return names
}

// ServicesOf returns the init scripts the named packages start on install.
func ServicesOf(names []string) []string {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var svcs []string
	for _, p := range Packages {
		if want[p.Name] {
			svcs = append(svcs, p.Services...)
		}
	}
	return svcs
}
