package conf

import (
	"regexp"
	"strconv"
	"strings"
)

// Listener is one listening socket of an edge config with the block that
// serves it: an nginx server block (its listen line) or an HAProxy
// frontend/listen section (its bind line). The edge rules judge what a
// port does, and a port is served by exactly such a block.
type Listener struct {
	// Port is the listening port.
	Port int
	// TLS is set when the proxy itself terminates TLS on the port (nginx
	// "listen ... ssl", HAProxy "bind ... ssl").
	TLS bool
	// Proxy is set when the port expects a PROXY protocol header (nginx
	// "listen ... proxy_protocol", HAProxy "bind ... accept-proxy").
	Proxy bool
	// Block names the block: "server" (nginx) or the HAProxy section's name.
	Block string
	// Lines are the block's lines, nested nginx locations included.
	Lines []string
}

var (
	nginxListen  = regexp.MustCompile(`^listen\s+(?:\S*:)?(\d+)\b([^;]*);`)
	haproxyBind  = regexp.MustCompile(`^bind\s+\S*?:(\d+)\b(.*)$`)
	haproxyStart = regexp.MustCompile(`^(global|defaults|frontend|backend|listen|resolvers|peers|userlist|program|http-errors|ring|cache|mailers)\b\s*(\S*)`)
	nginxServer  = regexp.MustCompile(`^server\s*\{`)
)

// Listeners returns the config's listeners, one per listen/bind line.
func (e EdgeConfig) Listeners() []Listener {
	if e.Proxy == HAProxy {
		return haproxyListeners(e.Lines)
	}
	return nginxListeners(e.Lines)
}

// Global returns the lines outside every listener's block: nginx's http
// level (ssl_protocols there applies to every server), HAProxy's global
// and defaults sections.
func (e EdgeConfig) Global() []string {
	if e.Proxy == HAProxy {
		var out []string
		section := ""
		for _, l := range e.Lines {
			if m := haproxyStart.FindStringSubmatch(l); m != nil {
				section = m[1]
				continue
			}
			if section == "global" || section == "defaults" {
				out = append(out, l)
			}
		}
		return out
	}
	var out []string
	for _, b := range nginxParts(e.Lines) {
		if !b.server {
			out = append(out, b.lines...)
		}
	}
	return out
}

func haproxyListeners(lines []string) []Listener {
	var out []Listener
	type section struct {
		name  string
		lines []string
	}
	var sections []section
	for _, l := range lines {
		if m := haproxyStart.FindStringSubmatch(l); m != nil {
			sections = append(sections, section{name: m[1] + " " + m[2]})
			continue
		}
		if len(sections) > 0 {
			sections[len(sections)-1].lines = append(sections[len(sections)-1].lines, l)
		}
	}
	for _, s := range sections {
		if !strings.HasPrefix(s.name, "frontend") && !strings.HasPrefix(s.name, "listen") {
			continue
		}
		for _, l := range s.lines {
			m := haproxyBind.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			port, _ := strconv.Atoi(m[1])
			opts := strings.Fields(m[2])
			out = append(out, Listener{Port: port, TLS: has(opts, "ssl"), Proxy: has(opts, "accept-proxy"), Block: s.name, Lines: s.lines})
		}
	}
	return out
}

// nginxPart is a run of lines: one server block, or the lines between them.
type nginxPart struct {
	server bool
	lines  []string
}

// nginxParts splits an nginx config into its server blocks and the rest,
// by counting braces (the configs the rules read put no brace in strings).
func nginxParts(lines []string) []nginxPart {
	var out []nginxPart
	var cur *nginxPart
	depth := 0
	for _, l := range lines {
		if cur == nil && nginxServer.MatchString(l) {
			out = append(out, nginxPart{server: true})
			cur = &out[len(out)-1]
			depth = 0
		}
		if cur != nil {
			depth += strings.Count(l, "{") - strings.Count(l, "}")
			cur.lines = append(cur.lines, l)
			if depth <= 0 {
				cur = nil
			}
			continue
		}
		if len(out) == 0 || out[len(out)-1].server {
			out = append(out, nginxPart{})
		}
		out[len(out)-1].lines = append(out[len(out)-1].lines, l)
	}
	return out
}

func nginxListeners(lines []string) []Listener {
	var out []Listener
	for _, b := range nginxParts(lines) {
		if !b.server {
			continue
		}
		for _, l := range b.lines {
			m := nginxListen.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			port, _ := strconv.Atoi(m[1])
			opts := strings.Fields(m[2])
			out = append(out, Listener{Port: port, TLS: has(opts, "ssl"), Proxy: has(opts, "proxy_protocol"), Block: "server", Lines: b.lines})
		}
	}
	return out
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Find returns the first line of the listener's block matching re and
// the submatches, like EdgeConfig.Find.
func (l Listener) Find(re *regexp.Regexp) []string {
	return EdgeConfig{Lines: l.Lines}.Find(re)
}

// FindAll returns every line of the listener's block matching re.
func (l Listener) FindAll(re *regexp.Regexp) [][]string {
	var out [][]string
	for _, line := range l.Lines {
		if m := re.FindStringSubmatch(line); m != nil {
			out = append(out, append([]string{line}, m[1:]...))
		}
	}
	return out
}
