// Package rules holds scaleplane's policy rules as plain Go: a resource
// rule takes one resource's type and properties, a stack rule takes every
// resource of the stack, and both return violations. The compiled policy
// pack (../main.go), the offline `scaleplane check` and the tests all run
// these same functions, so a rule is unit-tested once and enforced the same
// way by the Pulumi CLI and by CI.
//
// Rules judge what was declared from the outside: they import nothing of
// the stacks or components, and every number they compare against comes
// from Thresholds, which the caller builds per stack.
package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// Level is how a violation is enforced.
type Level string

// The enforcement levels: a mandatory violation fails the preview, the
// update and `scaleplane check`; an advisory one is reported only.
const (
	Mandatory Level = "mandatory"
	Advisory  Level = "advisory"
)

// Category groups rules in the docs and in check's output.
type Category string

// The categories, in the order the docs list them.
const (
	Scaling       Category = "scaling"
	Resources     Category = "resources"
	Availability  Category = "availability"
	Edge          Category = "edge"
	Security      Category = "security"
	Observability Category = "observability"
	DataTier      Category = "data-tier"
	Capacity      Category = "capacity"
)

// Categories lists every category in display order.
var Categories = []Category{Scaling, Resources, Availability, Edge, Security, Observability, DataTier, Capacity}

// Resource is one declared resource as a rule sees it: the Pulumi type
// token and the inputs the provider receives (for Kubernetes objects:
// apiVersion, kind, metadata, spec, data...). It is defined with the
// accessors that read it, in internal/object.
type Resource = object.Resource

// Unknown is what a value not known yet (a preview's computed output)
// looks like to a rule; rules do not judge what they cannot see.
const Unknown = object.Unknown

// Violation is one broken rule on one resource.
type Violation struct {
	// RuleID is the rule's stable id.
	RuleID string
	// URN names the offending resource; empty when the stack as a whole is at fault.
	URN string
	// Message says what is wrong with the values found and the threshold.
	Message string
}

// Rule is one policy. Exactly one of CheckResource and CheckStack is set.
type Rule struct {
	// ID is the stable kebab-case id, the policy name the Pulumi CLI shows.
	ID string
	// Name is a short display name.
	Name     string
	Category Category
	// Description says what the rule requires, in one sentence.
	Description string
	// Remediation says how to fix a violation in scaleplane's terms.
	Remediation string
	// Rationale says why, from the articles the platform is built on.
	Rationale string
	Level     Level
	// Thresholds lists the JSON names of the Thresholds fields the rule
	// reads; the docs and the pack's config schema are built from it.
	Thresholds []string
	// CheckResource returns one message per problem of a single resource.
	CheckResource func(r Resource, t Thresholds) []string
	// CheckStack sees every resource of the stack at once.
	CheckStack func(rs []Resource, t Thresholds) []Violation
}

// Stack reports whether the rule needs every resource at once.
func (r *Rule) Stack() bool { return r.CheckStack != nil }

// ConfigLevelKey is the key the Pulumi CLI adds to every policy's config
// (the enforcement level); it is not a threshold.
const ConfigLevelKey = "enforcementLevel"

// Configured returns base with the thresholds of the rule's own policy
// config applied. Only the rule's declared Thresholds may be set there: a
// name the rule does not read is an error, so a value meant for another
// policy, or misspelt, cannot pass silently.
func (r *Rule) Configured(base Thresholds, config map[string]any) (Thresholds, error) {
	own := make(map[string]any, len(config))
	for k, v := range config {
		if k == ConfigLevelKey {
			continue
		}
		if !slices.Contains(r.Thresholds, k) {
			known := "none"
			if len(r.Thresholds) > 0 {
				known = strings.Join(r.Thresholds, ", ")
			}
			return base, fmt.Errorf("threshold %q: unknown to policy %s (its thresholds: %s)", k, r.ID, known)
		}
		own[k] = v
	}
	return base.Override(own)
}

// Check runs the rule over a set of resources: a resource rule on each, a
// stack rule once. Every violation carries the rule's id.
func (r *Rule) Check(rs []Resource, t Thresholds) []Violation {
	var out []Violation
	if r.CheckStack != nil {
		for _, v := range r.CheckStack(rs, t) {
			v.RuleID = r.ID
			out = append(out, v)
		}
		return out
	}
	for _, res := range rs {
		for _, m := range r.CheckResource(res, t) {
			out = append(out, Violation{RuleID: r.ID, URN: res.URN, Message: m})
		}
	}
	return out
}

var registry []*Rule

// register adds a rule at package init; each rule file registers its own.
func register(r *Rule) *Rule {
	registry = append(registry, r)
	return r
}

// All returns every rule, by category in display order, then by id.
func All() []*Rule {
	out := slices.Clone(registry)
	slices.SortFunc(out, func(a, b *Rule) int {
		return cmp.Or(cmp.Compare(slices.Index(Categories, a.Category), slices.Index(Categories, b.Category)), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// ByID returns the rule with the id, or nil.
func ByID(id string) *Rule {
	for _, r := range registry {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// CheckAll runs every rule over the resources.
func CheckAll(rs []Resource, t Thresholds) []Violation {
	var out []Violation
	for _, r := range All() {
		out = append(out, r.Check(rs, t)...)
	}
	return out
}

// msgf is fmt.Sprintf, named for what rules use it for.
func msgf(format string, a ...any) string { return fmt.Sprintf(format, a...) }
