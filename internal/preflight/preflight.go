// Package preflight checks, in seconds and before any long step, that this
// machine has what a job (make up, make test, make bench) needs, and names
// everything missing together: Debian packages, root, cgroups, the embedded
// node's ports, disk space, the Go module proxy and Maven Central. As root
// it installs the missing packages in one apt-get; without root it prints
// the one apt-get line to run.
//
// It depends on the standard library only, so `go run ./cmd/preflight`
// compiles in seconds on a fresh machine, long before the minutes-long
// build of scaleplane itself.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/scaleplane/scaleplane/internal/progress"
)

// Port is a TCP port the embedded node listens on.
type Port struct {
	Number int
	Owner  string
}

// NodePorts are the ports the embedded node's processes listen on.
// internal/cluster's constants must agree (a test there checks).
var NodePorts = []Port{
	{6443, "kube-apiserver"},
	{2379, "etcd (clients)"},
	{2380, "etcd (peers)"},
	{10250, "kubelet"},
	{10248, "kubelet (healthz)"},
	{10256, "kube-proxy (healthz)"},
	{10249, "kube-proxy (metrics)"},
	{10257, "kube-controller-manager"},
	{10259, "kube-scheduler"},
}

// Disk space the first run of a job needs: the tool builds, Go's module and
// build caches, the Debian bases and the images in containerd. Measured
// after a cold make up and make test on a fresh machine: Go's build cache
// 21 GiB, its module cache 9.4 GiB, the tool cache and the cluster 3.3 GiB
// (docs/local.md). Once the tools are cached a run needs far less.
const (
	ColdFreeBytes = 30 << 30
	WarmFreeBytes = 4 << 30
)

// Default registry addresses, checked when the job will need them.
const (
	// DefaultGoProxy is used when GOPROXY names none.
	DefaultGoProxy = "https://proxy.golang.org"
	// MavenCentral is Maven's default remote repository.
	MavenCentral = "https://repo.maven.apache.org/maven2"
)

// reachTimeout bounds each registry check: an unreachable registry answers
// a refused connection at once; a hang of 10 s is as good as down.
const reachTimeout = 10 * time.Second

// Machine is what the checks read of the machine; New fills it from the
// real one and tests replace parts.
type Machine struct {
	// Root is whether this process runs as root.
	Root bool
	// Kubeconfig is $KUBECONFIG: another cluster instead of the embedded one.
	Kubeconfig string
	// CacheRoot is scaleplane's tool cache (~/.cache/scaleplane).
	CacheRoot string
	// CgroupRoot is where cgroups are mounted (/sys/fs/cgroup).
	CgroupRoot string
	// GoProxy is the first proxy URL of GOPROXY ("" for off or direct).
	GoProxy string
	// Ports are the ports the embedded node needs free (NodePorts).
	Ports []Port
	// FreeBytes returns the bytes free on path's filesystem.
	FreeBytes func(path string) (uint64, error)
	// Reach checks that url answers over HTTP.
	Reach func(ctx context.Context, url string) error
	// Listener returns who listens on a TCP port ("" when nobody does).
	Listener func(port int) (pid int, exe string, err error)
}

// New reads the real machine.
func New() (*Machine, error) {
	root, err := CacheRoot()
	if err != nil {
		return nil, err
	}
	return &Machine{
		Root:       os.Geteuid() == 0,
		Kubeconfig: os.Getenv("KUBECONFIG"),
		CacheRoot:  root,
		CgroupRoot: "/sys/fs/cgroup",
		GoProxy:    goProxy(),
		Ports:      NodePorts,
		FreeBytes:  freeBytes,
		Reach:      reach,
		Listener:   listener,
	}, nil
}

// CacheEnv names the environment variable that overrides the tool cache's
// root, so CI can point it at a directory it keeps and tests can isolate it.
const CacheEnv = "SCALEPLANE_CACHE"

// CacheRoot returns the tool cache's root: $SCALEPLANE_CACHE if set, else
// <user cache dir>/scaleplane (~/.cache/scaleplane on Linux). It lives here,
// not in internal/toolchain, so that the preflight reads the same cache
// without linking the builders.
func CacheRoot() (string, error) {
	if dir := os.Getenv(CacheEnv); dir != "" {
		return dir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no tool cache directory (set %s): %w", CacheEnv, err)
	}
	return filepath.Join(base, "scaleplane"), nil
}

// goProxy returns the first HTTP proxy of `go env GOPROXY`'s value.
func goProxy() string {
	v := os.Getenv("GOPROXY")
	if v == "" {
		if out, err := exec.Command("go", "env", "GOPROXY").Output(); err == nil {
			v = strings.TrimSpace(string(out))
		}
	}
	if v == "" {
		return DefaultGoProxy
	}
	for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '|' }) {
		if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") || strings.HasPrefix(p, "file://") {
			return strings.TrimRight(p, "/")
		}
		if p == "off" {
			return ""
		}
	}
	return ""
}

