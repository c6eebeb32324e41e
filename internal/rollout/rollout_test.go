package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// rolloutFixtures holds a directory per situation: what `kubectl get
// pods|events|persistentvolumeclaims -o json` answered in one situation.
const rolloutFixtures = "testdata"

// rolloutNow is shortly after the fixtures' last events.
var rolloutNow = time.Date(2025, 6, 2, 9, 18, 0, 0, time.UTC)

// readList reads the items of a kubectl list fixture; ok is false when the
// case has no such file.
func readList[T any](t *testing.T, dir, file string) (items []T, ok bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(rolloutFixtures, dir, file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	require.NoError(t, err, "reading %s/%s", dir, file)
	var list struct {
		Items []T `json:"items"`
	}
	require.NoError(t, json.Unmarshal(data, &list), "parsing %s/%s as kubectl -o json", dir, file)
	return list.Items, true
}

// fixtureEnv answers the diagnosis' look-ups from the case's fixtures; a
// pod must never be recreated in these cases.
func fixtureEnv(t *testing.T, dir string) podEnv {
	return podEnv{
		now: rolloutNow,
		claims: func() (map[string]string, error) {
			items, ok := readList[corev1.PersistentVolumeClaim](t, dir, "pvcs.json")
			if !ok {
				return nil, errors.New("no pvcs.json in " + dir)
			}
			out := map[string]string{}
			for _, c := range items {
				out[c.Name] = string(c.Status.Phase)
			}
			return out, nil
		},
		events: func() ([]corev1.Event, error) {
			items, _ := readList[corev1.Event](t, dir, "events.json")
			return items, nil
		},
		recreate: func(pod string) error {
			t.Errorf("pod %s recreated, but nothing in %s calls for it", pod, dir)
			return nil
		},
	}
}

// TestDiagnosePodsSaysWhyFromKubectlJSON feeds the diagnosis what kubectl
// reports in each situation that keeps a workload from becoming available
// and checks that it says Kubernetes' reason.
func TestDiagnosePodsSaysWhyFromKubectlJSON(t *testing.T) {
	const img = `ghcr.io/scaleplane/gateway:v9.9.9`
	for _, tc := range []struct {
		dir      string
		problems []string
		missing  []string
	}{
		{
			dir:      "unschedulable-cpu",
			problems: []string{"unschedulable: 0/1 nodes are available: 1 Insufficient cpu."},
		},
		{
			dir:      "failedscheduling-event",
			problems: []string{"unschedulable: 0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."},
		},
		{
			dir:      "image-pull",
			problems: []string{`container gateway: ErrImagePull: failed to pull and unpack image "` + img + `": failed to resolve reference "` + img + `": ` + img + `: not found`},
			missing:  []string{"image " + img + " is not available to the node (ErrImagePull)"},
		},
		{
			dir:      "image-pull-backoff",
			problems: []string{`container gateway: ImagePullBackOff: Back-off pulling image "` + img + `": Failed to pull image "` + img + `": rpc error: code = NotFound desc = failed to pull and unpack image "` + img + `": failed to resolve reference "` + img + `": ` + img + `: not found`},
			missing:  []string{"image " + img + " is not available to the node (ImagePullBackOff)"},
		},
		{
			dir:      "image-never-pull",
			problems: []string{`container gateway: ErrImageNeverPull: Container image "scaleplane.local/gateway:dev" is not present with pull policy of Never`},
			missing:  []string{"image scaleplane.local/gateway:dev is not available to the node (ErrImageNeverPull)"},
		},
		{
			dir:      "crash-loop",
			problems: []string{"container gateway: CrashLoopBackOff, last exit code 1 (Error): panic: REDIS_URL is not set"},
		},
		{
			dir:      "oom-loop",
			problems: []string{"container gateway: CrashLoopBackOff, last exit code 137 (OOMKilled)"},
		},
		{
			dir:      "liveness-loop",
			problems: []string{`container gateway: CrashLoopBackOff, last exit code 2 (Error); Liveness probe failed: Get "http://10.88.0.17:8080/livez": dial tcp 10.88.0.17:8080: connect: connection refused`},
		},
		{
			dir:      "init-crash-loop",
			problems: []string{"init container migrate: CrashLoopBackOff, last exit code 3 (Error): migrate: dial tcp 10.96.14.2:5432: connect: connection refused"},
		},
		{
			dir:      "readiness-failing",
			problems: []string{"container gateway is not ready: Readiness probe failed: HTTP probe failed with statuscode: 503"},
		},
		{
			dir:      "readiness-not-yet",
			problems: []string{"container gateway is running, its readiness probe has not passed yet"},
		},
		{
			dir:     "unbound-claim",
			missing: []string{"volume claims unbound (no provisioner for their class?): 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."},
		},
		{
			dir:      "failed-mount",
			problems: []string{`FailedMount: MountVolume.SetUp failed for volume "config" : configmap "gateway-config" not found`},
		},
		{
			dir:      "evicted",
			problems: []string{"pod gateway-7d9f8b6c5d-4xkzq Evicted: The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi, available: 512Mi. Container gateway was using 2Gi, request is 0, has larger consumption of ephemeral-storage."},
		},
		// Nothing known: no reason is made up.
		{dir: "nothing-known"},
		// Events of an earlier pod of the same name are not this one's.
		{dir: "stale-events"},
		// A ready pod's old probe failure is history.
		{dir: "ready-pod"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			pods, ok := readList[corev1.Pod](t, tc.dir, "pods.json")
			require.True(t, ok, "%s has a pods.json", tc.dir)
			problems, missing := diagnosePods(pods, fixtureEnv(t, tc.dir))
			assert.Equal(t, tc.problems, problems, "the reasons reported for %s", tc.dir)
			assert.Equal(t, tc.missing, missing, "what %s reports missing for good", tc.dir)
		})
	}
}

