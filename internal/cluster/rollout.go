package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/scaleplane/scaleplane/internal/images"
)

// Workload names one Deployment or StatefulSet.
type Workload struct {
	Kind      string // Deployment or StatefulSet
	Namespace string
	Name      string
}

func (w Workload) String() string { return w.Kind + " " + w.Namespace + "/" + w.Name }

// WorkloadState is what a rollout wait knows about one workload: whether it
// is expected to become available and, if not, exactly why not.
type WorkloadState struct {
	Workload
	Desired, Available, Updated int
	// Blockers are prerequisites that are missing from the cluster (a
	// Secret another component creates, an image not on the node): while
	// any is missing the workload cannot become available, and waiting
	// for it would only time out.
	Blockers []string
	// Problems are the pods' current waiting reasons, for the progress
	// display.
	Problems []string
}

// Expected reports whether the workload should become available: nothing it
// needs is missing.
func (s WorkloadState) Expected() bool { return len(s.Blockers) == 0 }

// Done reports whether the rollout is complete.
func (s WorkloadState) Done() bool {
	return s.Desired > 0 && s.Available >= s.Desired && s.Updated >= s.Desired
}

// Rollouts inspects and waits for workloads with kubectl.
type Rollouts struct {
	Kubectl    string
	Kubeconfig string
	// ContainerdSocket, when set, is the node's containerd: image presence
	// is checked there exactly instead of inferred from pod events.
	ContainerdSocket string
}

// KubectlPath returns a kubectl: the user's on PATH, else the cached one
// (built with the Kubernetes binaries).
func KubectlPath(ctx context.Context) (string, error) {
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p, nil
	}
	return Kubectl(ctx)
}

func (r Rollouts) getJSON(ctx context.Context, v any, args ...string) error {
	cmdArgs := append([]string{"--kubeconfig", r.Kubeconfig}, args...)
	cmdArgs = append(cmdArgs, "-o", "json")
	cmd := exec.CommandContext(ctx, r.Kubectl, cmdArgs...)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return fmt.Errorf("kubectl %s: %w %s", strings.Join(args, " "), err, strings.TrimSpace(msg))
	}
	return json.Unmarshal(out, v)
}

type podSpec struct {
	Containers     []container `json:"containers"`
	InitContainers []container `json:"initContainers"`
	Volumes        []struct {
		Secret *struct {
			SecretName string `json:"secretName"`
			Optional   *bool  `json:"optional"`
		} `json:"secret"`
	} `json:"volumes"`
}

type container struct {
	Image string `json:"image"`
	Env   []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name     string `json:"name"`
				Key      string `json:"key"`
				Optional *bool  `json:"optional"`
			} `json:"secretKeyRef"`
		} `json:"valueFrom"`
	} `json:"env"`
	EnvFrom []struct {
		SecretRef *struct {
			Name     string `json:"name"`
			Optional *bool  `json:"optional"`
		} `json:"secretRef"`
	} `json:"envFrom"`
}

type workloadObj struct {
	Metadata struct {
		Generation int64 `json:"generation"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int `json:"replicas"`
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec podSpec `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration int64 `json:"observedGeneration"`
		AvailableReplicas  int   `json:"availableReplicas"`
		ReadyReplicas      int   `json:"readyReplicas"`
		UpdatedReplicas    int   `json:"updatedReplicas"`
	} `json:"status"`
}

// required lists the Secrets the pod spec cannot start without (optional
// references excluded) and its images.
func (p podSpec) required() (secrets, imgs []string) {
	seen := map[string]bool{}
	add := func(name string, optional *bool) {
		if name != "" && (optional == nil || !*optional) && !seen[name] {
			seen[name] = true
			secrets = append(secrets, name)
		}
	}
	for _, c := range append(append([]container{}, p.InitContainers...), p.Containers...) {
		imgs = append(imgs, c.Image)
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				add(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Optional)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				add(e.SecretRef.Name, e.SecretRef.Optional)
			}
		}
	}
	for _, v := range p.Volumes {
		if v.Secret != nil {
			add(v.Secret.SecretName, v.Secret.Optional)
		}
	}
	return secrets, imgs
}

