package rollout

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// workloadObj is a Deployment or StatefulSet as the API server returned
// it: kstatus's verdict on it, and what the diagnosis reads of it.
type workloadObj struct {
	Workload
	uid string
	// result is kstatus's verdict on the whole object.
	result *status.Result
	// desired, available and updated are the counts the progress lines
	// show; kstatus decides, these only inform.
	desired, available, updated int
	selector                    map[string]string
	template                    corev1.PodTemplateSpec
	// conditions are the object's status conditions, for a controller
	// that says why it made no pods (ReplicaFailure).
	conditions []status.BasicCondition
	// stalled is kstatus's reason when it judges the rollout failed (a
	// Deployment past its progress deadline), else empty.
	stalled string
}

// parseWorkload reads the workload object u (decoded by apimachinery, so
// its integers are int64s) and computes its kstatus.
func parseWorkload(w Workload, u *unstructured.Unstructured) (workloadObj, error) {
	obj := workloadObj{Workload: w, uid: string(u.GetUID())}
	res, err := status.Compute(u)
	if err != nil {
		return obj, fmt.Errorf("status of %s: %w", w, err)
	}
	obj.result = res
	if res.Status == status.FailedStatus {
		obj.stalled = res.Message
		for _, c := range res.Conditions {
			if c.Type == status.ConditionStalled && c.Message != "" {
				obj.stalled += ": " + firstLine(c.Message)
			}
		}
	}
	m := u.Object
	obj.desired = int(nestedInt(m, 1, "spec", "replicas")) // the API server's default
	obj.available = int(nestedInt(m, 0, "status", "availableReplicas"))
	if w.Kind == "StatefulSet" {
		// Its availableReplicas came with minReadySeconds (Kubernetes
		// 1.22); readyReplicas is what every version reports.
		obj.available = int(nestedInt(m, 0, "status", "readyReplicas"))
	}
	obj.updated = int(nestedInt(m, 0, "status", "updatedReplicas"))
	if gen, obs := u.GetGeneration(), nestedInt(m, 0, "status", "observedGeneration"); obs < gen {
		obj.updated = 0 // the controller has not seen the latest spec yet
	}
	obj.selector, _, err = unstructured.NestedStringMap(m, "spec", "selector", "matchLabels")
	if err != nil {
		return obj, fmt.Errorf("%s: spec.selector.matchLabels: %w", w, err)
	}
	if tmpl, ok, err := unstructured.NestedMap(m, "spec", "template"); err != nil {
		return obj, fmt.Errorf("%s: spec.template: %w", w, err)
	} else if ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &obj.template); err != nil {
			return obj, fmt.Errorf("%s: spec.template: %w", w, err)
		}
	}
	withConds, err := status.GetObjectWithConditions(m)
	if err != nil {
		return obj, fmt.Errorf("%s: status.conditions: %w", w, err)
	}
	obj.conditions = withConds.Status.Conditions
	return obj, nil
}

// nestedInt is the integer at path in m, or def when it is absent or not
// an integer.
func nestedInt(m map[string]any, def int64, path ...string) int64 {
	v, ok, err := unstructured.NestedInt64(m, path...)
	if !ok || err != nil {
		return def
	}
	return v
}

// state is the workload's State before the diagnosis adds its blockers
// and problems.
func (o workloadObj) state() State {
	return State{
		Workload:  o.Workload,
		Desired:   o.desired,
		Available: o.available,
		Updated:   o.updated,
		Status:    o.result.Status,
		Reason:    o.reason(),
	}
}

// reason is kstatus's account of a rollout it does not judge complete
// ("Pending termination: 1", "current: 1/2"): where kstatus is stricter
// than the replica counts, it is the only clue to the wait. A message that
// only restates the counts the progress line shows is left out.
func (o workloadObj) reason() string {
	msg := o.result.Message
	if o.result.Status == status.CurrentStatus ||
		msg == fmt.Sprintf("Available: %d/%d", o.available, o.desired) ||
		msg == fmt.Sprintf("Ready: %d/%d", o.available, o.desired) {
		return ""
	}
	return msg
}

// required lists the Secrets the pod spec cannot start without (optional
// references excluded) and its images.
func required(p corev1.PodSpec) (secrets, imgs []string) {
	seen := map[string]bool{}
	add := func(name string, optional *bool) {
		if name != "" && (optional == nil || !*optional) && !seen[name] {
			seen[name] = true
			secrets = append(secrets, name)
		}
	}
	for _, c := range allContainers(p) {
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

// allContainers is the pod spec's init containers, then its containers.
func allContainers(p corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container{}, p.InitContainers...), p.Containers...)
}