// TestDiagnosePodsWithUnreadableEventsSaysSo: a pod whose status says
// nothing, in a namespace whose events cannot be read, is reported as
// such rather than left without a word.
func TestDiagnosePodsWithUnreadableEventsSaysSo(t *testing.T) {
	pods, ok := readList[corev1.Pod](t, "nothing-known", "pods.json")
	require.True(t, ok, "nothing-known has a pods.json")
	env := fixtureEnv(t, "nothing-known")
	env.events = func() ([]corev1.Event, error) {
		return nil, errors.New(`kubectl -n sp get events: exit status 1 Error from server (Forbidden): events is forbidden`)
	}
	problems, missing := diagnosePods(pods, env)
	assert.Equal(t, []string{"events unreadable: kubectl -n sp get events: exit status 1 Error from server (Forbidden): events is forbidden"}, problems,
		"the events' error is the reason given")
	assert.Empty(t, missing, "nothing is missing for good")
}

// TestDiagnosePodsReadsEventsOnlyWhenTheStatusIsSilent: the pods' status
// says why in the user's case; the events are not read for it.
func TestDiagnosePodsReadsEventsOnlyWhenTheStatusIsSilent(t *testing.T) {
	pods, ok := readList[corev1.Pod](t, "unschedulable-cpu", "pods.json")
	require.True(t, ok, "unschedulable-cpu has a pods.json")
	env := fixtureEnv(t, "unschedulable-cpu")
	reads := 0
	env.events = func() ([]corev1.Event, error) { reads++; return nil, nil }
	diagnosePods(pods, env)
	assert.Equal(t, 0, reads, "events read although the scheduler's condition says why")
}

