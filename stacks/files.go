package stacks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// ConfigDir is where the stack files live, relative to the project root
// (Pulumi.yaml's stackConfigDir).
const ConfigDir = "stacks"

// StackNames lists the stacks whose Pulumi.<name>.yaml exists under root.
func StackNames(root string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(root, ConfigDir, "Pulumi.*.yaml"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range matches {
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), "Pulumi."), ".yaml"))
	}
	slices.Sort(names)
	return names, nil
}

// ErrUnknownStack is returned for a stack without a stack file.
var ErrUnknownStack = errors.New("unknown stack")

// ReadStackConfig reads root/stacks/Pulumi.<stack>.yaml and returns its
// scaleplane:* values keyed without the prefix, as Parse wants them.
func ReadStackConfig(root, stack string) (map[string]string, error) {
	path := filepath.Join(root, ConfigDir, "Pulumi."+stack+".yaml")
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		names, _ := StackNames(root)
		return nil, fmt.Errorf("%w %q: no %s (stacks here: %s)", ErrUnknownStack, stack, path, strings.Join(names, ", "))
	}
	if err != nil {
		return nil, err
	}
	var file struct {
		Config map[string]any `json:"config"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]string{}
	for k, v := range file.Config {
		key, ok := strings.CutPrefix(k, Project+":")
		if !ok {
			// Provider settings such as kubernetes:context are not ours.
			continue
		}
		switch v := v.(type) {
		case string:
			out[key] = v
		case bool, float64, int64, int:
			out[key] = fmt.Sprint(v)
		default:
			return nil, &ConfigError{Key: key, Value: fmt.Sprint(v), Allowed: "must be a plain string, number or boolean (" + path + ")"}
		}
	}
	return out, nil
}

// ProjectConfigYAML renders the config block of Pulumi.yaml from Knobs
// (keys of the project's own namespace are declared without its prefix),
// so the declared types, defaults and descriptions cannot drift from the
// values the program uses.
func ProjectConfigYAML() string {
	var b strings.Builder
	b.WriteString("config:\n")
	for _, k := range Knobs {
		fmt.Fprintf(&b, "  %s:\n", k.Key)
		fmt.Fprintf(&b, "    type: %s\n", k.Type)
		fmt.Fprintf(&b, "    description: %q\n", k.Description)
		switch k.Type {
		case "string":
			fmt.Fprintf(&b, "    default: %q\n", k.Default)
		default:
			fmt.Fprintf(&b, "    default: %s\n", k.Default)
		}
	}
	return b.String()
}
