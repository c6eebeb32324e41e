// Package analyzer runs scaleplane's compiled policy pack offline, the way
// the Pulumi CLI runs an analyzer plugin: it starts the binary, reads the
// port it prints, dials it over gRPC, configures it for a stack and sends
// every resource (Analyze) and then the whole stack (AnalyzeStack). No
// cloud, no cluster and no Pulumi CLI are involved, so CI can gate every
// stack, AWS ones included, without credentials.
package analyzer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/scaleplane/scaleplane/internal/render"
)

// PackDir is the policy pack's directory relative to the module root.
const PackDir = "policies"

// BinaryName is the compiled pack's file name.
const BinaryName = "scaleplane-policy"

// remediationPrefix starts the remediation line of the pack's messages.
const remediationPrefix = "Remediation: "

// startTimeout bounds how long the pack may take to print its port.
const startTimeout = 30 * time.Second

// Build compiles the pack under moduleRoot into dir and returns the
// binary's path. The Go build cache makes a rebuild of unchanged sources
// a link step.
func Build(ctx context.Context, moduleRoot, dir string) (string, error) {
	out := filepath.Join(dir, BinaryName)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./"+PackDir)
	cmd.Dir = moduleRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build policy pack (go build ./%s in %s): %w\n%s", PackDir, moduleRoot, err, stderr.String())
	}
	return out, nil
}

// Pack is a running policy pack.
type Pack struct {
	cmd    *exec.Cmd
	conn   *grpc.ClientConn
	client pulumirpc.AnalyzerClient
	stderr *lockedBuffer
	done   chan error
	// Info is what the pack said about itself after Configure.
	Info *pulumirpc.AnalyzerInfo
}

// Start launches the pack binary as the Pulumi CLI launches a plugin and
// connects to the port it prints on its first line of stdout.
func Start(ctx context.Context, binary string) (*Pack, error) {
	cmd := exec.Command(binary)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("policy pack stdout: %w", err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start policy pack %s: %w", binary, err)
	}
	p := &Pack{cmd: cmd, stderr: stderr, done: make(chan error, 1)}
	portc := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		portc <- strings.TrimSpace(line)
		// Keep draining so the pack never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, r)
		p.done <- cmd.Wait()
	}()
	var port int
	select {
	case line := <-portc:
		port, err = strconv.Atoi(line)
		if err != nil {
			p.kill()
			return nil, fmt.Errorf("policy pack %s printed %q instead of a port: %s", binary, line, p.stderr.String())
		}
	case <-time.After(startTimeout):
		p.kill()
		return nil, fmt.Errorf("policy pack %s printed no port within %s: %s", binary, startTimeout, p.stderr.String())
	case <-ctx.Done():
		p.kill()
		return nil, fmt.Errorf("start policy pack: %w", ctx.Err())
	}
	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("dial policy pack on port %d: %w", port, err)
	}
	p.conn = conn
	p.client = pulumirpc.NewAnalyzerClient(conn)
	return p, nil
}

// Stack is what the engine tells the pack about the stack under analysis.
type Stack struct {
	Name    string
	Project string
	// Config is the stack's config with full keys ("scaleplane:environment").
	Config map[string]string
	// Thresholds are threshold values by JSON name; each policy is sent,
	// in its own config, the ones its config schema declares. nil leaves
	// every policy the pack's defaults for the stack's environment.
	Thresholds map[string]any
	// Policies adjusts single policies after Thresholds, by policy name,
	// as --policy-pack-config does for the Pulumi CLI.
	Policies map[string]PolicyConfig
}

// PolicyConfig is one policy's entry in the config sent to the pack.
type PolicyConfig struct {
	// Disabled turns the policy off, like "enforcementLevel": "disabled".
	Disabled bool
	// Properties are set in the policy's config, over the thresholds.
	Properties map[string]any
}

