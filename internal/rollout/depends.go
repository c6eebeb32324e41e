package rollout

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// serviceHost matches the in-cluster DNS name of a Service
// (<name>.<namespace>.svc), also inside a pod's name
// (kafka-0.kafka-headless.<ns>.svc) or a URL.
var serviceHost = regexp.MustCompile(`([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc\b`)

// blockDependents marks a workload blocked when a Service it is configured
// to call (a <svc>.<ns>.svc name in an env value, or in a Secret value an
// env var takes) selects only pods of blocked workloads: it cannot become
// ready while what it needs cannot start. Telemetry endpoints (env names
// with OTEL or OTLP) do not count: export is best-effort and never gates
// readiness. Repeated until nothing changes, so chains propagate.
func (r Checker) blockDependents(ctx context.Context, states []State, objs []workloadObj) error {
	type svcKey struct{ ns, name string }
	selectors := map[svcKey]map[string]string{}
	secretData := map[svcKey]map[string][]byte{}
	for _, ns := range uniq(namespacesOf(states)) {
		var svcs corev1.ServiceList
		if err := r.getJSON(ctx, &svcs, "-n", ns, "get", "services"); err != nil {
			return err
		}
		for _, s := range svcs.Items {
			selectors[svcKey{ns, s.Name}] = s.Spec.Selector
		}
		// Secret values arrive base64-encoded; the typed list decodes
		// them.
		var secrets corev1.SecretList
		if err := r.getJSON(ctx, &secrets, "-n", ns, "get", "secrets"); err != nil {
			return err
		}
		for _, s := range secrets.Items {
			secretData[svcKey{ns, s.Name}] = s.Data
		}
	}
	// deps[i] lists the Services workload i calls.
	deps := make([][]svcKey, len(states))
	for i, obj := range objs {
		ns := states[i].Namespace
		for _, c := range allContainers(obj.template.Spec) {
			for _, e := range c.Env {
				up := strings.ToUpper(e.Name)
				if strings.Contains(up, "OTEL") || strings.Contains(up, "OTLP") {
					continue
				}
				v := e.Value
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					v = string(secretData[svcKey{ns, e.ValueFrom.SecretKeyRef.Name}][e.ValueFrom.SecretKeyRef.Key])
				}
				for _, m := range serviceHost.FindAllStringSubmatch(v, -1) {
					deps[i] = append(deps[i], svcKey{m[3], m[1]})
				}
			}
		}
	}
	selects := func(sel, labels map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	for changed := true; changed; {
		changed = false
		for i := range states {
			for _, d := range deps[i] {
				sel, ok := selectors[d]
				if !ok {
					continue
				}
				var backers []int
				for j := range states {
					if states[j].Namespace == d.ns && selects(sel, objs[j].template.Labels) {
						backers = append(backers, j)
					}
				}
				if len(backers) == 0 {
					continue
				}
				blocked := true
				for _, j := range backers {
					blocked = blocked && !states[j].Expected()
				}
				if !blocked || backers[0] == i {
					continue
				}
				b := fmt.Sprintf("needs Service %s/%s, whose %s cannot start", d.ns, d.name, states[backers[0]].Workload)
				if !slices.Contains(states[i].Blockers, b) {
					states[i].Blockers = append(states[i].Blockers, b)
					sort.Strings(states[i].Blockers)
					changed = true
				}
			}
		}
	}
	return nil
}

// namespacesOf lists the states' namespaces, repeats included.
func namespacesOf(states []State) []string {
	out := make([]string, 0, len(states))
	for _, s := range states {
		out = append(out, s.Namespace)
	}
	return out
}
