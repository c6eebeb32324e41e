// Package conf parses the config files the rules read inside ConfigMaps:
// nginx and HAProxy configs at the edge, redis.conf, postgresql.conf,
// pgbouncer.ini, Kafka's server.properties and declared topic lists.
package conf

import (
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// Config file keys the in-cluster data tier renders into ConfigMaps.
var (
	RedisConfKey    = regexp.MustCompile(`(^|[._-])redis\.conf$`)
	PostgresConfKey = regexp.MustCompile(`(^|[._-])postgresql\.conf$`)
	PgBouncerKey    = regexp.MustCompile(`(^|[._-])pgbouncer\.ini$`)
	KafkaPropsKey   = regexp.MustCompile(`(^|[._-])server\.properties$`)
	TopicsKey       = regexp.MustCompile(`(^|[._-])topics\.(json|ya?ml)$`)
)

// SpaceConf parses "key value" lines (redis.conf, postgresql.conf with
// "key = value"), lower-casing keys; later lines win as in both servers.
func SpaceConf(text string) map[string]string {
	out := map[string]string{}
	for _, l := range StripComments(text) {
		l = strings.Replace(l, "=", " ", 1)
		k, v, _ := strings.Cut(l, " ")
		out[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `'"`)
	}
	return out
}

// Properties parses a Java properties file (key=value or key: value).
func Properties(text string) map[string]string {
	out := map[string]string{}
	for _, l := range StripComments(text) {
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

// INI parses pgbouncer.ini into section -> key -> value (';' and '#' comments).
func INI(text string) map[string]map[string]string {
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

// AtoiOr reads an integer setting, or def when it is absent.
func AtoiOr(m map[string]string, key string, def int) (int, bool) {
	v, ok := m[key]
	if !ok || v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

var redisMemRE = regexp.MustCompile(`^(\d+)\s*(b|k|kb|m|mb|g|gb)?$`)

// RedisBytes parses Redis' memory units (1k = 1000, 1kb = 1024, ...).
func RedisBytes(s string) (int64, bool) {
	m := redisMemRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, false
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	mult := map[string]int64{"": 1, "b": 1, "k": 1000, "kb": 1 << 10, "m": 1000 * 1000, "mb": 1 << 20, "g": 1000 * 1000 * 1000, "gb": 1 << 30}[m[2]]
	return n * mult, true
}

// Topic is one declared Kafka topic.
type Topic struct {
	Name              string `json:"name"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replicationFactor"`
	Replication       int    `json:"replication"`
	// From is the resource that declares it.
	From object.Resource `json:"-"`
}

// Factor is the topic's replication factor, whichever field declares it.
func (t Topic) Factor() int { return max(t.ReplicationFactor, t.Replication) }

// Topics collects the declared topics: kafka provider Topic resources and
// Topics.json/yaml lists in ConfigMaps (what a topic-creating Job reads).
func Topics(rs []object.Resource) []Topic {
	var out []Topic
	for _, r := range object.ByType(rs, object.KafkaTopicType) {
		p, _ := object.Int(r.Props["partitions"])
		rf, _ := object.Int(r.Props["replicationFactor"])
		out = append(out, Topic{Name: object.Str(r.Props["name"]), Partitions: p, ReplicationFactor: rf, From: r})
	}
	for _, r := range object.ByKind(rs, "ConfigMap") {
		files := object.ConfigFiles(r, TopicsKey)
		for _, k := range object.SortedKeys(files) {
			var list []Topic
			if err := yaml.Unmarshal([]byte(files[k]), &list); err != nil {
				var wrapped struct {
					Topics []Topic `json:"topics"`
				}
				if yaml.Unmarshal([]byte(files[k]), &wrapped) != nil {
					continue
				}
				list = wrapped.Topics
			}
			for _, t := range list {
				t.From = r
				out = append(out, t)
			}
		}
	}
	return out
}

// StripComments drops '#' comments from config text (nginx, HAProxy,
// redis.conf, properties, ini), so a comment that names a forbidden
// directive is not mistaken for it.
func StripComments(text string) []string {
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
