package policy

import (
	"fmt"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/scaleplane/scaleplane/internal/render"
)

// mutation edits a rendered graph the way a changed component or an extra
// hand-written resource would; it fails when its target is missing, so a
// variant cannot pass vacuously after the components change.
type mutation func(g *render.Graph) error

// mutations are the code-level mutations the corpus names.
var mutations = map[string]mutation{
	"nginx-ip-hash":         editConfig("edge", "    keepalive 64;", "    ip_hash;\n    keepalive 64;"),
	"haproxy-cookie":        editConfig("edge", "  balance leastconn\n", "  balance leastconn\n  cookie SERVERID insert indirect nocache\n"),
	"nginx-no-rate-limit":   editConfigRE("edge", `(?m)^\s*limit_req zone=.*\n`, ""),
	"haproxy-no-rate-limit": editConfigRE("edge", `(?m)^.*deny_status 429.*\n`, ""),
	"haproxy-no-body-limit": editConfigRE("edge", `(?m)^.*deny_status 413.*\n`, ""),
	"service-client-ip": set("Service", "gateway", func(o map[string]any) {
		o["spec"].(map[string]any)["sessionAffinity"] = "ClientIP"
	}),
	"drop-gateway-hpa":             drop("HorizontalPodAutoscaler", "gateway"),
	"gateway-static-replicas":      set("Deployment", "gateway", func(o map[string]any) { o["spec"].(map[string]any)["replicas"] = 3 }),
	"drop-users-pdb":               drop("PodDisruptionBudget", "users"),
	"drop-network-policies":        drop("NetworkPolicy", ""),
	"worker-pdb-max-unavailable-0": set("PodDisruptionBudget", "worker", func(o map[string]any) { o["spec"].(map[string]any)["maxUnavailable"] = 0 }),
	"gateway-grace-10":             set("Deployment", "gateway", func(o map[string]any) { podSpec(o)["terminationGracePeriodSeconds"] = 10 }),
	"worker-gomemlimit-at-limit": set("Deployment", "worker", func(o map[string]any) {
		c := container(o)
		limit := c["resources"].(map[string]any)["limits"].(map[string]any)["memory"].(string)
		setEnv(c, "GOMEMLIMIT", strings.TrimSuffix(limit, "i")+"iB")
	}),
	"users-no-memory-limit": set("Deployment", "users", func(o map[string]any) {
		delete(container(o)["resources"].(map[string]any)["limits"].(map[string]any), "memory")
	}),
	"gateway-no-readiness": set("Deployment", "gateway", func(o map[string]any) { delete(container(o), "readinessProbe") }),
	"users-latest-image": set("Deployment", "users", func(o map[string]any) {
		c := container(o)
		c["image"] = strings.Split(c["image"].(string), ":")[0] + ":latest"
	}),
	"worker-privileged": set("Deployment", "worker", func(o map[string]any) { securityContext(o)["privileged"] = true }),
	"gateway-as-root": set("Deployment", "gateway", func(o map[string]any) {
		delete(securityContext(o), "runAsNonRoot")
		delete(podSpec(o)["securityContext"].(map[string]any), "runAsNonRoot")
		podSpec(o)["securityContext"].(map[string]any)["runAsUser"] = 0
	}),
	"edge-writable-root": set("Deployment", "edge", func(o map[string]any) { securityContext(o)["readOnlyRootFilesystem"] = false }),
	"namespace-baseline": set("Namespace", "", func(o map[string]any) {
		o["metadata"].(map[string]any)["labels"].(map[string]any)["pod-security.kubernetes.io/enforce"] = "baseline"
	}),
	"gateway-no-otlp": set("Deployment", "gateway", func(o map[string]any) { setEnv(container(o), "OTEL_EXPORTER_OTLP_ENDPOINT", "") }),
	"users-no-scrape": set("Deployment", "users", func(o map[string]any) {
		o["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["annotations"] = map[string]any{}
	}),
	"add-redis-standalone":        add(redisConfigMap("cluster-enabled no\nmaxmemory 100mb\n"), redisStatefulSet(6)),
	"add-redis-no-maxmemory":      add(redisConfigMap("cluster-enabled yes\n"), redisStatefulSet(6)),
	"add-elasticache-no-failover": add(elastiCache(map[string]any{"automaticFailoverEnabled": false})),
	"add-elasticache-unencrypted": add(elastiCache(map[string]any{"atRestEncryptionEnabled": false})),
	"add-rds-public":              add(rds("postgres", map[string]any{"publiclyAccessible": true}), rdsReplica(), rdsProxy()),
	// The data tier is declared by the stacks now: these variants break
	// what the components declare instead of adding broken extras.
	"drop-rds-proxy": dropWhere("the RDS Proxy", func(r render.Resource) bool { return r.Type == "aws:rds/proxy:Proxy" }),
	"drop-rds-replicas": dropWhere("the RDS read replicas", func(r render.Resource) bool {
		return r.Type == "aws:rds/instance:Instance" && r.Inputs["replicateSourceDb"] != nil
	}),
	"drop-pgbouncer": dropWhere("the PgBouncer Deployments and configs", func(r render.Resource) bool {
		if !strings.HasPrefix(r.Type, "kubernetes:") {
			return false
		}
		name, _ := r.Inputs["metadata"].(map[string]any)["name"].(string)
		return strings.HasPrefix(name, "postgres-pgbouncer-") && (strings.HasSuffix(r.Type, ":Deployment") || strings.HasSuffix(r.Type, ":ConfigMap"))
	}),
	"pgbouncer-too-small": func(g *render.Graph) error {
		for _, pooler := range []string{"postgres-pgbouncer-rw", "postgres-pgbouncer-ro"} {
			if err := editConfigRE(pooler, `max_client_conn = \d+`, "max_client_conn = 10")(g); err != nil {
				return err
			}
		}
		return nil
	},
	"topic-too-few-partitions": func(g *render.Graph) error {
		// Only the registrations topic (the first entry) shrinks below the worker's maxReplicas.
		return set("ConfigMap", "kafka-topics", func(o map[string]any) {
			data := o["data"].(map[string]any)
			data["topics.json"] = regexp.MustCompile(`"partitions": \d+`).ReplaceAllLiteralString(data["topics.json"].(string), `"partitions": 1`)
		})(g)
	},
	"add-kafka-replication-one": add(k8s(`
apiVersion: v1
kind: ConfigMap
metadata: {name: kafka, namespace: NS}
data: {server.properties: "default.replication.factor=1\nmin.insync.replicas=1\n"}`)),
	// The production wiring of issue #27: TLS, PROXY protocol, trusted
	// proxies, internal paths, registries (each edits what the edge,
	// gateway and cluster components render, and fails when it is gone).
	"nginx-plain-https":     editConfigMust("edge", "listen 8443 ssl http2 reuseport;", "listen 8443 reuseport;"),
	"haproxy-tls-1-0":       editConfigMust("edge", "ssl-min-ver TLSv1.2", "ssl-min-ver TLSv1.0"),
	"nginx-no-hsts":         editConfigREMust("edge", `\s*add_header Strict-Transport-Security "[^"]*" always;`, ""),
	"haproxy-http-forwards": editConfigREMust("edge", `(?m)^(\s*)http-request redirect code 308 .*$`, "${1}default_backend gateway"),
	"edge-service-proxy-protocol": annotate(func(a map[string]any) {
		a["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"] = "*"
	}),
	"nginx-accept-proxy":         editConfigMust("edge", "listen 8443 ssl http2 reuseport;", "listen 8443 ssl http2 proxy_protocol reuseport;"),
	"gateway-no-trusted-proxies": set("Deployment", "gateway", func(o map[string]any) { setEnv(container(o), "TRUSTED_PROXY_CIDRS", "") }),
	"gateway-trusts-anyone":      set("Deployment", "gateway", func(o map[string]any) { setEnv(container(o), "TRUSTED_PROXY_CIDRS", "0.0.0.0/0") }),
	"nginx-route-metrics":        editConfigMust("edge", "    location /v1/ {", "    location ^~ /metrics { proxy_pass http://gateway; }\n    location /v1/ {"),
	"haproxy-route-everything": func(g *render.Graph) error {
		if err := editConfigREMust("edge", `(?m)^\s*http-request deny deny_status 404 .*\n`, "")(g); err != nil {
			return err
		}
		return editConfigREMust("edge", `(?m)^(\s*)use_backend gateway if .*$`, "${1}default_backend gateway")(g)
	},
	"edge-status-port-public": set("Service", "edge", func(o map[string]any) {
		spec := o["spec"].(map[string]any)
		spec["ports"] = append(spec["ports"].([]any), map[string]any{"name": "status", "port": 8081, "protocol": "TCP", "targetPort": "status"})
	}),
	"users-image-docker-hub":   imageFromDockerHub("users"),
	"gateway-image-docker-hub": imageFromDockerHub("gateway"),
	"eks-api-open-to-world": setWhere("the EKS cluster", isEKS, func(in map[string]any) {
		in["vpcConfig"].(map[string]any)["publicAccessCidrs"] = []any{"0.0.0.0/0"}
	}),
	"eks-api-private-only": setWhere("the EKS cluster", isEKS, func(in map[string]any) {
		vpc := in["vpcConfig"].(map[string]any)
		vpc["endpointPublicAccess"] = false
		delete(vpc, "publicAccessCidrs")
	}),
	"drop-api-runner-rules": dropWhere("the API runner security group rules", func(r render.Resource) bool {
		return r.Type == "aws:ec2/securityGroupRule:SecurityGroupRule" && strings.Contains(r.Name, "-api-runner-")
	}),
	"add-msk-two-brokers": add(aws("aws:msk/cluster:Cluster", "kafka", map[string]any{
		"numberOfBrokerNodes": 2, "encryptionInfo": map[string]any{"encryptionInTransit": map[string]any{"clientBroker": "TLS", "inCluster": true}},
	})),
}

// dropWhere removes every resource that matches; it fails when
// nothing matches, so the variant cannot pass vacuously.
func dropWhere(what string, match func(render.Resource) bool) mutation {
	return func(g *render.Graph) error {
		kept := g.Resources[:0]
		dropped := 0
		for _, r := range g.Resources {
			if match(r) {
				dropped++
				continue
			}
			kept = append(kept, r)
		}
		if dropped == 0 {
			return fmt.Errorf("no %s in stack %s", what, g.Stack)
		}
		g.Resources = kept
		return nil
	}
}

// imageFromDockerHub moves a Deployment's image to Docker Hub, same name and tag.
func imageFromDockerHub(name string) mutation {
	return set("Deployment", name, func(o map[string]any) {
		c := container(o)
		img := c["image"].(string)
		c["image"] = "docker.io/library/" + img[strings.LastIndex(img, "/")+1:]
	})
}

// isEKS matches the stack's EKS cluster.
func isEKS(r render.Resource) bool { return r.Type == "aws:eks/cluster:Cluster" }

// setWhere edits the inputs of every resource that matches; it fails when
// nothing matches, so the variant cannot pass vacuously.
func setWhere(what string, match func(render.Resource) bool, f func(map[string]any)) mutation {
	return func(g *render.Graph) error {
		n := 0
		for _, r := range g.Resources {
			if match(r) {
				f(r.Inputs)
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("no %s in stack %s", what, g.Stack)
		}
		return nil
	}
}

// find returns the Kubernetes objects of a kind whose metadata.name is name ("" for any).
func find(g *render.Graph, kind, name string) []int {
	var out []int
	for i, r := range g.Resources {
		if !r.Custom || !strings.HasSuffix(r.Type, ":"+kind) || !strings.HasPrefix(r.Type, "kubernetes:") {
			continue
		}
		if n, _ := r.Inputs["metadata"].(map[string]any)["name"].(string); name == "" || n == name {
			out = append(out, i)
		}
	}
	return out
}

func set(kind, name string, f func(map[string]any)) mutation {
	return func(g *render.Graph) error {
		idx := find(g, kind, name)
		if len(idx) == 0 {
			return fmt.Errorf("no %s %q in stack %s", kind, name, g.Stack)
		}
		for _, i := range idx {
			f(g.Resources[i].Inputs)
		}
		return nil
	}
}

func drop(kind, name string) mutation {
	return func(g *render.Graph) error {
		idx := find(g, kind, name)
		if len(idx) == 0 {
			return fmt.Errorf("no %s %q in stack %s", kind, name, g.Stack)
		}
		for j := len(idx) - 1; j >= 0; j-- {
			g.Resources = append(g.Resources[:idx[j]], g.Resources[idx[j]+1:]...)
		}
		return nil
	}
}

func editConfig(name, old, new string) mutation {
	return set("ConfigMap", name, func(o map[string]any) {
		for k, v := range o["data"].(map[string]any) {
			o["data"].(map[string]any)[k] = strings.Replace(v.(string), old, new, 1)
		}
	})
}

// editConfigMust replaces old in the named ConfigMap's files and fails
// when no file contains it, so the variant cannot pass vacuously once the
// component renders something else.
func editConfigMust(name, old, new string) mutation {
	return editFiles(name, old, func(text string) string { return strings.Replace(text, old, new, 1) }, func(text string) bool { return strings.Contains(text, old) })
}

// editConfigREMust is editConfigMust with a regular expression.
func editConfigREMust(name, re, repl string) mutation {
	r := regexp.MustCompile(re)
	return editFiles(name, re, func(text string) string { return r.ReplaceAllString(text, repl) }, r.MatchString)
}

func editFiles(name, what string, edit func(string) string, found func(string) bool) mutation {
	return func(g *render.Graph) error {
		hit := false
		err := set("ConfigMap", name, func(o map[string]any) {
			for k, v := range o["data"].(map[string]any) {
				if text, ok := v.(string); ok && found(text) {
					o["data"].(map[string]any)[k] = edit(text)
					hit = true
				}
			}
		})(g)
		if err != nil {
			return err
		}
		if !hit {
			return fmt.Errorf("no file of ConfigMap %q in stack %s contains %q", name, g.Stack, what)
		}
		return nil
	}
}

func editConfigRE(name, re, repl string) mutation {
	r := regexp.MustCompile(re)
	return set("ConfigMap", name, func(o map[string]any) {
		for k, v := range o["data"].(map[string]any) {
			o["data"].(map[string]any)[k] = r.ReplaceAllString(v.(string), repl)
		}
	})
}

func podSpec(o map[string]any) map[string]any {
	return o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
}

func container(o map[string]any) map[string]any {
	return podSpec(o)["containers"].([]any)[0].(map[string]any)
}

func securityContext(o map[string]any) map[string]any {
	return container(o)["securityContext"].(map[string]any)
}

// setEnv sets a variable; an empty value removes it.
func setEnv(c map[string]any, name, value string) {
	var env []any
	for _, e := range c["env"].([]any) {
		if e.(map[string]any)["name"] != name {
			env = append(env, e)
		}
	}
	if value != "" {
		env = append(env, map[string]any{"name": name, "value": value})
	}
	c["env"] = env
}

// extra builds a resource for a stack once its namespace is known.
type extra func(stack, namespace string) render.Resource

func add(es ...extra) mutation {
	return func(g *render.Graph) error {
		ns := find(g, "Namespace", "")
		if len(ns) == 0 {
			return fmt.Errorf("stack %s declares no namespace", g.Stack)
		}
		name := g.Resources[ns[0]].Inputs["metadata"].(map[string]any)["name"].(string)
		for _, e := range es {
			g.Resources = append(g.Resources, e(g.Stack, name))
		}
		return nil
	}
}

// k8s parses a Kubernetes object; NS stands for the stack's namespace.
func k8s(doc string) extra {
	return func(stack, ns string) render.Resource {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(strings.ReplaceAll(doc, "NS", ns)), &o); err != nil {
			panic(fmt.Sprintf("corpus object: %v", err))
		}
		api, kind := o["apiVersion"].(string), o["kind"].(string)
		if !strings.Contains(api, "/") {
			api = "core/" + api
		}
		typ := "kubernetes:" + api + ":" + kind
		name := strings.ToLower(kind) + "-" + o["metadata"].(map[string]any)["name"].(string)
		return render.Resource{URN: fmt.Sprintf("urn:pulumi:%s::scaleplane::%s::%s", stack, typ, name), Type: typ, Name: name, Custom: true, Inputs: o}
	}
}

func aws(typ, name string, inputs map[string]any) extra {
	return func(stack, _ string) render.Resource {
		return render.Resource{URN: fmt.Sprintf("urn:pulumi:%s::scaleplane::%s::%s", stack, typ, name), Type: typ, Name: name, Custom: true, Inputs: inputs}
	}
}

func redisConfigMap(conf string) extra {
	return func(stack, ns string) render.Resource {
		return with(k8s(`
apiVersion: v1
kind: ConfigMap
metadata: {name: redis, namespace: NS}
data: {}`)(stack, ns), func(o map[string]any) { o["data"] = map[string]any{"redis.conf": conf} })
	}
}

func redisStatefulSet(nodes int) extra {
	return func(stack, ns string) render.Resource {
		return with(k8s(`
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis, namespace: NS}
spec:
  template:
    spec:
      volumes: [{name: config, configMap: {name: redis}}]
      containers: [{name: redis, image: redis:7.4.2, resources: {limits: {memory: 256Mi}}}]
  volumeClaimTemplates: [{metadata: {name: data}}]`)(stack, ns), func(o map[string]any) { o["spec"].(map[string]any)["replicas"] = nodes })
	}
}

func elastiCache(override map[string]any) extra {
	in := map[string]any{"clusterMode": "enabled", "numNodeGroups": 3, "replicasPerNodeGroup": 1, "automaticFailoverEnabled": true,
		"atRestEncryptionEnabled": true, "transitEncryptionEnabled": true}
	for k, v := range override {
		in[k] = v
	}
	return aws("aws:elasticache/replicationGroup:ReplicationGroup", "redis", in)
}

func rds(name string, override map[string]any) extra {
	in := map[string]any{"engine": "postgres", "storageEncrypted": true, "publiclyAccessible": false}
	for k, v := range override {
		in[k] = v
	}
	return aws("aws:rds/instance:Instance", name, in)
}

func rdsReplica() extra {
	return aws("aws:rds/instance:Instance", "postgres-replica", map[string]any{"replicateSourceDb": "postgres"})
}

func rdsProxy() extra {
	return aws("aws:rds/proxy:Proxy", "postgres", map[string]any{"engineFamily": "POSTGRESQL", "requireTls": true})
}

// with applies f to a built resource's inputs.
func with(r render.Resource, f func(map[string]any)) render.Resource {
	f(r.Inputs)
	return r
}
