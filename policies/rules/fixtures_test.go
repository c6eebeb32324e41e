package rules

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

// A fixture is a multi-document YAML file: Kubernetes objects as they
// would be applied, raw Pulumi resources ({type, name, inputs}) for the
// other providers, and optionally one {fixture: {environment, thresholds}}
// document choosing the thresholds. A "# want: text" line in a fail
// fixture names a fragment the rule's message must contain.
type fixtureSettings struct {
	Environment string         `json:"environment"`
	Thresholds  map[string]any `json:"thresholds"`
}

var (
	docSep = regexp.MustCompile(`(?m)^---\s*$`)
	wantRE = regexp.MustCompile(`(?m)^#\s*want:\s*(.+)$`)
)

// loadFixture reads a fixture into resources and thresholds.
func loadFixture(path string) ([]Resource, Thresholds, []string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, Thresholds{}, nil, fmt.Errorf("read fixture: %w", err)
	}
	var wants []string
	for _, m := range wantRE.FindAllSubmatch(raw, -1) {
		wants = append(wants, strings.TrimSpace(string(m[1])))
	}
	settings := fixtureSettings{}
	var rs []Resource
	for i, doc := range docSep.Split(string(raw), -1) {
		if len(bytes.TrimSpace([]byte(doc))) == 0 {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			return nil, Thresholds{}, nil, fmt.Errorf("%s document %d: %w", path, i, err)
		}
		if m == nil {
			continue
		}
		switch {
		case m["fixture"] != nil:
			b, _ := yaml.Marshal(m["fixture"])
			if err := yaml.Unmarshal(b, &settings); err != nil {
				return nil, Thresholds{}, nil, fmt.Errorf("%s fixture settings: %w", path, err)
			}
		case m["type"] != nil && m["inputs"] != nil:
			name := object.Str(m["name"])
			rs = append(rs, Resource{
				Type: object.Str(m["type"]), Name: name, Parent: object.Str(m["parent"]), Props: object.MapOf(m["inputs"]),
				URN: "urn:pulumi:fixture::scaleplane::" + object.Str(m["type"]) + "::" + name,
			})
		default:
			typ, err := k8sType(object.Str(m["apiVersion"]), object.Str(m["kind"]))
			if err != nil {
				return nil, Thresholds{}, nil, fmt.Errorf("%s document %d: %w", path, i, err)
			}
			name := strings.ToLower(object.Str(m["kind"])) + "-" + object.Str(object.Get(m, "metadata", "name"))
			rs = append(rs, Resource{Type: typ, Name: name, Props: m, URN: "urn:pulumi:fixture::scaleplane::" + typ + "::" + name})
		}
	}
	t, err := DefaultThresholds(settings.Environment).Override(settings.Thresholds)
	if err != nil {
		return nil, Thresholds{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, t, wants, nil
}

// k8sType is the Pulumi kubernetes provider's type token for an object.
func k8sType(apiVersion, kind string) (string, error) {
	if apiVersion == "" || kind == "" {
		return "", fmt.Errorf("not a Kubernetes object (apiVersion %q, kind %q) nor a {type, inputs} resource", apiVersion, kind)
	}
	if !strings.Contains(apiVersion, "/") {
		apiVersion = "core/" + apiVersion
	}
	return "kubernetes:" + apiVersion + ":" + kind, nil
}

// TestFixtures walks testdata/<rule-id>/{pass,fail}-*.yaml: a pass
// fixture must raise no violation of its rule, a fail fixture at least one
// (containing every "# want:" fragment).
func TestFixtures(t *testing.T) {
	dirs, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		rule := ByID(d.Name())
		if rule == nil {
			t.Errorf("testdata/%s: no rule with that id", d.Name())
			continue
		}
		files, _ := filepath.Glob(filepath.Join("testdata", d.Name(), "*.yaml"))
		for _, f := range files {
			base := filepath.Base(f)
			t.Run(d.Name()+"/"+strings.TrimSuffix(base, ".yaml"), func(t *testing.T) {
				rs, th, wants, err := loadFixture(f)
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				if len(rs) == 0 {
					t.Fatalf("%s declares no resources", f)
				}
				vs := rule.Check(rs, th)
				switch {
				case strings.HasPrefix(base, "pass-"):
					if len(vs) != 0 {
						t.Errorf("%s: want no %s violation, got %d: %v", f, rule.ID, len(vs), vs)
					}
				case strings.HasPrefix(base, "fail-"):
					if len(vs) == 0 {
						t.Fatalf("%s: want a %s violation, got none", f, rule.ID)
					}
					all := fmt.Sprint(vs)
					for _, w := range wants {
						if !strings.Contains(all, w) {
							t.Errorf("%s: violations %v do not mention %q", f, vs, w)
						}
					}
					for _, v := range vs {
						if v.RuleID != rule.ID || v.Message == "" {
							t.Errorf("%s: violation %+v lacks the rule id %s or a message", f, v, rule.ID)
						}
					}
				default:
					t.Errorf("%s: fixture names start with pass- or fail-", f)
				}
			})
		}
	}
}

// TestCompleteness: every rule has its id, texts, a level, known
// thresholds and at least one pass and one fail fixture.
func TestCompleteness(t *testing.T) {
	idRE := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	seen := map[string]bool{}
	if len(All()) < 20 {
		t.Errorf("only %d rules registered; the issue lists more", len(All()))
	}
	for _, r := range All() {
		if !idRE.MatchString(r.ID) || seen[r.ID] {
			t.Errorf("rule id %q: must be unique kebab-case", r.ID)
		}
		seen[r.ID] = true
		for field, v := range map[string]string{"Name": r.Name, "Description": r.Description, "Remediation": r.Remediation, "Rationale": r.Rationale} {
			if strings.TrimSpace(v) == "" {
				t.Errorf("rule %s: %s is empty", r.ID, field)
			}
		}
		if r.Level != Mandatory && r.Level != Advisory {
			t.Errorf("rule %s: level %q is neither mandatory nor advisory", r.ID, r.Level)
		}
		if !containsCategory(r.Category) {
			t.Errorf("rule %s: category %q is not one of %v", r.ID, r.Category, Categories)
		}
		if (r.CheckResource == nil) == (r.CheckStack == nil) {
			t.Errorf("rule %s: set exactly one of CheckResource and CheckStack", r.ID)
		}
		for _, th := range r.Thresholds {
			if _, ok := DefaultThresholds("").Value(th); !ok || ThresholdDocs[th] == "" {
				t.Errorf("rule %s: threshold %q is not a documented Thresholds field", r.ID, th)
			}
		}
		for _, prefix := range []string{"pass-", "fail-"} {
			m, _ := filepath.Glob(filepath.Join("testdata", r.ID, prefix+"*.yaml"))
			if len(m) == 0 {
				t.Errorf("rule %s: no testdata/%s/%s*.yaml fixture", r.ID, r.ID, prefix)
			}
		}
	}
	for _, name := range ThresholdNames() {
		if ThresholdDocs[name] == "" {
			t.Errorf("threshold %s has no entry in ThresholdDocs", name)
		}
	}
}

func containsCategory(c Category) bool {
	for _, x := range Categories {
		if x == c {
			return true
		}
	}
	return false
}
