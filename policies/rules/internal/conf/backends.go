package conf

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// Backend is one address an edge config forwards to.
type Backend struct {
	// Host and Port as the config writes them.
	Host string
	Port int
	// Line is the directive naming it.
	Line string
}

var (
	nginxUpstream      = regexp.MustCompile(`^upstream\s+(\S+)\s*\{`)
	nginxUpstreamSrv   = regexp.MustCompile(`^server\s+([A-Za-z0-9.-]+)(?::(\d+))?[\s;]`)
	nginxProxyPass     = regexp.MustCompile(`\b(?:proxy_pass|grpc_pass)\s+\w+://([A-Za-z0-9.-]+)(?::(\d+))?`)
	haproxyServer      = regexp.MustCompile(`^server\s+\S+\s+([A-Za-z0-9.-]+):(\d+)`)
	haproxySrvTemplate = regexp.MustCompile(`^server-template\s+\S+\s+\S+\s+([A-Za-z0-9.-]+):(\d+)`)
)

// Backends lists the addresses the config forwards to: nginx upstream
// servers and proxy_pass targets that are not upstream names, HAProxy
// server and server-template addresses.
func (e EdgeConfig) Backends() []Backend {
	var res []*regexp.Regexp
	skip := map[string]bool{}
	if e.Proxy == HAProxy {
		res = []*regexp.Regexp{haproxyServer, haproxySrvTemplate}
	} else {
		res = []*regexp.Regexp{nginxUpstreamSrv, nginxProxyPass}
		for _, l := range e.Lines {
			if m := nginxUpstream.FindStringSubmatch(l); m != nil {
				skip[m[1]] = true
			}
		}
	}
	var out []Backend
	for _, l := range e.Lines {
		for _, re := range res {
			m := re.FindStringSubmatch(l)
			if m == nil || skip[m[1]] {
				continue
			}
			port, _ := strconv.Atoi(m[2])
			out = append(out, Backend{Host: m[1], Port: port, Line: l})
		}
	}
	return out
}

// ServiceRef names the Kubernetes Service a backend host resolves to in
// cluster DNS (name, name.ns, name.ns.svc, name.ns.svc.cluster.local),
// relative to the config's namespace. ok is false for anything else (an
// IP address, an outside name). inCluster is set when the host is
// certainly a cluster Service name (it ends in .svc or .svc.<domain>).
func ServiceRef(host, namespace string) (name, ns string, inCluster, ok bool) {
	labels := strings.Split(host, ".")
	for i, l := range labels {
		if l == "svc" && i == 2 {
			return labels[0], labels[1], true, true
		}
	}
	switch len(labels) {
	case 1:
		return labels[0], namespace, false, true
	case 2:
		return labels[0], labels[1], false, true
	}
	return "", "", false, false
}

// ServiceTargets returns the workloads a Service selects and, for a
// Service port, the container port (number or name) it targets.
func ServiceTargets(rs []object.Resource, svc object.Resource, port int) (workloads []object.Resource, target string) {
	selector := object.MapOf(object.Get(svc.Props, "spec", "selector"))
	for _, w := range object.ByKind(rs, object.LongRunningKinds...) {
		_, meta, _ := object.Pod(w)
		if object.Namespace(w) == object.Namespace(svc) && object.Selects(selector, object.Labels(meta)) {
			workloads = append(workloads, w)
		}
	}
	for _, p := range object.ListOf(object.Get(svc.Props, "spec", "ports")) {
		if n, _ := object.Int(object.Get(p, "port")); n == port {
			target = object.Str(object.Get(p, "targetPort"))
			if target == "" {
				target = strconv.Itoa(port)
			}
		}
	}
	return workloads, target
}

// ServingContainers are the containers of a pod spec that expose the
// target port (a number or a name); all of them when none says so.
func ServingContainers(spec map[string]any, target string) []object.Container {
	all := object.Containers(spec, false)
	var out []object.Container
	for _, c := range all {
		for _, p := range object.ListOf(c.Fields["ports"]) {
			if object.Str(object.Get(p, "name")) == target || object.Str(object.Get(p, "containerPort")) == target {
				out = append(out, c)
				break
			}
		}
	}
	if len(out) == 0 {
		return all
	}
	return out
}
