package rules

import (
	"regexp"
	"strconv"
	"strings"
)

// proxyKind is the proxy a config file is written for.
type proxyKind string

const (
	nginxProxy   proxyKind = "nginx"
	haproxyProxy proxyKind = "haproxy"
)

// edgeConfig is one proxy config file found in a ConfigMap.
type edgeConfig struct {
	key   string
	proxy proxyKind
	lines []string
}

var (
	nginxBlock   = regexp.MustCompile(`(?m)^\s*(http|server|upstream|stream)\s*\{`)
	haproxyBlock = regexp.MustCompile(`(?m)^\s*(frontend|backend|listen)\s+\S+`)
	anyKey       = regexp.MustCompile(`.`)
)

// edgeConfigs finds the nginx and HAProxy configs in a ConfigMap's data by
// their content, so the rules hold whatever the file is called.
func edgeConfigs(r Resource) []edgeConfig {
	files := configFiles(r, anyKey)
	var out []edgeConfig
	for _, k := range sortedKeys(files) {
		text := files[k]
		switch {
		case nginxBlock.MatchString(text):
			out = append(out, edgeConfig{key: k, proxy: nginxProxy, lines: stripComments(text)})
		case haproxyBlock.MatchString(text) && !nginxBlock.MatchString(text):
			out = append(out, edgeConfig{key: k, proxy: haproxyProxy, lines: stripComments(text)})
		}
	}
	return out
}

// find returns the first comment-free line matching re (at index 0) and
// the submatches.
func (e edgeConfig) find(re *regexp.Regexp) []string {
	for _, l := range e.lines {
		if m := re.FindStringSubmatch(l); m != nil {
			return append([]string{l}, m[1:]...)
		}
	}
	return nil
}

// nginxSize parses nginx's size syntax (bytes, k, m, g).
func nginxSize(s string) (int64, bool) {
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
