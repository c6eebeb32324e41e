package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// pausedAnnotation keeps a paused workload's replica count, so a resume
// (this run's, or the next run's after a killed one) restores it.
const pausedAnnotation = "scaleplane.dev/paused-replicas"

// workloadRef is a Deployment or StatefulSet of another stack on the node.
type workloadRef struct {
	kind, namespace, name string
	replicas              int
	// paused is the annotation's count, -1 when not paused.
	paused int
}

// othersOnNode lists the Deployments and StatefulSets on the node that are
// neither the cluster's own (kube-*) nor the suites' (leftoverPrefixes):
// the stack `make up` deployed, typically.
func othersOnNode(ctx context.Context, s *suite) ([]workloadRef, error) {
	out, err := exec.CommandContext(ctx, s.kubectl, "--kubeconfig", s.kubeconfig, "get", "deployments,statefulsets", "-A", "-o",
		`jsonpath={range .items[*]}{.kind} {.metadata.namespace} {.metadata.name} {.spec.replicas} {.metadata.annotations.scaleplane\.dev/paused-replicas}{"\n"}{end}`).Output()
	if err != nil {
		return nil, fmt.Errorf("listing the node's workloads: %w", err)
	}
	var refs []workloadRef
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(f[1], "kube-") || f[1] == s.certManagerNamespace ||
			slices.ContainsFunc(leftoverPrefixes, func(p string) bool { return strings.HasPrefix(f[1], p) }) {
			continue
		}
		r := workloadRef{kind: strings.ToLower(f[0]), namespace: f[1], name: f[2], paused: -1}
		r.replicas, _ = strconv.Atoi(f[3])
		if len(f) > 4 {
			if n, err := strconv.Atoi(f[4]); err == nil {
				r.paused = n
			}
		}
		refs = append(refs, r)
	}
	return refs, nil
}

// pauseOthers scales the other stacks' workloads on the embedded node to
// zero, keeping each count in pausedAnnotation, and returns the function
// that scales them back. The suites deploy their own copy of the local
// stack, and one node of 2 cores holds one copy's requests, not two: with
// make up's stack running, the suites' pods would stay Pending with
// "Insufficient cpu". An HPA leaves a workload scaled to zero alone, and
// the volumes of the StatefulSets stay bound, so a resume brings the stack
// back as it was.
func pauseOthers(ctx context.Context, s *suite) (resume func(), err error) {
	refs, err := othersOnNode(ctx, s)
	if err != nil {
		return nil, err
	}
	var toResume []workloadRef
	var namespaces []string
	for _, r := range refs {
		if r.paused >= 0 { // left paused by a killed run: resume it too
			toResume = append(toResume, r)
			continue
		}
		if r.replicas == 0 {
			continue
		}
		if !slices.Contains(namespaces, r.namespace) {
			namespaces = append(namespaces, r.namespace)
		}
		if err := s.kubectlRun(ctx, "-n", r.namespace, "annotate", r.kind+"/"+r.name, fmt.Sprintf("%s=%d", pausedAnnotation, r.replicas), "--overwrite"); err != nil {
			return nil, err
		}
		if err := s.kubectlRun(ctx, "-n", r.namespace, "scale", r.kind+"/"+r.name, "--replicas=0"); err != nil {
			return nil, err
		}
		r.paused = r.replicas
		toResume = append(toResume, r)
	}
	if len(namespaces) > 0 {
		fmt.Fprintf(os.Stderr, "integration: the embedded node also runs %d workloads of another stack (namespaces %s: make up's, typically). "+
			"The suites deploy their own copy of the local stack and need the node's 2 cores to themselves: "+
			"pausing those workloads (scaled to 0, counts kept in the annotation %s) until the suites end\n",
			len(toResume), strings.Join(namespaces, ", "), pausedAnnotation)
	}
	return func() {
		ctx := context.Background()
		for _, r := range toResume {
			err := s.kubectlRun(ctx, "-n", r.namespace, "scale", r.kind+"/"+r.name, fmt.Sprintf("--replicas=%d", r.paused))
			if err == nil {
				err = s.kubectlRun(ctx, "-n", r.namespace, "annotate", r.kind+"/"+r.name, pausedAnnotation+"-")
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "integration: resuming %s/%s in %s to %d replicas: %v (run: kubectl -n %s scale %s/%s --replicas=%d)\n",
					r.kind, r.name, r.namespace, r.paused, err, r.namespace, r.kind, r.name, r.paused)
			}
		}
		if len(toResume) > 0 {
			fmt.Fprintf(os.Stderr, "integration: resumed the %d paused workloads\n", len(toResume))
		}
	}, nil
}

// kubectlRun runs kubectl against the suite's cluster, its output in the
// error.
func (s *suite) kubectlRun(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, s.kubectl, append([]string{"--kubeconfig", s.kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
