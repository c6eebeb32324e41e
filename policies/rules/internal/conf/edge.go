package conf

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// ProxyKind is the proxy a config file is written for.
type ProxyKind string

const (
	Nginx   ProxyKind = "nginx"
	HAProxy ProxyKind = "haproxy"
)

// EdgeConfig is one proxy config file found in a ConfigMap.
type EdgeConfig struct {
	// Key is the ConfigMap data key holding the file.
	Key string
	// Proxy is the proxy the file is written for.
	Proxy ProxyKind
	// Lines are the file's lines without comments or blanks.
	Lines []string
}

var (
	nginxBlock   = regexp.MustCompile(`(?m)^\s*(http|server|upstream|stream)\s*\{`)
	haproxyBlock = regexp.MustCompile(`(?m)^\s*(frontend|backend|listen)\s+\S+`)
	anyKey       = regexp.MustCompile(`.`)
)

// EdgeConfigs finds the nginx and HAProxy configs in a ConfigMap's data by
// their content, so the rules hold whatever the file is called.
func EdgeConfigs(r object.Resource) []EdgeConfig {
	files := object.ConfigFiles(r, anyKey)
	var out []EdgeConfig
	for _, k := range object.SortedKeys(files) {
		text := files[k]
		switch {
		case nginxBlock.MatchString(text):
			out = append(out, EdgeConfig{Key: k, Proxy: Nginx, Lines: StripComments(text)})
		case haproxyBlock.MatchString(text) && !nginxBlock.MatchString(text):
			out = append(out, EdgeConfig{Key: k, Proxy: HAProxy, Lines: StripComments(text)})
		}
	}
	return out
}

// Find returns the first comment-free line matching re (at index 0) and
// the submatches.
func (e EdgeConfig) Find(re *regexp.Regexp) []string {
	for _, l := range e.Lines {
		if m := re.FindStringSubmatch(l); m != nil {
			return append([]string{l}, m[1:]...)
		}
	}
	return nil
}

// NginxSize parses nginx's size syntax (bytes, k, m, g).
func NginxSize(s string) (int64, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "g"):
		mult, s = 1<<30, strings.TrimSuffix(s, "g")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err == nil
}
