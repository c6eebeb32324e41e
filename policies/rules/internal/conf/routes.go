package conf

import (
	"regexp"
	"strings"
)

// Route says what a listener does with a request path.
type Route struct {
	// Served is set when the path is forwarded or answered with content
	// (proxy_pass, use_backend, use-service, a 2xx return...).
	Served bool
	// By is the directive that serves it.
	By string
}

// Route decides what the listener does with a request for path. It
// follows each proxy's own matching order for the forms the edge configs
// use (nginx: exact, ^~ prefix, regex in order, longest prefix; HAProxy:
// every http-request deny before any use_backend), and treats a
// condition it cannot read as matching a route and not matching a deny,
// so it errs towards reporting.
func (l Listener) Route(proxy ProxyKind, path string) Route {
	if proxy == HAProxy {
		return haproxyRoute(l.Lines, path)
	}
	return nginxRoute(l.Lines, path)
}

// nginxLocation is one location of a server block.
type nginxLocation struct {
	modifier, pattern string
	body              []string
}

var (
	nginxLocationRE = regexp.MustCompile(`^location\s+(=|~\*|~|\^~)?\s*("[^"]*"|[^\s{]+)\s*\{(.*)$`)
	nginxServes     = regexp.MustCompile(`\b(proxy_pass|grpc_pass|fastcgi_pass|uwsgi_pass|scgi_pass|memcached_pass|stub_status|return\s+2\d\d)\b`)
)

func nginxLocations(lines []string) []nginxLocation {
	var out []nginxLocation
	for i := 0; i < len(lines); i++ {
		m := nginxLocationRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		loc := nginxLocation{modifier: m[1], pattern: strings.Trim(m[2], `"`)}
		depth := 1 + strings.Count(m[3], "{") - strings.Count(m[3], "}")
		loc.body = append(loc.body, m[3])
		for depth > 0 && i+1 < len(lines) {
			i++
			depth += strings.Count(lines[i], "{") - strings.Count(lines[i], "}")
			loc.body = append(loc.body, lines[i])
		}
		out = append(out, loc)
	}
	return out
}

func (n nginxLocation) matches(path string) bool {
	switch n.modifier {
	case "=":
		return path == n.pattern
	case "~", "~*":
		expr := n.pattern
		if n.modifier == "~*" {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return true
		}
		return re.MatchString(path)
	default:
		return strings.HasPrefix(path, n.pattern)
	}
}

func nginxRoute(lines []string, path string) Route {
	locs := nginxLocations(lines)
	chosen := -1
	for i, l := range locs {
		if l.modifier == "=" && l.matches(path) {
			chosen = i
		}
	}
	if chosen < 0 {
		longest := -1
		for i, l := range locs {
			if (l.modifier == "" || l.modifier == "^~") && l.matches(path) && (longest < 0 || len(l.pattern) > len(locs[longest].pattern)) {
				longest = i
			}
		}
		if longest >= 0 && locs[longest].modifier == "^~" {
			chosen = longest
		} else {
			for i, l := range locs {
				if (l.modifier == "~" || l.modifier == "~*") && l.matches(path) {
					chosen = i
					break
				}
			}
			if chosen < 0 {
				chosen = longest
			}
		}
	}
	if chosen < 0 {
		// No location: nginx would look for a file under its default
		// root; the edge image ships none, so nothing is served.
		for _, l := range lines {
			if m := nginxServes.FindString(l); m != "" && !strings.HasPrefix(l, "location") {
				return Route{Served: true, By: l}
			}
		}
		return Route{}
	}
	for _, b := range locs[chosen].body {
		if nginxServes.MatchString(b) {
			return Route{Served: true, By: "location " + strings.TrimSpace(locs[chosen].modifier+" "+locs[chosen].pattern) + " { " + b}
		}
	}
	return Route{}
}

