package rollout

import (
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// noReason is what a wait that fails says of a workload whose pods report
// no reason for not being available.
const noReason = "no pod reports a reason yet"

// schedulerRetryGrace is how long a pod whose claims are all bound may stay
// unschedulable before it is recreated: the scheduler normally retries such
// a pod within seconds of the binding, and deleting it then would only
// churn. It is timed from the pod's first failure to schedule (its
// PodScheduled condition's transition), as Kubernetes records no time for
// a claim's binding: a pod whose claims took longer than the grace to bind
// may be recreated on the first look after, which costs one new pod.
const schedulerRetryGrace = 30 * time.Second

// podEnv is what the diagnosis of pods may need beyond the pods
// themselves. Each function is called only when a pod needs its answer.
type podEnv struct {
	now time.Time
	// claims returns the phases of the namespace's volume claims.
	claims func() (map[string]string, error)
	// events returns the namespace's events.
	events func() ([]corev1.Event, error)
	// recreate deletes a pod its controller then replaces.
	recreate func(pod string) error
}

// diagnosePods summarises why the pods are not available, for the
// progress display and a failed wait (problems), and reports what they
// are missing for good (missing): images the kubelet could not get, volume
// claims nobody provisions. The reasons are Kubernetes' own: the
// scheduler's (PodScheduled condition, FailedScheduling events), the
// kubelet's waiting reasons (image pulls, crash loops with their last
// exit), failing probes and other warnings (events).
//
// kstatus judges the workload, not its pods here: it calls a Failed pod
// (evicted, rejected by the node) Current, as completed, which is right for
// a bare Pod but hides the reason a controller's pod is gone.
func diagnosePods(pods []corev1.Pod, env podEnv) (problems, missing []string) {
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
	var events []corev1.Event // the namespace's events, read once when needed
	var eventsErr error
	eventsRead := false
	getEvents := func() []corev1.Event {
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
		name, uid := p.Name, string(p.UID)
		if podReady(p) {
			continue // nothing keeps it from serving; its old warnings are history
		}
		explained = false
		podEvent := func(match func(corev1.Event) bool) *corev1.Event {
			return latestEvent(getEvents(), "Pod", name, uid, match)
		}
		containerEvent := func(field, container string, match func(corev1.Event) bool) *corev1.Event {
			return podEvent(func(e corev1.Event) bool {
				return e.InvolvedObject.FieldPath == field+"{"+container+"}" && match(e)
			})
		}
		if p.Status.Phase == corev1.PodFailed && p.Status.Reason != "" {
			// Evicted, or rejected by the node (OutOfcpu, NodeAffinity...).
			msg := "pod " + name + " " + p.Status.Reason
			if m := strings.TrimSpace(p.Status.Message); m != "" {
				msg += ": " + firstLine(m)
			}
			problem(msg)
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type != corev1.PodScheduled || c.Status != corev1.ConditionFalse {
				continue
			}
			if !strings.Contains(c.Message, "PersistentVolumeClaim") {
				// The scheduler's verdict: resources, taints, affinity...
				msg := strings.TrimSpace(c.Message)
				if msg == "" {
					if e := podEvent(func(e corev1.Event) bool { return e.Reason == "FailedScheduling" }); e != nil {
						msg = strings.TrimSpace(e.Message)
					}
				}
				if msg == "" {
					continue // nothing said yet; the fallback below looks further
				}
				switch c.Reason {
				case "", corev1.PodReasonUnschedulable:
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
					claimsErr = errors.New("not looked up")
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
			case bound && env.now.Sub(c.LastTransitionTime.Time) < schedulerRetryGrace:
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
		type containerLook struct {
			corev1.ContainerStatus
			field, label string // spec.initContainers / "init container"
		}
		var statuses []containerLook
		for _, cs := range p.Status.InitContainerStatuses {
			statuses = append(statuses, containerLook{cs, "spec.initContainers", "init container " + cs.Name})
		}
		for _, cs := range p.Status.ContainerStatuses {
			statuses = append(statuses, containerLook{cs, "spec.containers", "container " + cs.Name})
		}
		for _, cs := range statuses {
			isInit := cs.field == "spec.initContainers"
			switch st := cs.State; {
			case st.Waiting != nil && st.Waiting.Reason == "CrashLoopBackOff":
				msg := cs.label + ": CrashLoopBackOff"
				if exit := exitOf(cs.LastTerminationState); exit != "" {
					msg += ", last " + exit
				} else if m := strings.TrimSpace(st.Waiting.Message); m != "" {
					msg += ": " + firstLine(m)
				}
				// A failing liveness probe is what kills some.
				last := cs.LastTerminationState.Terminated
				if e := containerEvent(cs.field, cs.Name, func(e corev1.Event) bool {
					return e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, "Liveness probe failed")
				}); e != nil && (last == nil || !eventTime(*e).Before(last.StartedAt.Time)) {
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
					if e := containerEvent(cs.field, cs.Name, func(e corev1.Event) bool {
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
				started := st.Running.StartedAt.Time
				if e := containerEvent(cs.field, cs.Name, func(e corev1.Event) bool {
					return e.Reason == "Unhealthy" && !eventTime(e).Before(started)
				}); e != nil {
					problem(cs.label + " is not ready: " + firstLine(strings.TrimSpace(e.Message)))
				} else if hasReadinessProbe(p, cs.Name) {
					problem(cs.label + " is running, its readiness probe has not passed yet")
				}
			case st.Terminated != nil && !cs.Ready && (!isInit || st.Terminated.ExitCode != 0):
				problem(cs.label + " terminated: " + exitOf(st))
			}
		}
		if explained {
			continue
		}
		// Nothing in the pod's status says why: its latest event may (a
		// volume that cannot be mounted, a sandbox that cannot be made, an
		// image being pulled, the scheduler's verdict).
		if e := podEvent(nil); e != nil && (e.Type == corev1.EventTypeWarning || e.Reason == "Pulling") {
			problem(eventString(*e))
		}
	}
	return problems, missing
}

// allBound is whether a pod has claims and every one of them exists and
// is bound.
func allBound(claims []string, phases map[string]string) bool {
	for _, c := range claims {
		if phases[c] != string(corev1.ClaimBound) {
			return false
		}
	}
	return len(claims) > 0
}

// podReady is whether the pod's Ready condition is true.
func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// hasReadinessProbe is whether the pod's container has a readiness probe.
func hasReadinessProbe(p corev1.Pod, container string) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == container {
			return c.ReadinessProbe != nil
		}
	}
	return false
}

// exitOf describes a terminated state: "exit code 1 (Error): <its
// message>", or "" when the state is not a termination.
func exitOf(s corev1.ContainerState) string {
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

// eventTime is when the event last happened: events record it in one of
// several fields, depending on who wrote them.
func eventTime(e corev1.Event) time.Time {
	t := e.CreationTimestamp.Time
	for _, c := range []time.Time{e.FirstTimestamp.Time, e.EventTime.Time, e.LastTimestamp.Time} {
		if c.After(t) {
			t = c
		}
	}
	if e.Series != nil && e.Series.LastObservedTime.After(t) {
		t = e.Series.LastObservedTime.Time
	}
	return t
}

// eventString is the event as a problem: "Reason: first line of message".
func eventString(e corev1.Event) string {
	if m := strings.TrimSpace(e.Message); m != "" {
		return e.Reason + ": " + firstLine(m)
	}
	return e.Reason
}

// latestEvent is the newest event about the object (kind, name, and uid
// when known: a StatefulSet's pod keeps its name across incarnations) that
// match accepts, or nil.
func latestEvent(events []corev1.Event, kind, name, uid string, match func(corev1.Event) bool) *corev1.Event {
	var best *corev1.Event
	for i := range events {
		e := &events[i]
		o := e.InvolvedObject
		if o.Kind != kind || o.Name != name || (uid != "" && o.UID != "" && string(o.UID) != uid) {
			continue
		}
		if match != nil && !match(*e) {
			continue
		}
		if best == nil || !eventTime(*e).Before(eventTime(*best)) {
			best = e
		}
	}
	return best
}

// workloadProblems says why a workload has no pods at all: its controller
// could not create them (a quota, an admission webhook, a missing service
// account).
func workloadProblems(obj workloadObj, events func() ([]corev1.Event, error)) []string {
	var out []string
	for _, c := range obj.conditions {
		if c.Type == "ReplicaFailure" && c.Status == corev1.ConditionTrue {
			out = append(out, "ReplicaFailure: "+firstLine(strings.TrimSpace(c.Message)))
		}
	}
	if len(out) == 0 && events != nil {
		if evs, err := events(); err == nil {
			if e := latestEvent(evs, obj.Kind, obj.Name, obj.uid, func(e corev1.Event) bool { return e.Type == corev1.EventTypeWarning }); e != nil {
				out = append(out, eventString(*e))
			}
		}
	}
	return append(out, "no pod exists yet")
}
