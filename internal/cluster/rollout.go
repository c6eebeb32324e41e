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
	"sync"
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

// why says why the workload is not available: its pods' reasons, or
// that none is known.
func (s WorkloadState) why() string {
	if len(s.Problems) == 0 {
		return noReason
	}
	return strings.Join(s.Problems, "; ")
}

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
		UID        string `json:"uid"`
		Generation int64  `json:"generation"`
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
		Conditions         []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"conditions"`
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
	lk := newLook()
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
		pods, err := r.pods(ctx, w.Namespace, obj.Spec.Selector.MatchLabels)
		if err != nil {
			return nil, err
		}
		env := r.env(ctx, lk, w.Namespace)
		probs, missing := diagnosePods(pods, env)
		if len(pods) == 0 {
			probs = append(workloadProblems(w, obj, env.events), probs...)
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

// podObj is a pod as `kubectl get pods -o json` lists it: the fields the
// diagnosis reads.
type podObj struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		Containers []struct {
			Name           string          `json:"name"`
			ReadinessProbe json.RawMessage `json:"readinessProbe"`
		} `json:"containers"`
		Volumes []struct {
			PersistentVolumeClaim *struct {
				ClaimName string `json:"claimName"`
			} `json:"persistentVolumeClaim"`
		} `json:"volumes"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		Reason     string `json:"reason"`
		Message    string `json:"message"`
		Conditions []struct {
			Type               string    `json:"type"`
			Status             string    `json:"status"`
			Reason             string    `json:"reason"`
			Message            string    `json:"message"`
			LastTransitionTime time.Time `json:"lastTransitionTime"`
		} `json:"conditions"`
		InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
		ContainerStatuses     []containerStatus `json:"containerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name      string         `json:"name"`
	Image     string         `json:"image"`
	Ready     bool           `json:"ready"`
	State     containerState `json:"state"`
	LastState containerState `json:"lastState"`
}

type containerState struct {
	Waiting *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"waiting"`
	Running *struct {
		StartedAt time.Time `json:"startedAt"`
	} `json:"running"`
	Terminated *struct {
		ExitCode  int       `json:"exitCode"`
		Reason    string    `json:"reason"`
		Message   string    `json:"message"`
		StartedAt time.Time `json:"startedAt"`
	} `json:"terminated"`
}

// exit describes a terminated state: "exit code 1 (Error): <its message>".
func (s containerState) exit() string {
	t := s.Terminated
	if t == nil {
		return ""
	}
	out := fmt.Sprintf("exit code %d", t.ExitCode)
	if t.Reason != "" {
		out += " (" + t.Reason + ")"
	}
	if m := strings.TrimSpace(t.Message); m != "" {
		out += ": " + firstLine(m)
	}
	return out
}

// eventObj is an event as `kubectl get events -o json` lists it.
type eventObj struct {
	Metadata struct {
		CreationTimestamp time.Time `json:"creationTimestamp"`
	} `json:"metadata"`
	InvolvedObject struct {
		Kind      string `json:"kind"`
		Name      string `json:"name"`
		UID       string `json:"uid"`
		FieldPath string `json:"fieldPath"`
	} `json:"involvedObject"`
	Type           string    `json:"type"`
	Reason         string    `json:"reason"`
	Message        string    `json:"message"`
	FirstTimestamp time.Time `json:"firstTimestamp"`
	LastTimestamp  time.Time `json:"lastTimestamp"`
	EventTime      time.Time `json:"eventTime"`
	Series         *struct {
		LastObservedTime time.Time `json:"lastObservedTime"`
	} `json:"series"`
}

// last is when the event last happened: events record it in one of
// several fields, depending on who wrote them.
func (e eventObj) last() time.Time {
	t := e.Metadata.CreationTimestamp
	for _, c := range []time.Time{e.FirstTimestamp, e.EventTime, e.LastTimestamp} {
		if c.After(t) {
			t = c
		}
	}
	if e.Series != nil && e.Series.LastObservedTime.After(t) {
		t = e.Series.LastObservedTime
	}
	return t
}