// Report is what a check found.
type Report struct {
	Job Job
	// Missing are the Debian packages to install, in list order.
	Missing []string
	// Problems are what no install fixes (each says what to do).
	Problems []string
	// Notes inform and block nothing.
	Notes []string
	// Took is how long the check ran.
	Took time.Duration
}

// embeddedNode reports whether job will run (or start) the embedded cluster
// on this machine: always for up and bench without KUBECONFIG; for test
// only as root (without root the suites skip, saying why).
func (m *Machine) embeddedNode(job Job) bool {
	if m.Kubeconfig != "" {
		return false
	}
	return job != Test || m.Root
}

// Check runs every check for job and returns all it found.
func (m *Machine) Check(ctx context.Context, job Job) (Report, error) {
	begin := time.Now()
	r := Report{Job: job}
	missing, err := MissingPackages(ctx, PackagesFor(job))
	if err != nil {
		return r, err
	}
	r.Missing = missing

	node := m.embeddedNode(job)
	switch {
	case node && !m.Root:
		r.Problems = append(r.Problems, "not root: the embedded cluster's kubelet and containerd manage cgroups, mounts and network namespaces (run as root, or set KUBECONFIG to a cluster of yours)")
	case job == Test && !m.Root && m.Kubeconfig == "":
		r.Notes = append(r.Notes, "not root and no KUBECONFIG: the real-cluster suites will skip, saying why")
	}
	if node {
		r.Problems = append(r.Problems, m.checkCgroups()...)
		r.Problems = append(r.Problems, m.checkPorts()...)
		if m.nodeRunning() && job == Test {
			r.Notes = append(r.Notes, "the embedded cluster is running: if `make up` deployed a stack on it, the integration suites pause its workloads for their run and resume them after (docs/testing.md)")
		}
	}
	r.Problems = append(r.Problems, m.checkDisk()...)
	r.Problems = append(r.Problems, m.checkRegistries(ctx)...)
	r.Took = time.Since(begin)
	return r, nil
}

