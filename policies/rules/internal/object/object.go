// Package object reads declared resources the way the rules need them:
// values of any decoded Go type, Kubernetes metadata, pod templates and
// their containers, label selectors, the HPA aimed at a workload, and the
// files a ConfigMap carries. The rules live in the parent package; what
// more than one of them reads is here, so each rule file holds one rule.
package object

import (
	"encoding/json"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/internal/plainvalue"
)

// Resource is one declared resource as a rule sees it: the Pulumi type
// token and the inputs the provider receives (for Kubernetes objects:
// apiVersion, kind, metadata, spec, data...).
type Resource struct {
	URN    string
	Type   string
	Name   string
	Parent string
	Props  map[string]any
}

// Type tokens of the AWS-managed data tier.
const (
	AWSReplicationGroup  = "aws:elasticache/replicationGroup:ReplicationGroup"
	AWSDBInstance        = "aws:rds/instance:Instance"
	AWSDBClusterInstance = "aws:rds/clusterInstance:ClusterInstance"
	AWSDBProxy           = "aws:rds/proxy:Proxy"
	AWSMSKCluster        = "aws:msk/cluster:Cluster"
	AWSMSKConfig         = "aws:msk/configuration:Configuration"
	KafkaTopicType       = "kafka:index/topic:Topic"
)

// Type tokens of the AWS cluster and its network.
const (
	AWSEKSCluster        = "aws:eks/cluster:Cluster"
	AWSSecurityGroupRule = "aws:ec2/securityGroupRule:SecurityGroupRule"
)

// Unknown is what a value not known yet (a preview's computed output)
// looks like to a rule; rules do not judge what they cannot see.
const Unknown = "[unknown]"

// Kind returns the Kubernetes kind of a kubernetes:* resource, "" otherwise.
func Kind(r Resource) string {
	if !strings.HasPrefix(r.Type, "kubernetes:") {
		return ""
	}
	parts := strings.Split(r.Type, ":")
	return parts[len(parts)-1]
}

// Get walks nested maps and lists (an int key indexes a list).
func Get(v any, path ...any) any { return plainvalue.Get(v, path...) }

// MapOf is v as a map, nil when it is not one.
func MapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// ListOf is v as a list, nil when it is not one.
func ListOf(v any) []any {
	l, _ := v.([]any)
	return l
}

// Str is v as text: strings as they are, absent as "", anything else
// as its JSON form, so a number or flag reads the same as in YAML.
func Str(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case nil:
		return ""
	default:
		return toString(v)
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

// Int reads a number whatever its decoded Go type.
func Int(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case float64:
		if n != math.Trunc(n) {
			return 0, false
		}
		return int(n), true
	case json.Number:
		i, err := n.Int64()
		return int(i), err == nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(n))
		return i, err == nil
	}
	return 0, false
}

// Bool reads a boolean given as one or as text ("true").
func Bool(v any) (bool, bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		p, err := strconv.ParseBool(b)
		return p, err == nil
	}
	return false, false
}

// IsTrue reports whether v is a true boolean, as one or as text.
func IsTrue(v any) bool {
	b, ok := Bool(v)
	return ok && b
}

// IsUnknown reports whether v is not known yet (a preview).
func IsUnknown(v any) bool { return v == Unknown }

// Name is the object's metadata.name.
func Name(r Resource) string { return Str(Get(r.Props, "metadata", "name")) }

// Namespace is the object's namespace (a Namespace's own name); an empty
// namespace is Kubernetes' "default".
func Namespace(r Resource) string {
	if Kind(r) == "Namespace" {
		return Name(r)
	}
	ns := Str(Get(r.Props, "metadata", "namespace"))
	if ns == "" {
		return "default"
	}
	return ns
}

// Display names an object for messages: Kind namespace/name.
func Display(r Resource) string {
	if k := Kind(r); k != "" {
		if n := Name(r); n != "" {
			return k + " " + Namespace(r) + "/" + n
		}
		return k + " " + r.Name
	}
	return r.Type + " " + r.Name
}

