package rules

import (
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Type tokens of the AWS-managed data tier.
const (
	awsReplicationGroup = "aws:elasticache/replicationGroup:ReplicationGroup"
	awsDBInstance       = "aws:rds/instance:Instance"
	awsDBClusterInst    = "aws:rds/clusterInstance:ClusterInstance"
	awsDBProxy          = "aws:rds/proxy:Proxy"
	awsMSKCluster       = "aws:msk/cluster:Cluster"
	awsMSKConfig        = "aws:msk/configuration:Configuration"
	kafkaTopicType      = "kafka:index/topic:Topic"
)

// Config file keys the in-cluster data tier renders into ConfigMaps.
var (
	redisConfKey    = regexp.MustCompile(`(^|[._-])redis\.conf$`)
	postgresConfKey = regexp.MustCompile(`(^|[._-])postgresql\.conf$`)
	pgbouncerKey    = regexp.MustCompile(`(^|[._-])pgbouncer\.ini$`)
	kafkaPropsKey   = regexp.MustCompile(`(^|[._-])server\.properties$`)
	topicsKey       = regexp.MustCompile(`(^|[._-])topics\.(json|ya?ml)$`)
)

// spaceConf parses "key value" lines (redis.conf, postgresql.conf with
// "key = value"), lower-casing keys; later lines win as in both servers.
func spaceConf(text string) map[string]string {
	out := map[string]string{}
	for _, l := range stripComments(text) {
		l = strings.Replace(l, "=", " ", 1)
		k, v, _ := strings.Cut(l, " ")
		out[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `'"`)
	}
	return out
}

// properties parses a Java properties file (key=value or key: value).
func properties(text string) map[string]string {
	out := map[string]string{}
	for _, l := range stripComments(text) {
		if strings.HasPrefix(l, "!") {
			continue
		}
		i := strings.IndexAny(l, "=:")
		if i < 0 {
			continue
		}
		out[strings.TrimSpace(l[:i])] = strings.TrimSpace(l[i+1:])
	}
	return out
}

// ini parses pgbouncer.ini into section -> key -> value (';' and '#' comments).
func ini(text string) map[string]map[string]string {
	out := map[string]map[string]string{}
	section := ""
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == ';' || l[0] == '#' {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			section = strings.ToLower(strings.Trim(l, "[]"))
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		if out[section] == nil {
			out[section] = map[string]string{}
		}
		out[section][strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

// atoiOr reads an integer setting, or def when it is absent.
func atoiOr(m map[string]string, key string, def int) (int, bool) {
	v, ok := m[key]
	if !ok || v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

var redisMemRE = regexp.MustCompile(`^(\d+)\s*(b|k|kb|m|mb|g|gb)?$`)

// redisBytes parses Redis' memory units (1k = 1000, 1kb = 1024, ...).
func redisBytes(s string) (int64, bool) {
	m := redisMemRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, false
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	mult := map[string]int64{"": 1, "b": 1, "k": 1000, "kb": 1 << 10, "m": 1000 * 1000, "mb": 1 << 20, "g": 1000 * 1000 * 1000, "gb": 1 << 30}[m[2]]
	return n * mult, true
}

// topic is one declared Kafka topic.
type topic struct {
	Name              string `json:"name"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replicationFactor"`
	Replication       int    `json:"replication"`
	// from is the resource that declares it.
	from Resource
}

func (t topic) replication() int { return max(t.ReplicationFactor, t.Replication) }

// topics collects the declared topics: kafka provider Topic resources and
// topics.json/yaml lists in ConfigMaps (what a topic-creating Job reads).
func topics(rs []Resource) []topic {
	var out []topic
	for _, r := range byType(rs, kafkaTopicType) {
		p, _ := intOf(r.Props["partitions"])
		rf, _ := intOf(r.Props["replicationFactor"])
		out = append(out, topic{Name: str(r.Props["name"]), Partitions: p, ReplicationFactor: rf, from: r})
	}
	for _, r := range byKind(rs, "ConfigMap") {
		files := configFiles(r, topicsKey)
		for _, k := range sortedKeys(files) {
			var list []topic
			if err := yaml.Unmarshal([]byte(files[k]), &list); err != nil {
				var wrapped struct {
					Topics []topic `json:"topics"`
				}
				if yaml.Unmarshal([]byte(files[k]), &wrapped) != nil {
					continue
				}
				list = wrapped.Topics
			}
			for _, t := range list {
				t.from = r
				out = append(out, t)
			}
		}
	}
	return out
}

// containerMemoryLimit is the largest memory limit among a pod's containers.
func containerMemoryLimit(spec map[string]any) (int64, bool) {
	var best int64
	for _, c := range containers(spec, false) {
		if q, ok := quantity(get(c.m, "resources", "limits", "memory")); ok && q.Value() > best {
			best = q.Value()
		}
	}
	return best, best > 0
}

// commandLines returns every container's command and args joined, for
// flags such as --cluster-replicas.
func commandLines(spec map[string]any) []string {
	var out []string
	for _, c := range containers(spec, true) {
		var parts []string
		for _, k := range []string{"command", "args"} {
			for _, a := range listOf(c.m[k]) {
				parts = append(parts, str(a))
			}
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}