// TestDiagnoseWorkloadWithoutPods: a controller that cannot create
// pods says why in a condition (Deployment) or an event (StatefulSet).
func TestDiagnoseWorkloadWithoutPods(t *testing.T) {
	dep := mustParseWorkload(t, Workload{"Deployment", "sp", "gateway"}, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"gateway","uid":"d1"},"status":{"conditions":[
		{"type":"Available","status":"False","reason":"MinimumReplicasUnavailable","message":"Deployment does not have minimum availability."},
		{"type":"ReplicaFailure","status":"True","reason":"FailedCreate","message":"pods \"gateway-7d9f8b6c5d-\" is forbidden: exceeded quota: compute, requested: requests.cpu=1500m, used: requests.cpu=3, limited: requests.cpu=4"}]}}`)
	assert.Equal(t, []string{
		`ReplicaFailure: pods "gateway-7d9f8b6c5d-" is forbidden: exceeded quota: compute, requested: requests.cpu=1500m, used: requests.cpu=3, limited: requests.cpu=4`,
		"no pod exists yet",
	}, workloadProblems(dep, nil), "the Deployment's ReplicaFailure condition")

	sts := mustParseWorkload(t, Workload{"StatefulSet", "sp", "postgres"}, `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"postgres","uid":"s1"}}`)
	var events []corev1.Event
	require.NoError(t, json.Unmarshal([]byte(`[
		{"involvedObject":{"kind":"StatefulSet","name":"postgres","uid":"s1"},"type":"Normal","reason":"SuccessfulCreate","message":"create Claim data-postgres-0 Pod postgres-0 in StatefulSet postgres success","lastTimestamp":"2025-06-02T09:14:05Z"},
		{"involvedObject":{"kind":"StatefulSet","name":"postgres","uid":"s1"},"type":"Warning","reason":"FailedCreate","message":"create Pod postgres-0 in StatefulSet postgres failed error: pods \"postgres-0\" is forbidden: error looking up service account sp/postgres: serviceaccount \"postgres\" not found","lastTimestamp":"2025-06-02T09:15:05Z"}]`), &events),
		"events JSON")
	assert.Equal(t, []string{
		`FailedCreate: create Pod postgres-0 in StatefulSet postgres failed error: pods "postgres-0" is forbidden: error looking up service account sp/postgres: serviceaccount "postgres" not found`,
		"no pod exists yet",
	}, workloadProblems(sts, func() ([]corev1.Event, error) { return events, nil }), "the StatefulSet's FailedCreate event")

	assert.Equal(t, []string{"no pod exists yet"}, workloadProblems(sts, func() ([]corev1.Event, error) { return nil, nil }),
		"no pods and no reason: says so")
}

// mustParseWorkload decodes data as kubectl's JSON of w, as Inspect does.
func mustParseWorkload(t *testing.T, w Workload, data string) workloadObj {
	t.Helper()
	var u unstructured.Unstructured
	require.NoError(t, json.Unmarshal([]byte(data), &u), "%s JSON", w)
	obj, err := parseWorkload(w, &u)
	require.NoError(t, err, "parsing %s", w)
	return obj
}

// TestDiagnoseSaysWhenNothingIsKnown: a failed wait never leaves
// the reason empty.
func TestDiagnoseSaysWhenNothingIsKnown(t *testing.T) {
	assert.Equal(t, "no pod reports a reason yet", State{}.why(), "no problems known")
	assert.Equal(t, "a; b", State{Problems: []string{"a", "b"}}.why(), "the problems, joined")
}

// fakeRolloutKubectl writes a kubectl that answers from the fixture
// directory dir: the Deployment from deployment (a path), pods and events
// from dir's files, no Secrets and no Services; a read it has no answer
// for fails, as a forbidden one would.
func fakeRolloutKubectl(t *testing.T, dir, deployment string) string {
	t.Helper()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		require.NoError(t, err, "absolute path of %s", p)
		return a
	}
	answer := func(file string) string {
		p := abs(filepath.Join(rolloutFixtures, dir, file))
		if _, err := os.Stat(p); err != nil {
			return "echo 'Error from server (Forbidden)' >&2; exit 1"
		}
		return "cat '" + p + "'"
	}
	script := "#!/bin/sh\ncase \"$*\" in\n" +
		"*' get deployment gateway '*) cat '" + abs(deployment) + "' ;;\n" +
		"*' get pods -l app=gateway '*) " + answer("pods.json") + " ;;\n" +
		"*' get events '*) " + answer("events.json") + " ;;\n" +
		"*' get persistentvolumeclaims '*) " + answer("pvcs.json") + " ;;\n" +
		"*' get secrets '*|*' get services '*) echo '{\"apiVersion\":\"v1\",\"items\":[],\"kind\":\"List\"}' ;;\n" +
		"*) echo \"unexpected: $*\" >&2; exit 1 ;;\nesac\n"
	kubectl := filepath.Join(t.TempDir(), "kubectl")
	require.NoError(t, os.WriteFile(kubectl, []byte(script), 0o755), "write the fake kubectl")
	return kubectl
}

// TestWaitThatFailsSaysWhy is the user's case: a Deployment whose pods stay
// Pending because the node has too little cpu. The failed wait names the
// scheduler's reason, and says so when no reason is known.
func TestWaitThatFailsSaysWhy(t *testing.T) {
	deployment := filepath.Join(rolloutFixtures, "unschedulable-cpu", "deployment.json")
	for _, tc := range []struct {
		dir, want string
	}{
		{"unschedulable-cpu", "not available after 0s: Deployment sp/gateway (0/2 available; unschedulable: 0/1 nodes are available: 1 Insufficient cpu.)"},
		{"nothing-known", "not available after 0s: Deployment sp/gateway (0/2 available; no pod reports a reason yet)"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			r := Checker{Kubectl: fakeRolloutKubectl(t, tc.dir, deployment), Kubeconfig: "/dev/null"}
			states, err := r.Wait(context.Background(), []Workload{{Kind: "Deployment", Namespace: "sp", Name: "gateway"}}, 0, io.Discard)
			require.Error(t, err, "the wait fails: no pod is available")
			assert.Equal(t, tc.want, err.Error(), "the failed wait says why")
			require.Len(t, states, 1, "the state of the one workload")
			assert.True(t, states[0].Expected(), "too little cpu now is no missing prerequisite: %v", states[0].Blockers)
		})
	}
}

// TestRequiredSecretsSkipOptionalReferences: a Secret the pod may start
// without is no blocker.
func TestRequiredSecretsSkipOptionalReferences(t *testing.T) {
	var p corev1.PodSpec
	require.NoError(t, yaml.Unmarshal([]byte(`