func (e eventObj) String() string {
	if m := strings.TrimSpace(e.Message); m != "" {
		return e.Reason + ": " + firstLine(m)
	}
	return e.Reason
}

// latestEvent is the newest event about the object (kind, name, and uid
// when known: a StatefulSet's pod keeps its name across incarnations) that
// match accepts, or nil.
func latestEvent(events []eventObj, kind, name, uid string, match func(eventObj) bool) *eventObj {
	var best *eventObj
	for i := range events {
		e := &events[i]
		o := e.InvolvedObject
		if o.Kind != kind || o.Name != name || (uid != "" && o.UID != "" && o.UID != uid) {
			continue
		}
		if match != nil && !match(*e) {
			continue
		}
		if best == nil || !e.last().Before(best.last()) {
			best = e
		}
	}
	return best
}

// podEnv is what the diagnosis of pods may need beyond the pods
// themselves. Each function is called only when a pod needs its answer.
type podEnv struct {
	now time.Time
	// claims returns the phases of the namespace's volume claims.
	claims func() (map[string]string, error)
	// events returns the namespace's events.
	events func() ([]eventObj, error)
	// recreate deletes a pod its controller then replaces.
	recreate func(pod string) error
}

// noReason is what a wait that fails says of a workload whose pods report
// no reason for not being available.
const noReason = "no pod reports a reason yet"

