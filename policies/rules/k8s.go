package rules

import (
	"encoding/json"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Unknown is what a value not known yet (a preview's computed output)
// looks like to a rule; rules do not judge what they cannot see.
const Unknown = "[unknown]"

// kind returns the Kubernetes kind of a kubernetes:* resource, "" otherwise.
func kind(r Resource) string {
	if !strings.HasPrefix(r.Type, "kubernetes:") {
		return ""
	}
	parts := strings.Split(r.Type, ":")
	return parts[len(parts)-1]
}

// get walks nested maps and lists (an int key indexes a list).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func listOf(v any) []any {
	l, _ := v.([]any)
	return l
}

func str(v any) string {
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

// intOf reads a number whatever its decoded Go type.
func intOf(v any) (int, bool) {
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

func boolOf(v any) (bool, bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		p, err := strconv.ParseBool(b)
		return p, err == nil
	}
	return false, false
}

func isTrue(v any) bool {
	b, ok := boolOf(v)
	return ok && b
}

func unknown(v any) bool { return v == Unknown }

// metaName and namespace read the object's metadata; an empty namespace
// is Kubernetes' "default".
func metaName(r Resource) string { return str(get(r.Props, "metadata", "name")) }

func namespace(r Resource) string {
	if kind(r) == "Namespace" {
		return metaName(r)
	}
	ns := str(get(r.Props, "metadata", "namespace"))
	if ns == "" {
		return "default"
	}
	return ns
}

// display names an object for messages: Kind namespace/name.
func display(r Resource) string {
	if k := kind(r); k != "" {
		if n := metaName(r); n != "" {
			return k + " " + namespace(r) + "/" + n
		}
		return k + " " + r.Name
	}
	return r.Type + " " + r.Name
}

// workloadKinds run pods from a template; long-running ones serve or work continuously.
var (
	workloadKinds    = []string{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
	longRunningKinds = []string{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"}
	scalableKinds    = []string{"Deployment", "StatefulSet"}
)

// pod returns the pod spec and the pod template's metadata of a workload.
func pod(r Resource) (spec, meta map[string]any, ok bool) {
	switch kind(r) {
	case "Pod":
		return mapOf(r.Props["spec"]), mapOf(r.Props["metadata"]), true
	case "CronJob":
		t := get(r.Props, "spec", "jobTemplate", "spec", "template")
		return mapOf(get(t, "spec")), mapOf(get(t, "metadata")), true
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		t := get(r.Props, "spec", "template")
		return mapOf(get(t, "spec")), mapOf(get(t, "metadata")), true
	}
	return nil, nil, false
}

// container is one container of a pod spec with its role.
type container struct {
	name string
	init bool
	m    map[string]any
}

func containers(spec map[string]any, withInit bool) []container {
	var out []container
	if withInit {
		for _, c := range listOf(spec["initContainers"]) {
			out = append(out, container{name: str(get(c, "name")), init: true, m: mapOf(c)})
		}
	}
	for _, c := range listOf(spec["containers"]) {
		out = append(out, container{name: str(get(c, "name")), m: mapOf(c)})
	}
	return out
}

func (c container) label() string {
	if c.init {
		return "init container " + c.name
	}
	return "container " + c.name
}

// env returns a variable's literal value; set reports whether the
// variable exists at all (a valueFrom counts as set).
func (c container) env(name string) (value string, set bool) {
	for _, e := range listOf(c.m["env"]) {
		if str(get(e, "name")) == name {
			return str(get(e, "value")), true
		}
	}
	return "", false
}

// envNames lists the container's variable names.
func (c container) envNames() []string {
	var out []string
	for _, e := range listOf(c.m["env"]) {
		out = append(out, str(get(e, "name")))
	}
	return out
}

// goMarker is the variable the platform sets on every Go service; its
// presence is how rules recognise one from the outside.
const goMarker = "GOMEMLIMIT"

// goService reports whether any container of the pod spec is a Go service.
func goService(spec map[string]any) bool {
	for _, c := range containers(spec, false) {
		if _, ok := c.env(goMarker); ok {
			return true
		}
	}
	return false
}

// quantity parses a Kubernetes quantity; ok is false when absent or invalid.
func quantity(v any) (resource.Quantity, bool) {
	s := str(v)
	if s == "" || s == Unknown {
		return resource.Quantity{}, false
	}
	if n, ok := v.(float64); ok {
		s = strconv.FormatFloat(n, 'f', -1, 64)
	}
	q, err := resource.ParseQuantity(s)
	return q, err == nil
}

// labelsOf returns an object's or template's labels as strings.
func labelsOf(meta map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range mapOf(meta["labels"]) {
		out[k] = str(v)
	}
	return out
}

// selects reports whether a label selector (matchLabels and the In/Exists
// expressions, or a Service's plain map) selects the labels. An empty
// selector selects nothing here: no rule wants "everything" to count.
func selects(selector map[string]any, labels map[string]string) bool {
	match := mapOf(selector["matchLabels"])
	exprs := listOf(selector["matchExpressions"])
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
		if labels[k] != str(v) {
			return false
		}
	}
	for _, e := range exprs {
		key, op := str(get(e, "key")), str(get(e, "operator"))
		val, has := labels[key]
		var values []string
		for _, x := range listOf(get(e, "values")) {
			values = append(values, str(x))
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

// byKind returns the Kubernetes objects of the given kinds.
func byKind(rs []Resource, kinds ...string) []Resource {
	var out []Resource
	for _, r := range rs {
		if slices.Contains(kinds, kind(r)) {
			out = append(out, r)
		}
	}
	return out
}

// byType returns the resources of a Pulumi type token.
func byType(rs []Resource, typ string) []Resource {
	var out []Resource
	for _, r := range rs {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// hpaFor returns the HorizontalPodAutoscalers aimed at a workload: same
// namespace, kind and name; a target name not known yet (a preview)
// matches a workload declared under the same Pulumi parent.
func hpaFor(rs []Resource, w Resource) []Resource {
	var out []Resource
	for _, h := range byKind(rs, "HorizontalPodAutoscaler") {
		if namespace(h) != namespace(w) {
			continue
		}
		ref := mapOf(get(h.Props, "spec", "scaleTargetRef"))
		if k := str(ref["kind"]); k != "" && k != kind(w) {
			continue
		}
		name := ref["name"]
		if str(name) == metaName(w) || (unknown(name) && h.Parent != "" && h.Parent == w.Parent) {
			out = append(out, h)
		}
	}
	return out
}

// replicaRange is the fewest and most pods a workload runs: its HPA's
// bounds if it has one, else spec.replicas (default 1).
func replicaRange(rs []Resource, w Resource) (lo, hi int) {
	if hs := hpaFor(rs, w); len(hs) > 0 {
		lo, ok := intOf(get(hs[0].Props, "spec", "minReplicas"))
		if !ok {
			lo = 1
		}
		hi, _ := intOf(get(hs[0].Props, "spec", "maxReplicas"))
		return lo, max(lo, hi)
	}
	n, ok := intOf(get(w.Props, "spec", "replicas"))
	if !ok {
		n = 1
	}
	return n, n
}

// mountedConfigMaps returns the names of the ConfigMaps a pod spec mounts
// (directly or through a projected volume).
func mountedConfigMaps(spec map[string]any) []string {
	var out []string
	for _, v := range listOf(spec["volumes"]) {
		if n := str(get(v, "configMap", "name")); n != "" {
			out = append(out, n)
		}
		for _, s := range listOf(get(v, "projected", "sources")) {
			if n := str(get(s, "configMap", "name")); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// mounting returns the workloads of the kinds that mount the ConfigMap.
func mounting(rs []Resource, cm Resource, kinds ...string) []Resource {
	var out []Resource
	for _, w := range byKind(rs, kinds...) {
		spec, _, _ := pod(w)
		if namespace(w) == namespace(cm) && slices.Contains(mountedConfigMaps(spec), metaName(cm)) {
			out = append(out, w)
		}
	}
	return out
}

// configFiles returns a ConfigMap's data entries whose key matches.
func configFiles(r Resource, key *regexp.Regexp) map[string]string {
	if kind(r) != "ConfigMap" {
		return nil
	}
	out := map[string]string{}
	for k, v := range mapOf(r.Props["data"]) {
		if key.MatchString(k) {
			out[k] = str(v)
		}
	}
	return out
}

// sortedKeys iterates a map in a stable order so messages are stable.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// stripComments drops '#' comments from config text (nginx, HAProxy,
// redis.conf, properties, ini), so a comment that names a forbidden
// directive is not mistaken for it.
func stripComments(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}