containers:
- image: scaleplane.local/gateway:dev
  env:
  - name: A
    valueFrom: {secretKeyRef: {name: redis-auth, key: password}}
  - name: B
    valueFrom: {secretKeyRef: {name: maybe, key: x, optional: true}}
  envFrom:
  - secretRef: {name: postgres-app}
volumes:
- name: v
  secret: {secretName: tls}
`), &p), "pod spec")
	secrets, imgs := required(p)
	assert.Equal(t, []string{"redis-auth", "postgres-app", "tls"}, secrets, "required secrets, optional ones excluded")
	assert.Equal(t, []string{"scaleplane.local/gateway:dev"}, imgs, "images of the pod")
}

// TestAllBoundOnlyWhenEveryClaimIsBound: a pod with no claims, or one
// claim unbound or missing, is not waiting on the scheduler's retry.
func TestAllBoundOnlyWhenEveryClaimIsBound(t *testing.T) {
	phases := map[string]string{"data-0": "Bound", "logs-0": "Pending"}
	for _, tc := range []struct {
		claims []string
		want   bool
	}{
		{[]string{"data-0"}, true},
		{[]string{"data-0", "logs-0"}, false},
		{[]string{"data-0", "missing"}, false},
		{nil, false},
	} {
		if got := allBound(tc.claims, phases); got != tc.want {
			t.Errorf("allBound(%v) = %v, want %v", tc.claims, got, tc.want)
		}
	}
}

// fakeKubectl writes a kubectl that answers `get pods` with one pod left
// unschedulable on claim data-0 since podSince, `get persistentvolumeclaims`
// with that claim in phase (or fails when phase is empty), and records a
// `delete pod` in the returned file.
func fakeKubectl(t *testing.T, podSince time.Time, phase string) (kubectl, deleted string) {
	t.Helper()
	dir := t.TempDir()
	deleted = filepath.Join(dir, "deleted")
	pod := fmt.Sprintf(`{"items":[{"metadata":{"name":"prometheus-0"},"spec":{"volumes":[{"persistentVolumeClaim":{"claimName":"data-0"}}]},`+
		`"status":{"conditions":[{"type":"PodScheduled","status":"False","lastTransitionTime":%q,`+
		`"message":"0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."}]}}]}`, podSince.UTC().Format(time.RFC3339))
	claims := `{"items":[{"metadata":{"name":"data-0"},"status":{"phase":"` + phase + `"}}]}`
	claimsCmd := "echo '" + claims + "'"
	if phase == "" {
		claimsCmd = "echo 'forbidden' >&2; exit 1"
	}
	script := "#!/bin/sh\ncase \"$*\" in\n" +
		"*'get pods'*) echo '" + pod + "' ;;\n" +
		"*'get persistentvolumeclaims'*) " + claimsCmd + " ;;\n" +
		"*'delete pod'*) echo \"$*\" > " + deleted + " ;;\n" +
		"*) exit 1 ;;\nesac\n"
	kubectl = filepath.Join(dir, "kubectl")
	require.NoError(t, os.WriteFile(kubectl, []byte(script), 0o755), "write the fake kubectl")
	return kubectl, deleted
}

// TestUnschedulablePodOnBoundClaimsIsRecreatedOnlyAfterAGrace: a pod whose
// claims were bound after the scheduler's last try is left to the
// scheduler for schedulerRetryGrace, then recreated; unbound claims are
// reported missing; claims that cannot be read are a passing problem, not
// a failed wait and not a missing provisioner.
func TestUnschedulablePodOnBoundClaimsIsRecreatedOnlyAfterAGrace(t *testing.T) {
	for _, tc := range []struct {
		name        string
		since       time.Duration
		phase       string
		recreated   bool
		problem     string
		missingSome bool
	}{
		{"bound just now", 5 * time.Second, "Bound", false, "waits for the scheduler to retry", false},
		{"bound long ago", 2 * time.Minute, "Bound", true, "recreated", false},
		{"unbound", 2 * time.Minute, "Pending", false, "", true},
		{"claims unreadable", 2 * time.Minute, "", false, "volume claims unreadable", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kubectl, deleted := fakeKubectl(t, time.Now().Add(-tc.since), tc.phase)
			r := Checker{Kubectl: kubectl, Kubeconfig: "/dev/null"}
			problems, missing, err := r.podProblems(context.Background(), "sp", map[string]string{"app": "prometheus"})
			require.NoError(t, err, "inspecting the pods never fails the wait")
			_, statErr := os.Stat(deleted)
			assert.Equal(t, tc.recreated, statErr == nil, "whether the pod was deleted")
			if tc.problem != "" {
				require.Len(t, problems, 1, "one problem reported")
				assert.Contains(t, problems[0], tc.problem, "the problem says what happens to the pod")
			}
			assert.Equal(t, tc.missingSome, len(missing) > 0, "only unbound claims are reported missing: %v", missing)
		})
	}
}

// deploymentJSON is a Deployment of 2 replicas whose metadata and status
// the cases of TestDoneIsKstatusVerdict vary.
func deploymentJSON(generation, observed, statusReplicas, updated, ready, available int, progressing string) string {
	return fmt.Sprintf(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"gateway","namespace":"sp","generation":%d},
		"spec":{"replicas":2,"progressDeadlineSeconds":600,"selector":{"matchLabels":{"app":"gateway"}},"template":{"metadata":{"labels":{"app":"gateway"}},"spec":{"containers":[{"name":"gateway","image":"scaleplane.local/gateway:dev"}]}}},
		"status":{"observedGeneration":%d,"replicas":%d,"updatedReplicas":%d,"readyReplicas":%d,"availableReplicas":%d,"conditions":[
			{"type":"Available","status":"True","reason":"MinimumReplicasAvailable"},
			{"type":"Progressing","status":"True","reason":%q,"message":"ReplicaSet \"gateway-7d9f8b6c5d\" has successfully progressed."}]}}`,
		generation, observed, statusReplicas, updated, ready, available, progressing)
}