// diagnosePods summarises why the pods are not available, for the
// progress display and a failed wait (problems), and reports what they
// are missing for good (missing): images the kubelet could not get, volume
// claims nobody provisions. The reasons are Kubernetes' own: the
// scheduler's (PodScheduled condition, FailedScheduling events), the
// kubelet's waiting reasons (image pulls, crash loops with their last
// exit), failing probes and other warnings (events).
func diagnosePods(pods []podObj, env podEnv) (problems, missing []string) {
	seen := map[string]bool{}
	explained := false // whether the current pod has a reason (maybe another pod's too)
	problem := func(s string) {
		explained = true
		if !seen[s] {
			seen[s] = true
			problems = append(problems, s)
		}
	}
	lack := func(s string) {
		explained = true
		if !seen[s] {
			seen[s] = true
			missing = append(missing, s)
		}
	}
	var phases map[string]string // the namespace's claims, read once when needed
	var claimsErr error          // why they could not be read, for this look
	claimsRead := false
	var events []eventObj // the namespace's events, read once when needed
	var eventsErr error
	eventsRead := false
	getEvents := func() []eventObj {
		if !eventsRead {
			eventsRead = true
			if env.events != nil {
				events, eventsErr = env.events()
			}
			if eventsErr != nil {
				problem("events unreadable: " + firstLine(eventsErr.Error()))
			}
		}
		return events
	}
	for _, p := range pods {
		name, uid := p.Metadata.Name, p.Metadata.UID
		if p.ready() {
			continue // nothing keeps it from serving; its old warnings are history
		}
		explained = false
		podEvent := func(match func(eventObj) bool) *eventObj {
			return latestEvent(getEvents(), "Pod", name, uid, match)
		}
		containerEvent := func(field, container string, match func(eventObj) bool) *eventObj {
			return podEvent(func(e eventObj) bool {
				return e.InvolvedObject.FieldPath == field+"{"+container+"}" && match(e)
			})
		}
		if p.Status.Phase == "Failed" && p.Status.Reason != "" {
			// Evicted, or rejected by the node (OutOfcpu, NodeAffinity...).
			msg := "pod " + name + " " + p.Status.Reason
			if m := strings.TrimSpace(p.Status.Message); m != "" {
				msg += ": " + firstLine(m)
			}
			problem(msg)
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type != "PodScheduled" || c.Status != "False" {
				continue
			}
			if !strings.Contains(c.Message, "PersistentVolumeClaim") {
				// The scheduler's verdict: resources, taints, affinity...
				msg := strings.TrimSpace(c.Message)
				if msg == "" {
					if e := podEvent(func(e eventObj) bool { return e.Reason == "FailedScheduling" }); e != nil {
						msg = strings.TrimSpace(e.Message)
					}
				}
				if msg == "" {
					continue // nothing said yet; the fallback below looks further
				}
				switch c.Reason {
				case "", "Unschedulable":
					problem("unschedulable: " + firstLine(msg))
				default: // SchedulingGated, ...
					problem("not scheduled (" + c.Reason + "): " + firstLine(msg))
				}
				continue
			}
			// A claim nobody provisions keeps the pod unschedulable for
			// good: a missing prerequisite, like a missing Secret. (The
			// embedded cluster's provisioner binds its class's claims
			// within seconds; another class may have no provisioner.)
			if !claimsRead {
				claimsRead = true
				if env.claims == nil {
					claimsErr = fmt.Errorf("not looked up")
				} else {
					phases, claimsErr = env.claims()
				}
			}
			if claimsErr != nil {
				// Unknown for this look, not missing: the next look
				// asks again.
				problem("volume claims unreadable: " + firstLine(claimsErr.Error()))
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
			case bound && env.now.Sub(c.LastTransitionTime) < schedulerRetryGrace:
				problem("pod " + name + " waits for the scheduler to retry (its claims are bound)")
				continue
			case bound:
				// The claims were bound after the scheduler's last try,
				// and it may not try again for minutes (seen on the
				// embedded cluster: no retry after the binding event).
				// The pod never ran: deleting it lets its controller
				// make one the scheduler places at once.
				msg := "pod " + name + " recreated: its claims were bound after the scheduler gave up on it"
				if env.recreate == nil {
					msg = "pod " + name + " waits for the scheduler to retry (its claims are bound)"
				} else if err := env.recreate(name); err != nil {
					// Not allowed to delete pods: the scheduler's own
					// periodic retry is left to place it.
					msg = "pod " + name + " waits for the scheduler to retry (its claims are bound): " + firstLine(err.Error())
				}
				problem(msg)
				continue
			}
			lack("volume claims unbound (no provisioner for their class?): " + firstLine(c.Message))
		}
		type status struct {
			containerStatus
			field, label string // spec.initContainers / "init container"
		}
		var statuses []status
		for _, cs := range p.Status.InitContainerStatuses {
			statuses = append(statuses, status{cs, "spec.initContainers", "init container " + cs.Name})
		}
		for _, cs := range p.Status.ContainerStatuses {
			statuses = append(statuses, status{cs, "spec.containers", "container " + cs.Name})
		}
		for _, cs := range statuses {
			isInit := cs.field == "spec.initContainers"
			switch st := cs.State; {
			case st.Waiting != nil && st.Waiting.Reason == "CrashLoopBackOff":
				msg := cs.label + ": CrashLoopBackOff"
				if exit := cs.LastState.exit(); exit != "" {
					msg += ", last " + exit
				} else if m := strings.TrimSpace(st.Waiting.Message); m != "" {
					msg += ": " + firstLine(m)
				}
				// A failing liveness probe is what kills some.
				if e := containerEvent(cs.field, cs.Name, func(e eventObj) bool {
					return e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, "Liveness probe failed")
				}); e != nil && (cs.LastState.Terminated == nil || !e.last().Before(cs.LastState.Terminated.StartedAt)) {
					msg += "; " + firstLine(strings.TrimSpace(e.Message))
				}
				problem(msg)
			case st.Waiting != nil && st.Waiting.Reason != "" && st.Waiting.Reason != "ContainerCreating" && st.Waiting.Reason != "PodInitializing":
				w := st.Waiting
				msg := cs.label + ": " + w.Reason
				if m := strings.TrimSpace(w.Message); m != "" {
					msg += ": " + firstLine(m)
				}
				if w.Reason == "ImagePullBackOff" && !strings.Contains(w.Message, "\": ") {
					// Older kubelets leave the pull's error out of the
					// back-off message: the Failed event has it.
					if e := containerEvent(cs.field, cs.Name, func(e eventObj) bool {
						return e.Reason == "Failed" && strings.HasPrefix(e.Message, "Failed to pull image")
					}); e != nil {
						msg += ": " + firstLine(strings.TrimSpace(e.Message))
					}
				}
				problem(msg)
				switch w.Reason {
				case "ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull", "InvalidImageName":
					lack("image " + cs.Image + " is not available to the node (" + w.Reason + ")")
				}
			case st.Running != nil && isInit && !cs.Ready: // a sidecar is ready once started
				problem(cs.label + " is still running")
			case st.Running != nil && !cs.Ready:
				if e := containerEvent(cs.field, cs.Name, func(e eventObj) bool {
					return e.Reason == "Unhealthy" && !e.last().Before(st.Running.StartedAt)
				}); e != nil {
					problem(cs.label + " is not ready: " + firstLine(strings.TrimSpace(e.Message)))
				} else if p.hasReadinessProbe(cs.Name) {
					problem(cs.label + " is running, its readiness probe has not passed yet")
				}
			case st.Terminated != nil && !cs.Ready && (!isInit || st.Terminated.ExitCode != 0):
				problem(cs.label + " terminated: " + st.exit())
			}
		}
		if explained {
			continue
		}
		// Nothing in the pod's status says why: its latest event may (a
		// volume that cannot be mounted, a sandbox that cannot be made, an
		// image being pulled, the scheduler's verdict).
		if e := podEvent(nil); e != nil && (e.Type == "Warning" || e.Reason == "Pulling") {
			problem(e.String())
		}
	}
	return problems, missing
}