// WorkloadKinds run pods from a template; long-running ones serve or work continuously.
var (
	WorkloadKinds    = []string{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
	LongRunningKinds = []string{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"}
	ScalableKinds    = []string{"Deployment", "StatefulSet"}
)

// Pod returns the pod spec and the pod template's metadata of a workload.
func Pod(r Resource) (spec, meta map[string]any, ok bool) {
	switch Kind(r) {
	case "Pod":
		return MapOf(r.Props["spec"]), MapOf(r.Props["metadata"]), true
	case "CronJob":
		t := Get(r.Props, "spec", "jobTemplate", "spec", "template")
		return MapOf(Get(t, "spec")), MapOf(Get(t, "metadata")), true
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		t := Get(r.Props, "spec", "template")
		return MapOf(Get(t, "spec")), MapOf(Get(t, "metadata")), true
	}
	return nil, nil, false
}

// Container is one container of a pod spec with its role.
type Container struct {
	// Name is the container's name.
	Name string
	// Init is set for an init container.
	Init bool
	// Fields are the container's declared fields (image, env, resources...).
	Fields map[string]any
}

// Containers lists a pod spec's containers, the init containers first
// when withInit is set.
func Containers(spec map[string]any, withInit bool) []Container {
	var out []Container
	if withInit {
		for _, c := range ListOf(spec["initContainers"]) {
			out = append(out, Container{Name: Str(Get(c, "name")), Init: true, Fields: MapOf(c)})
		}
	}
	for _, c := range ListOf(spec["containers"]) {
		out = append(out, Container{Name: Str(Get(c, "name")), Fields: MapOf(c)})
	}
	return out
}

// Label names the container in messages.
func (c Container) Label() string {
	if c.Init {
		return "init container " + c.Name
	}
	return "container " + c.Name
}

// Env returns a variable's literal value; set reports whether the
// variable exists at all (a valueFrom counts as set).
func (c Container) Env(name string) (value string, set bool) {
	for _, e := range ListOf(c.Fields["env"]) {
		if Str(Get(e, "name")) == name {
			return Str(Get(e, "value")), true
		}
	}
	return "", false
}

// EnvNames lists the container's variable names.
func (c Container) EnvNames() []string {
	var out []string
	for _, e := range ListOf(c.Fields["env"]) {
		out = append(out, Str(Get(e, "name")))
	}
	return out
}

// GoMarker is the variable the platform sets on every Go service; its
// presence is how rules recognise one from the outside.
const GoMarker = "GOMEMLIMIT"

// GoService reports whether any container of the pod spec is a Go service.
func GoService(spec map[string]any) bool {
	for _, c := range Containers(spec, false) {
		if _, ok := c.Env(GoMarker); ok {
			return true
		}
	}
	return false
}

// Quantity parses a Kubernetes quantity; ok is false when absent or invalid.
func Quantity(v any) (resource.Quantity, bool) {
	s := Str(v)
	if s == "" || s == Unknown {
		return resource.Quantity{}, false
	}
	if n, ok := v.(float64); ok {
		s = strconv.FormatFloat(n, 'f', -1, 64)
	}
	q, err := resource.ParseQuantity(s)
	return q, err == nil
}

// Labels returns an object's or template's labels as strings.
func Labels(meta map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range MapOf(meta["labels"]) {
		out[k] = Str(v)
	}
	return out
}

// Selects reports whether a label selector (matchLabels and the In/Exists
// expressions, or a Service's plain map) selects the labels. An empty
// selector selects nothing here: no rule wants "everything" to count.
func Selects(selector map[string]any, labels map[string]string) bool {
	match := MapOf(selector["matchLabels"])
	exprs := ListOf(selector["matchExpressions"])
	if match == nil && exprs == nil {
		// A Service selector is a plain map.
		match = map[string]any{}
		for k, v := range selector {
			if k != "matchLabels" && k != "matchExpressions" {
				match[k] = v
			}
		}
	}
	if len(match) == 0 && len(exprs) == 0 {
		return false
	}
	for k, v := range match {
		if labels[k] != Str(v) {
			return false
		}
	}
	for _, e := range exprs {
		key, op := Str(Get(e, "key")), Str(Get(e, "operator"))
		val, has := labels[key]
		var values []string
		for _, x := range ListOf(Get(e, "values")) {
			values = append(values, Str(x))
		}
		switch op {
		case "In":
			if !has || !slices.Contains(values, val) {
				return false
			}
		case "NotIn":
			if has && slices.Contains(values, val) {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		}
	}
	return true
}

// ByKind returns the Kubernetes objects of the given kinds.
func ByKind(rs []Resource, kinds ...string) []Resource {
	var out []Resource
	for _, r := range rs {
		if slices.Contains(kinds, Kind(r)) {
			out = append(out, r)
		}
	}
	return out
}

// ByType returns the resources of a Pulumi type token.
func ByType(rs []Resource, typ string) []Resource {
	var out []Resource
	for _, r := range rs {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// HPAFor returns the HorizontalPodAutoscalers aimed at a workload: same
// namespace, kind and name; a target name not known yet (a preview)
// matches a workload declared under the same Pulumi parent.
func HPAFor(rs []Resource, w Resource) []Resource {
	var out []Resource
	for _, h := range ByKind(rs, "HorizontalPodAutoscaler") {
		if Namespace(h) != Namespace(w) {
			continue
		}
		ref := MapOf(Get(h.Props, "spec", "scaleTargetRef"))
		if k := Str(ref["kind"]); k != "" && k != Kind(w) {
			continue
		}
		name := ref["name"]
		if Str(name) == Name(w) || (IsUnknown(name) && h.Parent != "" && h.Parent == w.Parent) {
			out = append(out, h)
		}
	}
	return out
}

// ReplicaRange is the fewest and most pods a workload runs: its HPA's
// bounds if it has one, else spec.replicas (default 1).
func ReplicaRange(rs []Resource, w Resource) (lo, hi int) {
	if hs := HPAFor(rs, w); len(hs) > 0 {
		lo, ok := Int(Get(hs[0].Props, "spec", "minReplicas"))
		if !ok {
			lo = 1
		}
		hi, _ := Int(Get(hs[0].Props, "spec", "maxReplicas"))
		return lo, max(lo, hi)
	}
	n, ok := Int(Get(w.Props, "spec", "replicas"))
	if !ok {
		n = 1
	}
	return n, n
}

// MountedConfigMaps returns the names of the ConfigMaps a pod spec mounts
// (directly or through a projected volume).
func MountedConfigMaps(spec map[string]any) []string {
	var out []string
	for _, v := range ListOf(spec["volumes"]) {
		if n := Str(Get(v, "configMap", "name")); n != "" {
			out = append(out, n)
		}
		for _, s := range ListOf(Get(v, "projected", "sources")) {
			if n := Str(Get(s, "configMap", "name")); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// Mounting returns the workloads of the kinds that mount the ConfigMap.
func Mounting(rs []Resource, cm Resource, kinds ...string) []Resource {
	var out []Resource
	for _, w := range ByKind(rs, kinds...) {
		spec, _, _ := Pod(w)
		if Namespace(w) == Namespace(cm) && slices.Contains(MountedConfigMaps(spec), Name(cm)) {
			out = append(out, w)
		}
	}
	return out
}

// ConfigFiles returns a ConfigMap's data entries whose key matches.
func ConfigFiles(r Resource, key *regexp.Regexp) map[string]string {
	if Kind(r) != "ConfigMap" {
		return nil
	}
	out := map[string]string{}
	for k, v := range MapOf(r.Props["data"]) {
		if key.MatchString(k) {
			out[k] = Str(v)
		}
	}
	return out
}

// SortedKeys iterates a map in a stable order so messages are stable.
func SortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// HPATarget returns the Utilization target of a resource metric, if set.
func HPATarget(r Resource, resourceName string) (percent int, found bool) {
	for _, m := range ListOf(Get(r.Props, "spec", "metrics")) {
		if Str(Get(m, "type")) != "Resource" || Str(Get(m, "resource", "name")) != resourceName {
			continue
		}
		target := Get(m, "resource", "target")
		if Str(Get(target, "type")) != "Utilization" {
			continue
		}
		if p, ok := Int(Get(target, "averageUtilization")); ok {
			return p, true
		}
	}
	return 0, false
}

// MemoryLimit is the largest memory limit among a pod's containers.
func MemoryLimit(spec map[string]any) (int64, bool) {
	var best int64
	for _, c := range Containers(spec, false) {
		if q, ok := Quantity(Get(c.Fields, "resources", "limits", "memory")); ok && q.Value() > best {
			best = q.Value()
		}
	}
	return best, best > 0
}

// CommandLines returns every container's command and args joined, for
// flags such as --cluster-replicas.
func CommandLines(spec map[string]any) []string {
	var out []string
	for _, c := range Containers(spec, true) {
		var parts []string
		for _, k := range []string{"command", "args"} {
			for _, a := range ListOf(c.Fields[k]) {
				parts = append(parts, Str(a))
			}
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}