// Configure performs the engine's start-up sequence: Handshake,
// ConfigureStack (the pack builds its policies for the stack), then
// GetAnalyzerInfo and Configure with one config per policy: the policy's
// own level (policyx takes a configured policy's level from the config
// alone) and the thresholds its config schema declares.
func (p *Pack) Configure(ctx context.Context, s Stack) error {
	root, _ := filepath.Abs(filepath.Dir(p.cmd.Path))
	if _, err := p.client.Handshake(ctx, &pulumirpc.AnalyzerHandshakeRequest{RootDirectory: &root, ProgramDirectory: &root}); err != nil {
		return p.fail("handshake", err)
	}
	if _, err := p.client.ConfigureStack(ctx, &pulumirpc.AnalyzerStackConfigureRequest{
		Stack: s.Name, Project: s.Project, Config: s.Config, DryRun: true,
	}); err != nil {
		return p.fail("configure stack", err)
	}
	info, err := p.client.GetAnalyzerInfo(ctx, &emptypb.Empty{})
	if err != nil {
		return p.fail("analyzer info", err)
	}
	p.Info = info
	cfg, err := policyConfig(info, s)
	if err != nil {
		return err
	}
	if _, err := p.client.Configure(ctx, &pulumirpc.ConfigureAnalyzerRequest{PolicyConfig: cfg}); err != nil {
		return p.fail("configure policies", err)
	}
	return nil
}

// policyConfig builds each policy's config from its schema, as the Pulumi
// CLI sends one entry per policy. A name listed twice (a stack rule and
// the resource policy that reads its config) gets the one entry.
func policyConfig(info *pulumirpc.AnalyzerInfo, s Stack) (map[string]*pulumirpc.PolicyConfig, error) {
	cfg := map[string]*pulumirpc.PolicyConfig{}
	declared := map[string]bool{}
	for _, pol := range info.GetPolicies() {
		name := pol.GetName()
		if _, done := cfg[name]; done {
			continue
		}
		props := map[string]any{}
		for k := range pol.GetConfigSchema().GetProperties().GetFields() {
			declared[k] = true
			if v, ok := s.Thresholds[k]; ok {
				props[k] = v
			}
		}
		level := pol.GetEnforcementLevel()
		if own, ok := s.Policies[name]; ok {
			for k, v := range own.Properties {
				props[k] = v
			}
			if own.Disabled {
				level = pulumirpc.EnforcementLevel_DISABLED
			}
		}
		st, err := structpb.NewStruct(props)
		if err != nil {
			return nil, fmt.Errorf("policy %s config: %w", name, err)
		}
		cfg[name] = &pulumirpc.PolicyConfig{EnforcementLevel: level, Properties: st}
	}
	for name := range s.Policies {
		if _, ok := cfg[name]; !ok {
			return nil, fmt.Errorf("policy pack %s has no policy %q to configure", info.GetName(), name)
		}
	}
	// A threshold no policy declares would reach nothing: say so rather
	// than check against the default unnoticed.
	for k := range s.Thresholds {
		if !declared[k] {
			return nil, fmt.Errorf("threshold %q: unknown, no policy of pack %s declares it", k, info.GetName())
		}
	}
	return cfg, nil
}

// Diagnostic is one violation the pack reported.
type Diagnostic struct {
	// Policy is the rule id.
	Policy string
	// Mandatory is true for a mandatory violation, false for advisory.
	Mandatory bool
	URN       string
	// Description is the rule's description; Problem what is wrong here;
	// Remediation how to fix it.
	Description string
	Problem     string
	Remediation string
}

// Analyze sends every resource to Analyze, then all of them once to
// AnalyzeStack, as the engine does during a preview, and returns the
// diagnostics in that order.
func (p *Pack) Analyze(ctx context.Context, rs []render.Resource) ([]Diagnostic, error) {
	var out []Diagnostic
	var stack []*pulumirpc.AnalyzerResource
	for _, r := range rs {
		props, err := marshal(r.Inputs)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", r.URN, err)
		}
		resp, err := p.client.Analyze(ctx, &pulumirpc.AnalyzeRequest{
			Type: r.Type, Properties: props, Urn: r.URN, Name: r.Name,
			Options: &pulumirpc.AnalyzerResourceOptions{Parent: r.Parent},
		})
		if err != nil {
			return nil, p.fail("analyze "+r.URN, err)
		}
		out = append(out, diagnostics(resp)...)
		stack = append(stack, &pulumirpc.AnalyzerResource{
			Type: r.Type, Properties: props, Urn: r.URN, Name: r.Name, Parent: r.Parent,
			Options: &pulumirpc.AnalyzerResourceOptions{Parent: r.Parent},
		})
	}
	resp, err := p.client.AnalyzeStack(ctx, &pulumirpc.AnalyzeStackRequest{Resources: stack})
	if err != nil {
		return nil, p.fail("analyze stack", err)
	}
	return append(out, diagnostics(resp)...), nil
}

