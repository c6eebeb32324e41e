package conf

import (
	"strconv"
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// Exposed is what a LoadBalancer Service puts on the internet: the
// Service, and for each edge config mounted by a workload it selects,
// which listener each of its ports reaches. The edge rules read the
// Service and the config together because either side alone cannot say
// whether a port is TLS, carries PROXY headers or serves /metrics.
type Exposed struct {
	// Service is the LoadBalancer Service.
	Service object.Resource
	// Configs are the edge configs behind it (empty: it fronts no edge).
	Configs []ExposedConfig
	// Unknown is set when part of the picture is not known yet (a
	// preview's computed annotations, selector, ports or config file):
	// the rules do not judge what they cannot see.
	Unknown bool
}

// ExposedConfig is one edge config behind a LoadBalancer Service.
type ExposedConfig struct {
	// ConfigMap holds the file; Config is the file.
	ConfigMap object.Resource
	Config    EdgeConfig
	// Ports are the Service's ports, each with the listener it reaches.
	Ports []ExposedPort
}

// ExposedPort is one port of a LoadBalancer Service.
type ExposedPort struct {
	// Port is the Service (load balancer) port; Name its name.
	Port int
	Name string
	// Target is the container port it reaches (0: the name resolves to none).
	Target int
	// Listener is the config's listener on Target; nil when none listens there.
	Listener *Listener
}

// Public reports whether a listener port is reached by the Service.
func (c ExposedConfig) Public(port int) bool {
	for _, p := range c.Ports {
		if p.Target == port {
			return true
		}
	}
	return false
}

// Annotation is one of the Service's annotations ("" when unset).
func (e Exposed) Annotation(key string) string {
	return object.Str(object.Get(e.Service.Props, "metadata", "annotations", key))
}

// ExposedServices finds every LoadBalancer Service and the edge configs
// mounted by the workloads it selects.
func ExposedServices(rs []object.Resource) []Exposed {
	var out []Exposed
	for _, svc := range object.ByKind(rs, "Service") {
		if object.Str(object.Get(svc.Props, "spec", "type")) != "LoadBalancer" {
			continue
		}
		e := Exposed{Service: svc}
		for _, path := range [][]any{{"metadata", "annotations"}, {"spec", "selector"}, {"spec", "ports"}} {
			if object.IsUnknown(object.Get(svc.Props, path...)) {
				e.Unknown = true
			}
		}
		selector := object.MapOf(object.Get(svc.Props, "spec", "selector"))
		for _, w := range object.ByKind(rs, object.LongRunningKinds...) {
			spec, meta, _ := object.Pod(w)
			if object.Namespace(w) != object.Namespace(svc) || !object.Selects(selector, object.Labels(meta)) {
				continue
			}
			mounted := object.MountedConfigMaps(spec)
			for _, cm := range object.ByKind(rs, "ConfigMap") {
				if object.Namespace(cm) != object.Namespace(w) || !has(mounted, object.Name(cm)) {
					continue
				}
				if unknownData(cm) {
					e.Unknown = true
				}
				for _, ec := range EdgeConfigs(cm) {
					e.Configs = append(e.Configs, ExposedConfig{ConfigMap: cm, Config: ec, Ports: servicePorts(svc, spec, ec)})
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// unknownData reports whether a ConfigMap's files are not known yet.
func unknownData(cm object.Resource) bool {
	data := cm.Props["data"]
	if object.IsUnknown(data) {
		return true
	}
	for _, v := range object.MapOf(data) {
		if object.IsUnknown(v) {
			return true
		}
	}
	return false
}

// servicePorts maps each Service port to its container port (a named
// targetPort through the pod's container ports) and that port's listener.
func servicePorts(svc object.Resource, spec map[string]any, ec EdgeConfig) []ExposedPort {
	listeners := ec.Listeners()
	var out []ExposedPort
	for _, p := range object.ListOf(object.Get(svc.Props, "spec", "ports")) {
		port, _ := object.Int(object.Get(p, "port"))
		ep := ExposedPort{Port: port, Name: object.Str(object.Get(p, "name"))}
		target := object.Get(p, "targetPort")
		switch n, isNum := object.Int(target); {
		case target == nil:
			ep.Target = port
		case isNum:
			ep.Target = n
		default:
			ep.Target = namedPort(spec, object.Str(target))
		}
		for i := range listeners {
			if ep.Target != 0 && listeners[i].Port == ep.Target {
				ep.Listener = &listeners[i]
				break
			}
		}
		out = append(out, ep)
	}
	return out
}

// namedPort is the containerPort named name in the pod spec, 0 if none.
func namedPort(spec map[string]any, name string) int {
	for _, c := range object.Containers(spec, false) {
		for _, p := range object.ListOf(c.Fields["ports"]) {
			if object.Str(object.Get(p, "name")) == name {
				n, _ := object.Int(object.Get(p, "containerPort"))
				return n
			}
		}
	}
	return 0
}

// The AWS Load Balancer Controller's Service annotations the edge rules read.
const (
	// AnnotationProxyProtocol ("*") makes the NLB send PROXY protocol v2 to every target.
	AnnotationProxyProtocol = "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"
	// AnnotationSSLCert is the ACM certificate the NLB terminates TLS with.
	AnnotationSSLCert = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert"
	// AnnotationSSLPorts lists the ports (numbers or names) the NLB terminates TLS on; unset means all.
	AnnotationSSLPorts = "service.beta.kubernetes.io/aws-load-balancer-ssl-ports"
	// AnnotationSSLPolicy is the NLB's TLS negotiation (security) policy.
	AnnotationSSLPolicy = "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy"
)

// LBTerminatesTLS reports whether the load balancer terminates TLS on the
// port: an ssl-cert is set and the port is among ssl-ports (by number or
// name; unset or "*" means every port).
func (e Exposed) LBTerminatesTLS(p ExposedPort) bool {
	if e.Annotation(AnnotationSSLCert) == "" {
		return false
	}
	ports := e.Annotation(AnnotationSSLPorts)
	if ports == "" || ports == "*" {
		return true
	}
	for _, s := range splitList(ports) {
		if s == p.Name || s == strconv.Itoa(p.Port) {
			return true
		}
	}
	return false
}

// splitList splits a comma-separated annotation value, trimming blanks.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
