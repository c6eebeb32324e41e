package preflight

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stubCommand puts an executable shell script called name first on PATH.
// The stubs stand in for dpkg-query, apt-get and service, so these tests
// never read or change the real machine's packages.
func stubCommand(t *testing.T, dir, name, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatalf("writing stub %s: %v", name, err)
	}
}

// stubPath makes a directory holding only sh the whole of PATH, and
// returns it: the real dpkg-query, apt-get and service are out of reach.
func stubPath(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink("/bin/sh", filepath.Join(dir, "sh")); err != nil {
		t.Fatalf("linking sh: %v", err)
	}
	t.Setenv("PATH", dir)
	return dir
}

// dpkgKnows stubs dpkg-query as if exactly installed were installed: it
// answers in the format MissingPackages asks for, and exits 1 as the real
// one does when some name is not installed.
func dpkgKnows(t *testing.T, dir string, installed ...string) {
	t.Helper()
	var script strings.Builder
	script.WriteString("rc=0\nfor a in \"$@\"; do case \"$a\" in -*) continue;; esac\n  case \" " + strings.Join(installed, " ") + " \" in\n")
	script.WriteString("    *\" $a \"*) echo \"$a installed\";;\n    *) echo \"dpkg-query: no packages found matching $a\" >&2; rc=1;;\n  esac\ndone\nexit $rc\n")
	stubCommand(t, dir, "dpkg-query", script.String())
}

// readyMachine is a machine where every check but the packages passes.
func readyMachine(t *testing.T) *Machine {
	t.Helper()
	cache := t.TempDir()
	cg := t.TempDir()
	for _, c := range []string{"cpu", "memory"} {
		if err := os.Mkdir(filepath.Join(cg, c), 0o755); err != nil {
			t.Fatalf("making fake cgroup %s: %v", c, err)
		}
	}
	return &Machine{
		Root:       true,
		CacheRoot:  cache,
		CgroupRoot: cg,
		GoProxy:    DefaultGoProxy,
		Ports:      nil,
		FreeBytes:  func(string) (uint64, error) { return 100 << 30, nil },
		Reach:      func(context.Context, string) error { return nil },
		Listener:   func(int) (int, string, error) { return 0, "", nil },
	}
}

func TestMissingPackagesAreThoseDpkgDoesNotHave(t *testing.T) {
	dir := stubPath(t)
	dpkgKnows(t, dir, "runc", "haproxy")
	missing, err := MissingPackages(context.Background(), []string{"containerd", "runc", "haproxy", "wrk"})
	if err != nil {
		t.Fatalf("MissingPackages: %v", err)
	}
	if got, want := strings.Join(missing, " "), "containerd wrk"; got != want {
		t.Errorf("missing = %q, want %q (dpkg has runc and haproxy)", got, want)
	}
}

func TestMissingPackagesWithoutDpkgSaysWhy(t *testing.T) {
	stubPath(t)
	_, err := MissingPackages(context.Background(), []string{"runc"})
	if err == nil || !strings.Contains(err.Error(), "Debian") {
		t.Errorf("without dpkg-query the error should say a Debian machine is needed, got %v", err)
	}
}

// TestNonRootGetsTheOneAptLine is the documented message of a run without
// root: every missing package in one apt-get line, and not ready.
func TestNonRootGetsTheOneAptLine(t *testing.T) {
	dir := stubPath(t)
	dpkgKnows(t, dir) // nothing installed
	m := readyMachine(t)
	m.Root = false
	m.Kubeconfig = "/elsewhere/kubeconfig" // so "not root" is no problem for the cluster
	r, err := m.Check(context.Background(), Up)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	var out bytes.Buffer
	r.Print(&out, m.Root)
	want := "\n    " + AptLine(PackagesFor(Up)) + "\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("the report should hold the single line %q, got:\n%s", want, out.String())
	}
	if strings.Count(out.String(), "apt-get install") != 1 {
		t.Errorf("the report should name apt-get install once, got:\n%s", out.String())
	}
	if err := r.Ready(m.Root); !errors.Is(err, ErrNotReady) {
		t.Errorf("a non-root run with missing packages is not ready, got %v", err)
	}
}

