package rules

import (
	"regexp"
	"strconv"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

var goMemLimitRE = regexp.MustCompile(`^(\d+)(B|KiB|MiB|GiB|TiB)?$`)

// parseGoMemLimit reads GOMEMLIMIT's syntax (bytes with an optional IEC suffix).
func parseGoMemLimit(s string) (int64, bool) {
	m := goMemLimitRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, false
	}
	shift := map[string]uint{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[m[2]]
	return n << shift, true
}

// GoMemLimit keeps the Go heap target under the container limit.
var GoMemLimit = register(&Rule{
	ID:          "gomemlimit",
	Name:        "Go heap target below the memory limit",
	Category:    Resources,
	Level:       Mandatory,
	Thresholds:  []string{"goMemLimitMaxRatio"},
	Description: "Every container that sets GOMEMLIMIT (a Go service) has a memory limit and a GOMEMLIMIT of at most goMemLimitMaxRatio (90 %) of it.",
	Remediation: "Let the microservice component derive GOMEMLIMIT (GoRuntime: true) from <service>MemoryLimit, or lower the variable to the ratio of the limit.",
	Rationale:   "The blueprint article sets Node's --max-old-space-size so 'the runtime garbage collector triggers aggressively before the container crosses its Kubernetes resource limit, avoiding abrupt Out-Of-Memory (OOM) termination'. GOMEMLIMIT is Go's equivalent; the 10 % left covers stacks, buffers and the runtime.",
	CheckResource: func(r Resource, t Thresholds) []string {
		spec, _, ok := object.Pod(r)
		if !ok {
			return nil
		}
		var out []string
		for _, c := range object.Containers(spec, true) {
			v, set := c.Env(object.GoMarker)
			if !set || v == Unknown {
				continue
			}
			got, ok := parseGoMemLimit(v)
			if !ok {
				out = append(out, msgf("%s %s: GOMEMLIMIT %q is not a byte size such as 460MiB", object.Display(r), c.Label(), v))
				continue
			}
			limit, ok := object.Quantity(object.Get(c.Fields, "resources", "limits", "memory"))
			if !ok {
				out = append(out, msgf("%s %s: GOMEMLIMIT %s is set but the container has no memory limit", object.Display(r), c.Label(), v))
				continue
			}
			if allowed := int64(float64(limit.Value()) * t.GoMemLimitMaxRatio); got > allowed {
				out = append(out, msgf("%s %s: GOMEMLIMIT %s is above %.0f %% of the memory limit %s (%d bytes)", object.Display(r), c.Label(), v, t.GoMemLimitMaxRatio*100, limit.String(), allowed))
			}
		}
		return out
	},
})