var (
	haproxyACL     = regexp.MustCompile(`^acl\s+(\S+)\s+(.*)$`)
	haproxyDeny    = regexp.MustCompile(`^http-request\s+(deny|reject|tarpit)\b(.*)$`)
	haproxyServe   = regexp.MustCompile(`^(use_backend|default_backend|http-request\s+use-service|http-request\s+return\s+status\s+2\d\d|stats\s+uri|stats\s+enable)\b(.*)$`)
	haproxyCond    = regexp.MustCompile(`\b(if|unless)\s+(.*)$`)
	haproxyAnonACL = regexp.MustCompile(`^\{\s*(.*?)\s*\}$`)
	haproxyRegFlag = regexp.MustCompile(`-m\s+reg\s+(-i\s+)?(\S+)`)
)

func haproxyRoute(lines []string, path string) Route {
	acls := map[string][]string{}
	for _, l := range lines {
		if m := haproxyACL.FindStringSubmatch(l); m != nil {
			acls[m[1]] = append(acls[m[1]], m[2])
		}
	}
	// http-request rules run in order and the first final one wins (a
	// deny, a return, a use-service); use_backend is chosen only after all
	// of them, so a deny anywhere before it keeps a path from the backend.
	for _, l := range lines {
		deny := haproxyDeny.FindStringSubmatch(l)
		serve := haproxyServe.FindStringSubmatch(l)
		switch {
		case deny != nil:
			if applies, known := haproxyApplies(deny[2], acls, path); known && applies {
				return Route{}
			}
		case serve != nil && strings.HasPrefix(serve[1], "http-request"):
			if applies, known := haproxyApplies(serve[2], acls, path); applies || !known {
				return Route{Served: true, By: l}
			}
		}
	}
	for _, l := range lines {
		m := haproxyServe.FindStringSubmatch(l)
		if m == nil || strings.HasPrefix(m[1], "http-request") {
			continue
		}
		if m[1] == "default_backend" || strings.HasPrefix(m[1], "stats") {
			return Route{Served: true, By: l}
		}
		if applies, known := haproxyApplies(m[2], acls, path); applies || !known {
			return Route{Served: true, By: l}
		}
	}
	return Route{}
}

// haproxyApplies evaluates a rule's "if/unless COND" for a path; a rule
// without a condition always applies. known is false when the condition
// is not one of the path tests read here.
func haproxyApplies(rest string, acls map[string][]string, path string) (applies, known bool) {
	m := haproxyCond.FindStringSubmatch(rest)
	if m == nil {
		return true, true
	}
	cond := strings.TrimSpace(m[2])
	var match, ok bool
	if a := haproxyAnonACL.FindStringSubmatch(cond); a != nil {
		match, ok = haproxyPathTest(a[1], path)
	} else if defs, found := acls[cond]; found {
		ok = true
		for _, d := range defs {
			mm, k := haproxyPathTest(d, path)
			if !k {
				ok = false
			}
			match = match || mm
		}
	}
	if !ok {
		return false, false
	}
	if m[1] == "unless" {
		return !match, true
	}
	return match, true
}

// haproxyPathTest evaluates one ACL expression on the path: path,
// path_beg, path_reg and "path[,converters] -m reg|beg".
func haproxyPathTest(expr, path string) (match, known bool) {
	f := strings.Fields(expr)
	if len(f) < 2 {
		return false, false
	}
	fetch := strings.SplitN(f[0], ",", 2)[0]
	if fetch != "path" && fetch != "path_beg" && fetch != "path_reg" {
		return false, false
	}
	if m := haproxyRegFlag.FindStringSubmatch(expr); m != nil || fetch == "path_reg" {
		expr := f[len(f)-1]
		insensitive := false
		if m != nil {
			expr, insensitive = m[2], m[1] != ""
		}
		expr = strings.ReplaceAll(expr, `\\`, `\`)
		if insensitive {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return false, false
		}
		return re.MatchString(path), true
	}
	values := f[1:]
	beg := fetch == "path_beg"
	if len(values) >= 2 && values[0] == "-m" {
		beg, values = values[1] == "beg", values[2:]
	}
	for _, v := range values {
		if (beg && strings.HasPrefix(path, v)) || (!beg && path == v) {
			return true, true
		}
	}
	return false, true
}