// TestDoneIsKstatusVerdict: a workload is rolled out when kstatus says
// Current, which asks more than the replica counts: the controller has seen
// the latest spec, no old pod is left, and a Deployment's new ReplicaSet is
// available; kstatus's message says which (the replica counts aside). A
// Deployment scaled to zero is rolled out (the hand-made check waited for
// it until the timeout).
func TestDoneIsKstatusVerdict(t *testing.T) {
	for _, tc := range []struct {
		name   string
		json   string
		done   bool
		reason string
	}{
		{"rolled out", deploymentJSON(2, 2, 2, 2, 2, 2, "NewReplicaSetAvailable"), true, ""},
		{"latest spec not yet observed", deploymentJSON(3, 2, 2, 2, 2, 2, "NewReplicaSetAvailable"), false, "Deployment generation is 3, but latest observed generation is 2"},
		{"an old pod still terminating", deploymentJSON(2, 2, 3, 2, 2, 2, "NewReplicaSetAvailable"), false, "Pending termination: 1"},
		{"new ReplicaSet still progressing", deploymentJSON(2, 2, 2, 2, 2, 2, "ReplicaSetUpdated"), false, "ReplicaSet not Available"},
		{"one replica not ready", deploymentJSON(2, 2, 2, 2, 1, 1, "NewReplicaSetAvailable"), false, ""},
		{"scaled to zero: nothing to wait for", strings.Replace(deploymentJSON(2, 2, 0, 0, 0, 0, "NewReplicaSetAvailable"), `"spec":{"replicas":2,`, `"spec":{"replicas":0,`, 1), true, ""},
		{"StatefulSet with every replica ready on the update revision", `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"redis","namespace":"sp","generation":1},
			"spec":{"replicas":1},"status":{"observedGeneration":1,"replicas":1,"readyReplicas":1,"currentReplicas":1,"updatedReplicas":1,"currentRevision":"redis-1","updateRevision":"redis-1"}}`, true, ""},
		{"StatefulSet mid-update", `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"redis","namespace":"sp","generation":2},
			"spec":{"replicas":1},"status":{"observedGeneration":2,"replicas":1,"readyReplicas":1,"currentReplicas":1,"updatedReplicas":1,"currentRevision":"redis-1","updateRevision":"redis-2"}}`, false, "Waiting for updated revision to match current"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var u unstructured.Unstructured
			require.NoError(t, json.Unmarshal([]byte(tc.json), &u), "workload JSON")
			obj, err := parseWorkload(Workload{u.GetKind(), "sp", u.GetName()}, &u)
			require.NoError(t, err, "kstatus computes a status")
			st := obj.state()
			assert.Equal(t, tc.done, st.Done(), "rolled out? kstatus says %s: %s", st.Status, obj.result.Message)
			assert.Equal(t, tc.reason, st.Reason, "the reason shown while no pod gives one (none that restates the counts)")
		})
	}
	obj := mustParseWorkload(t, Workload{"Deployment", "sp", "gateway"}, deploymentJSON(3, 2, 2, 2, 2, 2, "NewReplicaSetAvailable"))
	assert.Equal(t, 0, obj.state().Updated, "a spec the controller has not seen has no updated replicas yet")
}

