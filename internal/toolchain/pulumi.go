package toolchain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// PulumiVersion is the pinned Pulumi CLI, the same release as the project's
// sdk/v3 so the Automation API and the engine speak the same protocol.
const PulumiVersion = "v3.274.1"

// KubernetesProviderVersion is the version the built kubernetes provider
// reports: the project's pulumi-kubernetes/sdk/v4 version, which is the
// plugin version the program asks the engine for.
const KubernetesProviderVersion = "4.32.0"

// kubernetesProviderModule is the only version of the provider module the
// proxy serves (tagged versions answer 403): a pseudo-version of the
// provider's main branch.
const kubernetesProviderModule = "github.com/pulumi/pulumi-kubernetes/provider/v4"

const kubernetesProviderPseudo = "v4.0.0-20260115033456-f47bc2d6f199"

// PulumiCLI returns the directory holding the `pulumi` binary (bin/ of its
// cache directory, the layout the Automation API expects of an
// installation root), built from github.com/pulumi/pulumi/pkg/v3 the first
// time (about 3.5 minutes).
func PulumiCLI(ctx context.Context) (string, error) {
	dir, err := Ensure(ctx, "pulumi", PulumiVersion, func(dir string) error {
		return goModuleBuild{
			module: "scaleplane.local/toolchain/pulumi",
			requires: []string{
				"github.com/pulumi/pulumi/pkg/v3 " + PulumiVersion,
				"github.com/pulumi/pulumi/sdk/v3 " + PulumiVersion,
			},
			// pkg/v3's own go.mod carries this replace; a dependent module
			// must repeat it or the old clipboard module fails to build.
			replaces: []string{"github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"},
			mains:    map[string]string{"bin/pulumi": "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"},
			ldflags:  "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=" + PulumiVersion,
		}.build(ctx, dir)
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "bin"), nil
}

// providerMain is our own package main for the kubernetes provider: the
// module's cmd/pulumi-resource-kubernetes embeds files its release build
// generates and the module zip lacks, so we generate them (prepare) beside
// this file and serve the same way.
const providerMain = `// Command pulumi-resource-kubernetes serves the Pulumi kubernetes provider.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
`

// KubernetesProvider returns the cache directory holding
// `pulumi-resource-kubernetes`, built the first time (about 8.5 minutes).
func KubernetesProvider(ctx context.Context) (string, error) {
	return Ensure(ctx, "pulumi-resource-kubernetes", KubernetesProviderVersion, func(dir string) error {
		return goModuleBuild{
			module: "scaleplane.local/toolchain/pulumikubernetes",
			// pkg/sdk v3 must be the provider's own versions: a newer sdk
			// breaks pkg/v3/util/cmdutil. The provider's go.mod replaces
			// sdk/v4 with ../sdk, which a dependent module cannot see.
			requires: []string{
				kubernetesProviderModule + " " + kubernetesProviderPseudo,
				"github.com/pulumi/pulumi/pkg/v3 v3.215.0",
				"github.com/pulumi/pulumi/sdk/v3 v3.215.0",
				"github.com/pulumi/pulumi-kubernetes/sdk/v4 v4.24.0",
			},
			files:   map[string][]byte{"main.go": []byte(providerMain)},
			prepare: generateProviderEmbeds,
			mains:   map[string]string{"pulumi-resource-kubernetes": "."},
			ldflags: "-s -w -X " + kubernetesProviderModule + "/pkg/version.Version=" + KubernetesProviderVersion,
		}.build(ctx, dir)
	})
}

// generateProviderEmbeds does what the provider's generate.go does in its
// release build: the schema with its version set, and the terraform mapping,
// each re-marshalled compactly, beside our main.go.
func generateProviderEmbeds(ctx context.Context, work string) error {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", kubernetesProviderModule+"@"+kubernetesProviderPseudo)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("downloading %s: %w\n%s", kubernetesProviderModule, err, stderr.String())
	}
	var info struct{ Dir string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		return fmt.Errorf("go mod download gave no directory for %s: %v", kubernetesProviderModule, err)
	}
	src := filepath.Join(info.Dir, "cmd", "pulumi-resource-kubernetes")

	var schema map[string]any
	if err := readJSON(filepath.Join(src, "schema.json"), &schema); err != nil {
		return err
	}
	schema["version"] = KubernetesProviderVersion
	var mapping any
	if err := readJSON(filepath.Join(src, "terraform-mapping.json"), &mapping); err != nil {
		return err
	}
	for name, v := range map[string]any{"schema-embed.json": schema, "terraform-mapping-embed.json": mapping} {
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("re-marshalling %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(work, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// readJSON decodes a file keeping numbers exact (json.Number), so
// re-marshalling changes only whitespace.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

// PulumiPath returns a PATH value with the cached Pulumi CLI and kubernetes
// provider first, building them if needed, unless the user has their own
// `pulumi` on PATH (then only the provider is added when PATH lacks one).
func PulumiPath(ctx context.Context) (pulumiDir, path string, err error) {
	path = os.Getenv("PATH")
	var dirs []string
	if p, err := exec.LookPath("pulumi"); err == nil {
		pulumiDir = filepath.Dir(p)
	} else {
		d, err := PulumiCLI(ctx)
		if err != nil {
			return "", "", err
		}
		pulumiDir = d
		dirs = append(dirs, d)
	}
	if _, err := exec.LookPath("pulumi-resource-kubernetes"); err != nil && !hasPlugin("kubernetes") {
		d, err := KubernetesProvider(ctx)
		if err != nil {
			return "", "", err
		}
		dirs = append(dirs, d)
	}
	if len(dirs) > 0 {
		path = strings.Join(dirs, string(os.PathListSeparator)) + string(os.PathListSeparator) + path
	}
	return pulumiDir, path, nil
}

// hasPlugin reports whether the user's own Pulumi installation has the
// resource plugin name at exactly the version the program asks for (in
// ~/.pulumi/plugins), which the engine would use.
func hasPlugin(name string) bool {
	home, err := os.UserHomeDir()
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(home, ".pulumi", "plugins", "resource-"+name+"-v"+KubernetesProviderVersion, "pulumi-resource-"+name))
	return err == nil
}
