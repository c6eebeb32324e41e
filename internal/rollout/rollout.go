// Package rollout waits for a stack's Deployments and StatefulSets to roll
// out and, while they do not, says why.
//
// Whether an object has rolled out is kstatus's verdict
// (sigs.k8s.io/cli-utils/pkg/kstatus/status), the rules kubectl and Config
// Sync apply, so `scaleplane up` and the integration tests agree with the
// tools users already trust. kstatus only says "not yet" and, at best, a
// count ("Ready: 0/2"). On top of it, the diagnosis here reads the pods,
// their events and the volume claims to name Kubernetes' own reason (the
// scheduler's verdict, an image pull error, a crash loop with its last
// exit), and marks workloads that cannot start at all (a missing Secret,
// an image not on the node, a claim nobody provisions) so a wait does not
// sit out its timeout for them.
package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/scaleplane/scaleplane/internal/images"
)

// Workload names one Deployment or StatefulSet.
type Workload struct {
	Kind      string // Deployment or StatefulSet
	Namespace string
	Name      string
}

// String names the workload in progress lines and errors:
// "Deployment sp/gateway".
func (w Workload) String() string { return w.Kind + " " + w.Namespace + "/" + w.Name }

// State is what a rollout wait knows about one workload: whether it has
// rolled out, whether it is expected to and, if not, exactly why not.
type State struct {
	Workload
	// Desired, Available and Updated are the replica counts shown in the
	// progress lines (a StatefulSet's available ones are its ready ones).
	Desired, Available, Updated int
	// Status is kstatus's verdict on the workload object: Current once it
	// has rolled out.
	Status status.Status
	// Blockers are prerequisites that are missing from the cluster (a
	// Secret another component creates, an image not on the node): while
	// any is missing the workload cannot become available, and waiting
	// for it would only time out.
	Blockers []string
	// Problems are the pods' current waiting reasons, for the progress
	// display.
	Problems []string
	// Reason is kstatus's message while the rollout is not complete, shown
	// when no pod says more.
	Reason string
}

// Expected reports whether the workload should become available: nothing it
// needs is missing.
func (s State) Expected() bool { return len(s.Blockers) == 0 }

// Done reports whether the rollout is complete, as kstatus judges it.
func (s State) Done() bool { return s.Status == status.CurrentStatus }

// why says why the workload is not available: its pods' reasons, or
// kstatus's and that no pod gives one.
func (s State) why() string {
	switch {
	case len(s.Problems) > 0:
		return strings.Join(s.Problems, "; ")
	case s.Reason != "":
		return s.Reason + "; " + noReason
	}
	return noReason
}

// Checker inspects and waits for workloads with kubectl: the one binary
// both the user's cluster and the embedded node answer, with the user's
// kubeconfig as it is.
type Checker struct {
	// Kubectl is the kubectl binary to run (see cluster.KubectlPath).
	Kubectl string
	// Kubeconfig names the cluster and the credentials kubectl uses.
	Kubeconfig string
	// ContainerdSocket, when set, is the node's containerd: image presence
	// is checked there exactly instead of inferred from pod events.
	ContainerdSocket string
}

// getJSON runs `kubectl ARGS -o json` and decodes its answer into v.
func (r Checker) getJSON(ctx context.Context, v any, args ...string) error {
	cmdArgs := append([]string{"--kubeconfig", r.Kubeconfig}, args...)
	cmdArgs = append(cmdArgs, "-o", "json")
	out, err := exec.CommandContext(ctx, r.Kubectl, cmdArgs...).Output()
	if err != nil {
		msg := ""
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg = string(ee.Stderr)
		}
		return fmt.Errorf("kubectl %s: %w %s", strings.Join(args, " "), err, strings.TrimSpace(msg))
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("kubectl %s: decoding its answer: %w", strings.Join(args, " "), err)
	}
	return nil
}

// Inspect returns the state of each workload, with its blockers.
func (r Checker) Inspect(ctx context.Context, ws []Workload) ([]State, error) {
	secretsByNS := map[string]map[string]bool{}
	lk := newLook()
	out := make([]State, 0, len(ws))
	objs := make([]workloadObj, 0, len(ws))
	for _, w := range ws {
		// Decoded by apimachinery (integers as int64), as kstatus reads it.
		var u unstructured.Unstructured
		if err := r.getJSON(ctx, &u, "-n", w.Namespace, "get", strings.ToLower(w.Kind), w.Name); err != nil {
			return nil, err
		}
		obj, err := parseWorkload(w, &u)
		if err != nil {
			return nil, err
		}
		st := obj.state()
		secrets, imgs := required(obj.template.Spec)
		have, ok := secretsByNS[w.Namespace]
		if !ok {
			var list corev1.SecretList
			if err := r.getJSON(ctx, &list, "-n", w.Namespace, "get", "secrets"); err != nil {
				return nil, err
			}
			have = map[string]bool{}
			for _, s := range list.Items {
				have[s.Name] = true
			}
			secretsByNS[w.Namespace] = have
		}
		for _, s := range secrets {
			if !have[s] {
				st.Blockers = append(st.Blockers, "Secret "+w.Namespace+"/"+s+" does not exist")
			}
		}
		if r.ContainerdSocket != "" {
			present, err := images.Present(ctx, r.ContainerdSocket, imgs)
			if err != nil {
				return nil, err
			}
			for _, img := range imgs {
				if !present[img] {
					st.Blockers = append(st.Blockers, "image "+img+" is not on the node")
				}
			}
		}
		pods, err := r.pods(ctx, w.Namespace, obj.selector)
		if err != nil {
			return nil, err
		}
		env := r.env(ctx, lk, w.Namespace)
		probs, missing := diagnosePods(pods, env)
		if len(pods) == 0 {
			probs = append(workloadProblems(obj, env.events), probs...)
		}
		if st.Status == status.FailedStatus && obj.stalled != "" {
			// The controller gave up (a Deployment past its progress
			// deadline): said once, after the pods' own reasons.
			probs = append(probs, obj.stalled)
		}
		st.Problems = probs
		for _, m := range missing {
			// With the node's image store at hand, image presence was
			// checked exactly above; otherwise the kubelet's verdict is
			// the evidence.
			if r.ContainerdSocket != "" && strings.HasPrefix(m, "image ") {
				continue
			}
			st.Blockers = append(st.Blockers, m)
		}
		st.Blockers = uniq(st.Blockers)
		sort.Strings(st.Blockers)
		out = append(out, st)
		objs = append(objs, obj)
	}
	if err := r.blockDependents(ctx, out, objs); err != nil {
		return nil, err
	}
	return out, nil
}