// TestWaitOnAStalledDeploymentSaysTheControllerGaveUp: past its progress
// deadline a Deployment is Failed for kstatus; the failed wait says so
// after the pods' own reasons.
func TestWaitOnAStalledDeploymentSaysTheControllerGaveUp(t *testing.T) {
	dep := deploymentJSON(1, 1, 2, 2, 0, 0, "ProgressDeadlineExceeded")
	dep = strings.NewReplacer(
		`has successfully progressed.`, `has timed out progressing.`,
		`"status":"True","reason":"Min`, `"status":"False","reason":"Min`,
		`"status":"True","reason":"ProgressDeadlineExceeded"`, `"status":"False","reason":"ProgressDeadlineExceeded"`,
	).Replace(dep)
	file := filepath.Join(t.TempDir(), "deployment.json")
	require.NoError(t, os.WriteFile(file, []byte(dep), 0o644), "write the Deployment")
	r := Checker{Kubectl: fakeRolloutKubectl(t, "unschedulable-cpu", file), Kubeconfig: "/dev/null"}
	states, err := r.Wait(context.Background(), []Workload{{Kind: "Deployment", Namespace: "sp", Name: "gateway"}}, 0, io.Discard)
	require.Error(t, err, "the wait fails: no pod is available")
	assert.Equal(t, `not available after 0s: Deployment sp/gateway (0/2 available; unschedulable: 0/1 nodes are available: 1 Insufficient cpu.; Progress deadline exceeded: ReplicaSet "gateway-7d9f8b6c5d" has timed out progressing.)`,
		err.Error(), "the failed wait names the pods' reason, then kstatus's")
	require.Len(t, states, 1, "the state of the one workload")
	assert.Equal(t, status.FailedStatus, states[0].Status, "kstatus's verdict on a Deployment past its deadline")
}

// podProblems is what Inspect does for one workload's pods: their waiting
// reasons, and what they are missing for good (see diagnosePods).
func (r Checker) podProblems(ctx context.Context, ns string, sel map[string]string) (problems, missing []string, err error) {
	pods, err := r.pods(ctx, ns, sel)
	if err != nil {
		return nil, nil, err
	}
	problems, missing = diagnosePods(pods, r.env(ctx, newLook(), ns))
	return problems, missing, nil
}