// Inspect returns the state of each workload, with its blockers.
func (r Rollouts) Inspect(ctx context.Context, ws []Workload) ([]WorkloadState, error) {
	secretsByNS := map[string]map[string]bool{}
	var out []WorkloadState
	objs := make([]workloadObj, 0, len(ws))
	for _, w := range ws {
		var obj workloadObj
		if err := r.getJSON(ctx, &obj, "-n", w.Namespace, "get", strings.ToLower(w.Kind), w.Name); err != nil {
			return nil, err
		}
		st := WorkloadState{Workload: w, Available: obj.Status.AvailableReplicas, Updated: obj.Status.UpdatedReplicas, Desired: 1}
		if obj.Spec.Replicas != nil {
			st.Desired = *obj.Spec.Replicas
		}
		if w.Kind == "StatefulSet" {
			st.Available = obj.Status.ReadyReplicas
		}
		if obj.Status.ObservedGeneration < obj.Metadata.Generation {
			st.Updated = 0 // the controller has not seen the latest spec yet
		}
		secrets, imgs := obj.Spec.Template.Spec.required()
		have, ok := secretsByNS[w.Namespace]
		if !ok {
			var list struct {
				Items []struct {
					Metadata struct {
						Name string `json:"name"`
					} `json:"metadata"`
				} `json:"items"`
			}
			if err := r.getJSON(ctx, &list, "-n", w.Namespace, "get", "secrets"); err != nil {
				return nil, err
			}
			have = map[string]bool{}
			for _, s := range list.Items {
				have[s.Metadata.Name] = true
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
		probs, missing, err := r.podProblems(ctx, w.Namespace, obj.Spec.Selector.MatchLabels)
		if err != nil {
			return nil, err
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

// serviceHost matches the in-cluster DNS name of a Service
// (<name>.<namespace>.svc), also inside a pod's name
// (kafka-0.kafka-headless.<ns>.svc) or a URL.
var serviceHost = regexp.MustCompile(`([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc\b`)

// blockDependents marks a workload blocked when a Service it is configured
// to call (a <svc>.<ns>.svc name in an env value, or in a Secret value an
// env var takes) selects only pods of blocked workloads: it cannot become
// ready while what it needs cannot start. Telemetry endpoints (env names
// with OTEL or OTLP) do not count: export is best-effort and never gates
// readiness. Repeated until nothing changes, so chains propagate.
func (r Rollouts) blockDependents(ctx context.Context, states []WorkloadState, objs []workloadObj) error {
	type svcKey struct{ ns, name string }
	selectors := map[svcKey]map[string]string{}
	secretData := map[svcKey]map[string]string{}
	for _, ns := range uniq(namespacesOf(states)) {
		var svcs struct {
			Items []struct {
				Metadata struct{ Name string } `json:"metadata"`
				Spec     struct {
					Selector map[string]string `json:"selector"`
				} `json:"spec"`
			} `json:"items"`
		}
		if err := r.getJSON(ctx, &svcs, "-n", ns, "get", "services"); err != nil {
			return err
		}
		for _, s := range svcs.Items {
			selectors[svcKey{ns, s.Metadata.Name}] = s.Spec.Selector
		}
		var secrets struct {
			Items []struct {
				Metadata struct{ Name string } `json:"metadata"`
				Data     map[string]string     `json:"data"`
			} `json:"items"`
		}
		if err := r.getJSON(ctx, &secrets, "-n", ns, "get", "secrets"); err != nil {
			return err
		}
		for _, s := range secrets.Items {
			dec := map[string]string{}
			for k, v := range s.Data {
				if b, err := base64.StdEncoding.DecodeString(v); err == nil {
					dec[k] = string(b)
				}
			}
			secretData[svcKey{ns, s.Metadata.Name}] = dec
		}
	}
	// deps[i] lists the Services workload i calls.
	deps := make([][]svcKey, len(states))
	for i, obj := range objs {
		ns := states[i].Namespace
		for _, c := range append(append([]container{}, obj.Spec.Template.Spec.InitContainers...), obj.Spec.Template.Spec.Containers...) {
			for _, e := range c.Env {
				up := strings.ToUpper(e.Name)
				if strings.Contains(up, "OTEL") || strings.Contains(up, "OTLP") {
					continue
				}
				v := e.Value
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					v = secretData[svcKey{ns, e.ValueFrom.SecretKeyRef.Name}][e.ValueFrom.SecretKeyRef.Key]
				}
				for _, m := range serviceHost.FindAllStringSubmatch(v, -1) {
					deps[i] = append(deps[i], svcKey{m[3], m[1]})
				}
			}
		}
	}
	selects := func(sel, labels map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	for changed := true; changed; {
		changed = false
		for i := range states {
			for _, d := range deps[i] {
				sel, ok := selectors[d]
				if !ok {
					continue
				}
				var backers []int
				for j := range states {
					if states[j].Namespace == d.ns && selects(sel, objs[j].Spec.Template.Metadata.Labels) {
						backers = append(backers, j)
					}
				}
				if len(backers) == 0 {
					continue
				}
				blocked := true
				for _, j := range backers {
					blocked = blocked && !states[j].Expected()
				}
				if !blocked || backers[0] == i {
					continue
				}
				b := fmt.Sprintf("needs Service %s/%s, whose %s cannot start", d.ns, d.name, states[backers[0]].Workload)
				if !contains(states[i].Blockers, b) {
					states[i].Blockers = append(states[i].Blockers, b)
					sort.Strings(states[i].Blockers)
					changed = true
				}
			}
		}
	}
	return nil
}

func namespacesOf(states []WorkloadState) []string {
	out := make([]string, 0, len(states))
	for _, s := range states {
		out = append(out, s.Namespace)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// claimPhases maps the namespace's volume claims to their phase.
func (r Rollouts) claimPhases(ctx context.Context, ns string) (map[string]string, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				Phase string `json:"phase"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := r.getJSON(ctx, &list, "-n", ns, "get", "persistentvolumeclaims"); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(list.Items))
	for _, c := range list.Items {
		out[c.Metadata.Name] = c.Status.Phase
	}
	return out, nil
}

// allBound is whether a pod has claims and every one of them exists and
// is bound.
func allBound(claims []string, phases map[string]string) bool {
	for _, c := range claims {
		if phases[c] != "Bound" {
			return false
		}
	}
	return len(claims) > 0
}

// schedulerRetryGrace is how long a pod whose claims are all bound may stay
// unschedulable before it is recreated: the scheduler normally retries such
// a pod within seconds of the binding, and deleting it then would only
// churn. It is timed from the pod's first failure to schedule (its
// PodScheduled condition's transition), as Kubernetes records no time for
// a claim's binding: a pod whose claims took longer than the grace to bind
// may be recreated on the first look after, which costs one new pod.
const schedulerRetryGrace = 30 * time.Second

// deletePod deletes a pod without waiting for it to go.
func (r Rollouts) deletePod(ctx context.Context, ns, name string) error {
	out, err := exec.CommandContext(ctx, r.Kubectl, "--kubeconfig", r.Kubeconfig, "-n", ns, "delete", "pod", name, "--wait=false", "--ignore-not-found").CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl delete pod %s/%s: %w: %s", ns, name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// podProblems summarises the waiting reasons of the workload's pods, and
// reports what the pods are missing for good: images the kubelet could not
// get, volume claims nobody provisions.
func (r Rollouts) podProblems(ctx context.Context, ns string, sel map[string]string) (problems, missing []string, err error) {
	var parts []string
	for k, v := range sel {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	var pods struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Volumes []struct {
					PersistentVolumeClaim *struct {
						ClaimName string `json:"claimName"`
					} `json:"persistentVolumeClaim"`
				} `json:"volumes"`
			} `json:"spec"`
			Status struct {
				Conditions []struct {
					Type               string    `json:"type"`
					Status             string    `json:"status"`
					Message            string    `json:"message"`
					LastTransitionTime time.Time `json:"lastTransitionTime"`
				} `json:"conditions"`
				ContainerStatuses []struct {
					Image string `json:"image"`
					State struct {
						Waiting *struct {
							Reason  string `json:"reason"`
							Message string `json:"message"`
						} `json:"waiting"`
					} `json:"state"`
				} `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := r.getJSON(ctx, &pods, "-n", ns, "get", "pods", "-l", strings.Join(parts, ",")); err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	var phases map[string]string // the namespace's claims, read once when needed
	var claimsErr error          // why they could not be read, for this look
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			// A claim nobody provisions keeps the pod unschedulable for
			// good: a missing prerequisite, like a missing Secret. (The
			// embedded cluster's provisioner binds its class's claims
			// within seconds; another class may have no provisioner.)
			if c.Type == "PodScheduled" && c.Status == "False" && strings.Contains(c.Message, "PersistentVolumeClaim") {
				if phases == nil && claimsErr == nil {
					phases, claimsErr = r.claimPhases(ctx, ns)
				}
				if claimsErr != nil {
					// Unknown for this look, not missing: the next look
					// asks again.
					if b := "volume claims unreadable: " + firstLine(claimsErr.Error()); !seen[b] {
						seen[b] = true
						problems = append(problems, b)
					}
					continue
				}
				var claims []string
				for _, v := range p.Spec.Volumes {
					if v.PersistentVolumeClaim != nil {
						claims = append(claims, v.PersistentVolumeClaim.ClaimName)
					}
				}
				bound := allBound(claims, phases)
				switch {
				case bound && time.Since(c.LastTransitionTime) < schedulerRetryGrace:
					problems = append(problems, "pod "+p.Metadata.Name+" waits for the scheduler to retry (its claims are bound)")
					continue
				case bound:
					// The claims were bound after the scheduler's last try,
					// and it may not try again for minutes (seen on the
					// embedded cluster: no retry after the binding event).
					// The pod never ran: deleting it lets its controller
					// make one the scheduler places at once.
					msg := "pod " + p.Metadata.Name + " recreated: its claims were bound after the scheduler gave up on it"
					if err := r.deletePod(ctx, ns, p.Metadata.Name); err != nil {
						// Not allowed to delete pods: the scheduler's own
						// periodic retry is left to place it.
						msg = "pod " + p.Metadata.Name + " waits for the scheduler to retry (its claims are bound): " + firstLine(err.Error())
					}
					problems = append(problems, msg)
					continue
				}
				b := "volume claims unbound (no provisioner for their class?): " + firstLine(c.Message)
				if !seen[b] {
					seen[b] = true
					missing = append(missing, b)
				}
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			w := cs.State.Waiting
			if w == nil || w.Reason == "" || w.Reason == "ContainerCreating" {
				continue
			}
			msg := w.Reason
			if w.Message != "" {
				msg += ": " + firstLine(w.Message)
			}
			if !seen[msg] {
				seen[msg] = true
				problems = append(problems, msg)
			}
			switch w.Reason {
			case "ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull", "InvalidImageName":
				b := "image " + cs.Image + " is not available to the node (" + w.Reason + ")"
				if !seen[b] {
					seen[b] = true
					missing = append(missing, b)
				}
			}
		}
	}
	return problems, missing, nil
}

// Wait polls until every expected workload is available or timeout passes,
// printing a line whenever a workload's state changes. Workloads with
// blockers are reported, not waited for. It returns the last states; the
// error names the expected workloads that did not become available.
func (r Rollouts) Wait(ctx context.Context, ws []Workload, timeout time.Duration, progress io.Writer) ([]WorkloadState, error) {
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
					names = append(names, fmt.Sprintf("%s (%d/%d available; %s)", s, s.Available, s.Desired, strings.Join(s.Problems, "; ")))
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
