package rules

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// defaultGraceSeconds is Kubernetes' terminationGracePeriodSeconds when unset.
const defaultGraceSeconds = 30

var sleepArg = regexp.MustCompile(`\bsleep\s+(\d+)`)

// preStopSeconds reads a preStop sleep: the sleep action or an exec of `sleep N`.
func preStopSeconds(c object.Container) int {
	pre := object.Get(c.Fields, "lifecycle", "preStop")
	if s, ok := object.Int(object.Get(pre, "sleep", "seconds")); ok {
		return s
	}
	var cmd []string
	for _, a := range object.ListOf(object.Get(pre, "exec", "command")) {
		cmd = append(cmd, object.Str(a))
	}
	if m := sleepArg.FindStringSubmatch(strings.Join(cmd, " ")); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// TerminationGrace leaves time for the preStop sleep and the drain.
var TerminationGrace = register(&Rule{
	ID:          "termination-grace",
	Name:        "Grace period covers preStop and drain",
	Category:    Availability,
	Level:       Mandatory,
	Thresholds:  []string{"drainSecondsEnv"},
	Description: "Every pod's terminationGracePeriodSeconds (default 30) is at least each container's preStop sleep plus its drain timeout (the drainSecondsEnv variable).",
	Remediation: "Let the microservice component compute the grace period from preStopSeconds and drainSeconds, or raise terminationGracePeriodSeconds / lower drainSeconds in the stack file.",
	Rationale:   "The articles' graceful shutdown: on SIGTERM 'stop accepting new requests, and finish existing ones'. Kubernetes kills the pod when the grace period ends, preStop included; a drain longer than what is left is cut off mid-request.",
	CheckResource: func(r Resource, t Thresholds) []string {
		spec, _, ok := object.Pod(r)
		if !ok {
			return nil
		}
		grace := defaultGraceSeconds
		if v := spec["terminationGracePeriodSeconds"]; v != nil {
			g, ok := object.Int(v)
			if !ok {
				return nil
			}
			grace = g
		}
		var out []string
		for _, c := range object.Containers(spec, false) {
			drain := 0
			if v, set := c.Env(t.DrainSecondsEnv); set {
				drain = seconds(v)
			}
			pre := preStopSeconds(c)
			if need := pre + drain; grace < need {
				out = append(out, msgf("%s %s: terminationGracePeriodSeconds %d is below preStop %d s + drain %d s = %d s", object.Display(r), c.Label(), grace, pre, drain, need))
			}
		}
		return out
	},
})

// seconds reads a drain time given as whole seconds ("20") or as a Go
// duration ("20s", what the services' SHUTDOWN_TIMEOUT takes), rounded up.
func seconds(v string) int {
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}