// ready is whether the pod's Ready condition is true.
func (p podObj) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// hasReadinessProbe is whether the pod's container has a readiness probe.
func (p podObj) hasReadinessProbe(container string) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == container {
			return len(c.ReadinessProbe) > 0 && string(c.ReadinessProbe) != "null"
		}
	}
	return false
}

// workloadProblems says why a workload has no pods at all: its controller
// could not create them (a quota, an admission webhook, a missing service
// account).
func workloadProblems(w Workload, obj workloadObj, events func() ([]eventObj, error)) []string {
	var out []string
	for _, c := range obj.Status.Conditions {
		if c.Type == "ReplicaFailure" && c.Status == "True" {
			out = append(out, "ReplicaFailure: "+firstLine(strings.TrimSpace(c.Message)))
		}
	}
	if len(out) == 0 && events != nil {
		if evs, err := events(); err == nil {
			if e := latestEvent(evs, w.Kind, w.Name, obj.Metadata.UID, func(e eventObj) bool { return e.Type == "Warning" }); e != nil {
				out = append(out, e.String())
			}
		}
	}
	return append(out, "no pod exists yet")
}

// look memoises what several workloads of one look may read: a
// namespace's claims and events.
type look struct {
	now    time.Time
	claims map[string]func() (map[string]string, error)
	events map[string]func() ([]eventObj, error)
}

func newLook() *look {
	return &look{now: time.Now(), claims: map[string]func() (map[string]string, error){}, events: map[string]func() ([]eventObj, error){}}
}

func (r Rollouts) env(ctx context.Context, lk *look, ns string) podEnv {
	if lk.claims[ns] == nil {
		lk.claims[ns] = sync.OnceValues(func() (map[string]string, error) { return r.claimPhases(ctx, ns) })
	}
	if lk.events[ns] == nil {
		lk.events[ns] = sync.OnceValues(func() ([]eventObj, error) {
			var list struct {
				Items []eventObj `json:"items"`
			}
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
func (r Rollouts) pods(ctx context.Context, ns string, sel map[string]string) ([]podObj, error) {
	var parts []string
	for k, v := range sel {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	var list struct {
		Items []podObj `json:"items"`
	}
	if err := r.getJSON(ctx, &list, "-n", ns, "get", "pods", "-l", strings.Join(parts, ",")); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// podProblems summarises the waiting reasons of the workload's pods, and
// reports what the pods are missing for good (see diagnosePods).
func (r Rollouts) podProblems(ctx context.Context, ns string, sel map[string]string) (problems, missing []string, err error) {
	pods, err := r.pods(ctx, ns, sel)
	if err != nil {
		return nil, nil, err
	}
	problems, missing = diagnosePods(pods, r.env(ctx, newLook(), ns))
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