// claimPhases maps the namespace's volume claims to their phase.
func (r Checker) claimPhases(ctx context.Context, ns string) (map[string]string, error) {
	var list corev1.PersistentVolumeClaimList
	if err := r.getJSON(ctx, &list, "-n", ns, "get", "persistentvolumeclaims"); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(list.Items))
	for _, c := range list.Items {
		out[c.Name] = string(c.Status.Phase)
	}
	return out, nil
}

// deletePod deletes a pod without waiting for it to go.
func (r Checker) deletePod(ctx context.Context, ns, name string) error {
	out, err := exec.CommandContext(ctx, r.Kubectl, "--kubeconfig", r.Kubeconfig, "-n", ns, "delete", "pod", name, "--wait=false", "--ignore-not-found").CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl delete pod %s/%s: %w: %s", ns, name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// look memoises what several workloads of one look may read: a
// namespace's claims and events.
type look struct {
	now    time.Time
	claims map[string]func() (map[string]string, error)
	events map[string]func() ([]corev1.Event, error)
}

func newLook() *look {
	return &look{now: time.Now(), claims: map[string]func() (map[string]string, error){}, events: map[string]func() ([]corev1.Event, error){}}
}

// env is what the diagnosis of the namespace's pods may read, each read
// at most once per look.
func (r Checker) env(ctx context.Context, lk *look, ns string) podEnv {
	if lk.claims[ns] == nil {
		lk.claims[ns] = sync.OnceValues(func() (map[string]string, error) { return r.claimPhases(ctx, ns) })
	}
	if lk.events[ns] == nil {
		lk.events[ns] = sync.OnceValues(func() ([]corev1.Event, error) {
			var list corev1.EventList
			err := r.getJSON(ctx, &list, "-n", ns, "get", "events")
			return list.Items, err
		})
	}
	return podEnv{
		now:      lk.now,
		claims:   lk.claims[ns],
		events:   lk.events[ns],
		recreate: func(pod string) error { return r.deletePod(ctx, ns, pod) },
	}
}

// pods lists the pods the selector selects.
func (r Checker) pods(ctx context.Context, ns string, sel map[string]string) ([]corev1.Pod, error) {
	parts := make([]string, 0, len(sel))
	for k, v := range sel {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	var list corev1.PodList
	if err := r.getJSON(ctx, &list, "-n", ns, "get", "pods", "-l", strings.Join(parts, ",")); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// Wait polls until every expected workload is available or timeout passes,
// printing a line whenever a workload's state changes. Workloads with
// blockers are reported, not waited for. It returns the last states; the
// error names the expected workloads that did not become available.
func (r Checker) Wait(ctx context.Context, ws []Workload, timeout time.Duration, progress io.Writer) ([]State, error) {
	if progress == nil {
		progress = io.Discard
	}
	deadline := time.Now().Add(timeout)
	last := map[string]string{}
	begin := time.Now()
	for {
		states, err := r.Inspect(ctx, ws)
		if err != nil {
			return nil, err
		}
		pending := 0
		for _, s := range states {
			line := fmt.Sprintf("%d/%d available", s.Available, s.Desired)
			switch {
			case !s.Expected():
				line += "; not expected to start: " + strings.Join(s.Blockers, "; ")
			case s.Done():
				line += "; rolled out"
			default:
				pending++
				if len(s.Problems) > 0 {
					line += "; " + strings.Join(s.Problems, "; ")
				} else if s.Reason != "" {
					line += "; " + s.Reason
				}
			}
			if last[s.String()] != line {
				last[s.String()] = line
				fmt.Fprintf(progress, "  [%3ds] %-40s %s\n", int(time.Since(begin).Seconds()), s.String(), line)
			}
		}
		if pending == 0 {
			return states, nil
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range states {
				if s.Expected() && !s.Done() {
					names = append(names, fmt.Sprintf("%s (%d/%d available; %s)", s, s.Available, s.Desired, s.why()))
				}
			}
			return states, fmt.Errorf("not available after %s: %s", timeout, strings.Join(names, ", "))
		}
		select {
		case <-ctx.Done():
			return states, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// uniq returns s without repeats, in first-seen order.
func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// firstLine is s up to its first line break: a progress line holds one
// line of each message.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