// Close stops the pack and waits for it to exit.
func (p *Pack) Close() error {
	var errs []error
	if p.conn != nil {
		errs = append(errs, p.conn.Close())
	}
	p.kill()
	return errors.Join(errs...)
}

func (p *Pack) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	select {
	case err := <-p.done:
		_ = err // killed on purpose: the exit status says nothing
	case <-time.After(5 * time.Second):
	}
}

// fail wraps an RPC error with what the pack wrote to stderr.
func (p *Pack) fail(what string, err error) error {
	if s := strings.TrimSpace(p.stderr.String()); s != "" {
		return fmt.Errorf("policy pack %s: %w\npack stderr:\n%s", what, err, s)
	}
	return fmt.Errorf("policy pack %s: %w", what, err)
}

// marshal encodes plain inputs as the engine encodes resource properties.
func marshal(inputs map[string]any) (*structpb.Struct, error) {
	pm := resource.NewPropertyMapFromMap(inputs)
	s, err := plugin.MarshalProperties(pm, plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true})
	if err != nil {
		return nil, fmt.Errorf("marshal properties: %w", err)
	}
	return s, nil
}

// diagnostics splits policyx's message ("description\nproblem\nRemediation: ...").
func diagnostics(resp *pulumirpc.AnalyzeResponse) []Diagnostic {
	var out []Diagnostic
	for _, d := range resp.GetDiagnostics() {
		msg := strings.TrimPrefix(d.GetMessage(), d.GetDescription())
		msg = strings.TrimPrefix(msg, "\n")
		problem, remediation, _ := strings.Cut(msg, "\n"+remediationPrefix)
		out = append(out, Diagnostic{
			Policy:      d.GetPolicyName(),
			Mandatory:   d.GetEnforcementLevel() == pulumirpc.EnforcementLevel_MANDATORY,
			URN:         d.GetUrn(),
			Description: d.GetDescription(),
			Problem:     problem,
			Remediation: remediation,
		})
	}
	return out
}

// lockedBuffer collects the pack's stderr from its writer goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ModuleRoot finds the directory holding go.mod at or above dir.
func ModuleRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod at or above %s", dir)
		}
		d = parent
	}
}

// CacheDir is where BuildCached keeps compiled packs, one directory per
// content hash of the pack's sources, inside scaleplane's tool cache.
func CacheDir() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("tool cache: %w", err)
	}
	return filepath.Join(home, ".cache", "scaleplane", "policy-pack"), nil
}

// BuildCached returns a compiled pack for the current sources, building it
// only when no pack with the same source hash (the pack's Go files,
// go.mod, go.sum and the Go version) is cached yet.
func BuildCached(ctx context.Context, moduleRoot string) (string, error) {
	sum, err := sourceHash(moduleRoot)
	if err != nil {
		return "", err
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, sum)
	bin := filepath.Join(dir, BinaryName)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("tool cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cache, "build-")
	if err != nil {
		return "", fmt.Errorf("tool cache: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if _, err := Build(ctx, moduleRoot, tmp); err != nil {
		return "", err
	}
	// Rename the whole directory so a concurrent run sees a complete binary or none.
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(bin); statErr == nil {
			return bin, nil // another run won the race
		}
		return "", fmt.Errorf("tool cache: %w", err)
	}
	return bin, nil
}

// sourceHash hashes what the pack binary is built from.
func sourceHash(moduleRoot string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", runtime.Version())
	files := []string{filepath.Join(moduleRoot, "go.mod"), filepath.Join(moduleRoot, "go.sum")}
	err := filepath.WalkDir(filepath.Join(moduleRoot, PackDir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash policy pack sources: %w", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("hash policy pack sources: %w", err)
		}
		rel, _ := filepath.Rel(moduleRoot, f)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
