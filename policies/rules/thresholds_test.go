package rules

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// perturbed returns t with every threshold outside keep set to an extreme
// (low or high), the environment aside: it names the stack in messages and
// comes from the stack's config, not from a policy's.
func perturbed(t Thresholds, keep []string, high bool) Thresholds {
	v := reflect.ValueOf(&t).Elem()
	for i := range v.NumField() {
		name := strings.Split(v.Type().Field(i).Tag.Get("json"), ",")[0]
		if name == "environment" || slices.Contains(keep, name) {
			continue
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(map[bool]int64{false: 0, true: 1 << 40}[high])
		case reflect.Float64:
			f.SetFloat(map[bool]float64{false: 0, true: 1e6}[high])
		case reflect.Bool:
			f.SetBool(high)
		case reflect.String:
			f.SetString(map[bool]string{false: "", true: "PERTURBED"}[high])
		}
	}
	return t
}

// TestRulesReadOnlyTheirThresholds: each policy is sent only the
// thresholds its rule declares, so a rule must not depend on any other.
// Every fixture's verdict stays the same with all undeclared thresholds
// pushed to either extreme.
func TestRulesReadOnlyTheirThresholds(t *testing.T) {
	for _, r := range All() {
		files, _ := filepath.Glob(filepath.Join("testdata", r.ID, "*.yaml"))
		if len(files) == 0 {
			t.Errorf("rule %s: no fixtures to compare verdicts on", r.ID)
		}
		for _, f := range files {
			rs, th, _, err := loadFixture(f)
			if err != nil {
				t.Fatalf("load %s: %v", f, err)
			}
			want := fmt.Sprint(r.Check(rs, th))
			for _, high := range []bool{false, true} {
				if got := fmt.Sprint(r.Check(rs, perturbed(th, r.Thresholds, high))); got != want {
					t.Errorf("rule %s on %s depends on a threshold it does not declare (%v): undeclared thresholds at extreme (high %v) give\n%s\nwant\n%s",
						r.ID, f, r.Thresholds, high, got, want)
				}
			}
		}
	}
}

// TestConfigured: a rule takes its own thresholds from its config and
// refuses any other name, the CLI's enforcementLevel key aside.
func TestConfigured(t *testing.T) {
	base := DefaultThresholds("dev")
	r := ByID("hpa-replicas")
	if r == nil {
		t.Fatal("no rule hpa-replicas")
	}
	got, err := r.Configured(base, map[string]any{"minReplicas": 7, ConfigLevelKey: "mandatory"})
	if err != nil || got.MinReplicas != 7 {
		t.Errorf("hpa-replicas config {minReplicas: 7}: MinReplicas %d, err %v; want 7, nil", got.MinReplicas, err)
	}
	if got.MaxCPUTargetPercent != base.MaxCPUTargetPercent {
		t.Errorf("hpa-replicas config changed maxCpuTargetPercent to %d, want the default %d", got.MaxCPUTargetPercent, base.MaxCPUTargetPercent)
	}
	for _, bad := range []string{"maxCpuTargetPercent", "minReplica", "environment"} {
		if _, err := r.Configured(base, map[string]any{bad: 1}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("threshold %q: unknown to policy hpa-replicas", bad)) {
			t.Errorf("hpa-replicas config {%s: 1}: err %v, want it refused as not the rule's threshold", bad, err)
		}
	}
}