// TestNonRootWithoutKubeconfigCannotRunTheNode: make up's embedded cluster
// needs root even when every package is there.
func TestNonRootWithoutKubeconfigCannotRunTheNode(t *testing.T) {
	dir := stubPath(t)
	dpkgKnows(t, dir, PackagesFor(Up)...)
	m := readyMachine(t)
	m.Root = false
	r, err := m.Check(context.Background(), Up)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(r.Missing) != 0 || len(r.Problems) != 1 || !strings.HasPrefix(r.Problems[0], "not root") {
		t.Errorf("want exactly the not-root problem, got missing %q, problems %q", r.Missing, r.Problems)
	}
	// make test without root goes on: the suites skip, saying why.
	r, err = m.Check(context.Background(), Test)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := r.Ready(false); len(r.Missing) == 0 && err != nil {
		t.Errorf("make test without root and with every package should be ready, got %v (problems %q)", err, r.Problems)
	}
}

// TestTakenPortIsNamedWithItsProcess holds one of the node's ports with a
// real listener: the check names the port, what needs it and the process.
func TestTakenPortIsNamedWithItsProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	defer func() { _ = ln.Close() }()
	port := ln.Addr().(*net.TCPAddr).Port

	pid, exe, err := listener(port)
	if err != nil || pid != os.Getpid() {
		t.Fatalf("listener(%d) = pid %d, %q, %v; want this test's pid %d", port, pid, exe, err, os.Getpid())
	}

	dir := stubPath(t)
	dpkgKnows(t, dir, PackagesFor(Up)...)
	m := readyMachine(t)
	m.Ports = []Port{{port, "kube-apiserver"}}
	m.Listener = listener
	r, err := m.Check(context.Background(), Up)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "kube-apiserver") || !strings.Contains(r.Problems[0], exe) {
		t.Errorf("want one problem naming port %d, kube-apiserver and %s, got %q", port, exe, r.Problems)
	}

	// The same port held by a binary from the tool cache is the running
	// node itself: no problem.
	m.CacheRoot = filepath.Dir(exe)
	r, err = m.Check(context.Background(), Up)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	for _, p := range r.Problems {
		if strings.Contains(p, "port") {
			t.Errorf("a port held from the tool cache is the node's own, got problem %q", p)
		}
	}
}

// TestEveryProblemIsNamedTogether: one check reports the disk, the
// registries, the cgroups and the packages at once, not one per run.
func TestEveryProblemIsNamedTogether(t *testing.T) {
	dir := stubPath(t)
	dpkgKnows(t, dir)
	m := readyMachine(t)
	m.CgroupRoot = t.TempDir() // no controllers
	m.FreeBytes = func(string) (uint64, error) { return 2 << 30, nil }
	m.Reach = func(context.Context, string) error { return errors.New("connection refused") }
	r, err := m.Check(context.Background(), Up)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	for _, want := range []string{"cgroup", "GiB free", "Go module proxy", "Maven Central"} {
		found := false
		for _, p := range r.Problems {
			found = found || strings.Contains(p, want)
		}
		if !found {
			t.Errorf("the problems should include one about %q, got %q", want, r.Problems)
		}
	}
	if len(r.Missing) != len(PackagesFor(Up)) {
		t.Errorf("every package should be missing beside the problems, got %q", r.Missing)
	}
}

// TestInstallIsOneAptGet stubs apt-get and service: one update, then one
// install of every missing package, then the services Debian started are
// stopped.
func TestInstallIsOneAptGet(t *testing.T) {
	dir := stubPath(t)
	calls := filepath.Join(t.TempDir(), "calls")
	stubCommand(t, dir, "apt-get", "echo \"apt-get $*\" >> "+calls+"\n")
	stubCommand(t, dir, "service", "echo \"service $*\" >> "+calls+"\n")
	var out bytes.Buffer
	if err := Install(context.Background(), &out, []string{"haproxy", "wrk"}); err != nil {
		t.Fatalf("Install: %v\n%s", err, out.String())
	}
	data, err := os.ReadFile(calls)
	if err != nil {
		t.Fatalf("reading the stubs' calls: %v", err)
	}
	want := "apt-get update -q\napt-get install -y -q --no-install-recommends haproxy wrk\nservice haproxy stop\n"
	if string(data) != want {
		t.Errorf("calls = %q, want %q", data, want)
	}
}

func TestPackagesAreListedOnceEachWithAReason(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Packages {
		if seen[p.Name] {
			t.Errorf("package %s is listed twice", p.Name)
		}
		seen[p.Name] = true
		if p.Why == "" || len(p.Jobs) == 0 {
			t.Errorf("package %s needs a reason and at least one job", p.Name)
		}
	}
	for _, j := range Jobs {
		if len(PackagesFor(j)) == 0 {
			t.Errorf("job %s needs no package: the list is wrong", j)
		}
	}
}