// MissingPackages returns which of names dpkg does not have installed. It
// asks dpkg-query once, for all of them.
func MissingPackages(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	q, err := exec.LookPath("dpkg-query")
	if err != nil {
		return nil, errors.New("dpkg-query not found: scaleplane's set-up installs Debian packages and needs a Debian or Ubuntu machine")
	}
	// dpkg-query exits 1 when a name is unknown to dpkg, and still prints
	// the known ones: the output, not the exit code, decides.
	out, _ := exec.CommandContext(ctx, q, append([]string{"-W", "-f=${Package} ${db:Status-Status}\n"}, names...)...).Output()
	installed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == "installed" {
			installed[strings.SplitN(f[0], ":", 2)[0]] = true
		}
	}
	var missing []string
	for _, n := range names {
		if !installed[n] {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

func (m *Machine) checkCgroups() []string {
	for _, c := range []string{"cpu", "memory"} {
		if _, err := os.Stat(filepath.Join(m.CgroupRoot, c)); err == nil {
			continue // cgroup v1 (or hybrid): the controller is mounted
		}
		data, err := os.ReadFile(filepath.Join(m.CgroupRoot, "cgroup.controllers"))
		if err == nil && strings.Contains(" "+strings.TrimSpace(string(data))+" ", " "+c+" ") {
			continue // cgroup v2 with the controller available
		}
		return []string{fmt.Sprintf("no %s cgroup controller under %s: the kubelet needs cgroups (v1 or v2) with cpu and memory", c, m.CgroupRoot)}
	}
	return nil
}

// checkPorts names every node port held by a process that is not the
// embedded node itself (whose binaries live in the tool cache).
func (m *Machine) checkPorts() []string {
	var problems []string
	for _, p := range m.Ports {
		pid, exe, err := m.Listener(p.Number)
		if err != nil {
			problems = append(problems, fmt.Sprintf("cannot tell whether port %d is free: %v", p.Number, err))
			continue
		}
		if pid == 0 || m.ours(exe) {
			continue
		}
		who := fmt.Sprintf("pid %d (%s)", pid, exe)
		if pid < 0 {
			who = "a process this user cannot see"
		}
		problems = append(problems, fmt.Sprintf("port %d, which the embedded node's %s needs, is taken by %s: stop it, or set KUBECONFIG to use another cluster", p.Number, p.Owner, who))
	}
	return problems
}

// ours reports whether exe is one of the node's binaries from the cache.
func (m *Machine) ours(exe string) bool {
	return exe != "" && strings.HasPrefix(exe, m.CacheRoot+string(filepath.Separator))
}

// nodeRunning reports whether the embedded node's API server listens.
func (m *Machine) nodeRunning() bool {
	for _, p := range m.Ports {
		if p.Owner == "kube-apiserver" {
			pid, exe, err := m.Listener(p.Number)
			return err == nil && pid != 0 && m.ours(exe)
		}
	}
	return false
}

// checkDisk asks for ColdFreeBytes while the tool cache is empty, else
// WarmFreeBytes, on the filesystem that will hold the cache.
func (m *Machine) checkDisk() []string {
	dir := m.CacheRoot
	for !exists(dir) && filepath.Dir(dir) != dir {
		dir = filepath.Dir(dir)
	}
	free, err := m.FreeBytes(dir)
	if err != nil {
		return []string{fmt.Sprintf("cannot read the free space of %s: %v", dir, err)}
	}
	need, when := uint64(WarmFreeBytes), "a run"
	if entries, _ := os.ReadDir(m.CacheRoot); len(entries) == 0 {
		need, when = ColdFreeBytes, "the first run (tool builds, Go's caches, images)"
	}
	if free < need {
		return []string{fmt.Sprintf("%s free on the filesystem of %s; %s needs about %s: free some space or point SCALEPLANE_CACHE elsewhere", gib(free), m.CacheRoot, when, gib(need))}
	}
	return nil
}

// checkRegistries reaches the Go module proxy always (every tool is built
// from it) and Maven Central while Kafka's jars are not cached.
func (m *Machine) checkRegistries(ctx context.Context) []string {
	var problems []string
	if m.GoProxy != "" && !strings.HasPrefix(m.GoProxy, "file://") {
		if err := m.Reach(ctx, m.GoProxy+"/github.com/google/uuid/@v/list"); err != nil {
			problems = append(problems, fmt.Sprintf("the Go module proxy %s does not answer (%v): every tool is built from modules it serves", m.GoProxy, err))
		}
	}
	if kafka, _ := filepath.Glob(filepath.Join(m.CacheRoot, "kafka-*")); len(kafka) == 0 {
		if err := m.Reach(ctx, MavenCentral+"/org/apache/kafka/kafka-clients/maven-metadata.xml"); err != nil {
			problems = append(problems, fmt.Sprintf("Maven Central %s does not answer (%v): Kafka's jars come from it", MavenCentral, err))
		}
	}
	return problems
}

func reach(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

func freeBytes(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func gib(b uint64) string {
	return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
}

// AptLine is the one command that installs names.
func AptLine(names []string) string {
	return "apt-get install -y --no-install-recommends " + strings.Join(names, " ")
}

// ErrNotReady is returned (wrapped) when the machine is not ready for the job.
var ErrNotReady = errors.New("the machine is not ready")

// Print writes r for a person: every problem and note together, and the
// one apt-get line when packages are missing.
func (r Report) Print(w io.Writer, root bool) {
	if len(r.Missing) == 0 && len(r.Problems) == 0 {
		fmt.Fprintf(w, "preflight (make %s): ready (checked in %s)\n", r.Job, r.Took.Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "preflight (make %s): checked in %s\n", r.Job, r.Took.Round(time.Millisecond))
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	if len(r.Missing) > 0 {
		if root {
			fmt.Fprintf(w, "  - %d Debian packages to install: %s\n", len(r.Missing), strings.Join(r.Missing, " "))
		} else {
			fmt.Fprintf(w, "  - %d Debian packages are missing and installing them needs root; as root, run:\n", len(r.Missing))
			fmt.Fprintf(w, "\n    %s\n\n", AptLine(r.Missing))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// Ready returns nil when the job can go on once the missing packages are
// installed (as root) or when nothing is missing; else an error wrapping
// ErrNotReady.
func (r Report) Ready(root bool) error {
	n := len(r.Problems)
	if len(r.Missing) > 0 && !root {
		n++
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%w for make %s: %d problem(s) above", ErrNotReady, r.Job, n)
}

// Install installs names in one apt-get (after one apt-get update), then
// stops the services Debian started for them. apt's own output, which shows
// its progress, goes to w.
func Install(ctx context.Context, w io.Writer, names []string) error {
	if len(names) == 0 {
		return nil
	}
	begin := time.Now()
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	apt := func(step string, args ...string) error {
		fmt.Fprintf(w, "preflight: %s: apt-get %s\n", step, strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
		}
		return nil
	}
	if err := apt("step 1 of 2", "update", "-q"); err != nil {
		return err
	}
	if err := apt("step 2 of 2", append([]string{"install", "-y", "-q", "--no-install-recommends"}, names...)...); err != nil {
		return err
	}
	for _, svc := range ServicesOf(names) {
		// Not running is fine: only a started service must be stopped.
		_ = exec.CommandContext(ctx, "service", svc, "stop").Run()
	}
	fmt.Fprintf(w, "preflight: installed %d Debian packages in %s\n", len(names), progress.Duration(time.Since(begin)))
	return nil
}
