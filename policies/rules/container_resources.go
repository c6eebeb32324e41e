package rules

import "github.com/scaleplane/scaleplane/policies/rules/internal/object"

// ContainerResources requires requests and a memory limit.
var ContainerResources = register(&Rule{
	ID:          "container-resources",
	Name:        "Containers declare what they need",
	Category:    Resources,
	Level:       Mandatory,
	Description: "Every container and init container has CPU and memory requests and a memory limit.",
	Remediation: "Set <service>CpuRequest, <service>MemoryRequest and <service>MemoryLimit in the stack file (microservice.Resources); for other workloads add resources.requests and resources.limits.memory.",
	Rationale:   "The HPA's utilization targets are percentages of the requests: without them the autoscaler cannot scale. Without a memory limit a leak takes the whole node down instead of one pod; the articles cap the runtime's heap below the container limit for exactly that reason.",
	CheckResource: func(r Resource, t Thresholds) []string {
		spec, _, ok := object.Pod(r)
		if !ok {
			return nil
		}
		var out []string
		for _, c := range object.Containers(spec, true) {
			res := c.Fields["resources"]
			for _, need := range []struct{ path []any }{
				{[]any{"requests", "cpu"}}, {[]any{"requests", "memory"}}, {[]any{"limits", "memory"}},
			} {
				v := object.Get(res, need.path...)
				if object.IsUnknown(v) {
					continue
				}
				if q, ok := object.Quantity(v); !ok || q.Sign() <= 0 {
					out = append(out, msgf("%s %s: resources.%s.%s is not set", object.Display(r), c.Label(), need.path[0], need.path[1]))
				}
			}
		}
		return out
	},
})
