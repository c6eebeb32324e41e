package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/retry"
	test_structure "github.com/gruntwork-io/terratest/modules/test-structure"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/cluster"
)

const (
	// volumeBindRetries x volumePollInterval bounds the wait for the
	// provisioner to bind a claim (it polls every second).
	volumeBindRetries  = 30
	volumePollInterval = time.Second
	// volumePodRetries bounds the wait for the writer pod to be ready.
	volumePodRetries = 60
	// volumeReleaseRetries bounds the wait for the volume and its
	// directory to go after the claim is deleted.
	volumeReleaseRetries = 30
)

// TestDynamicVolumeForARestrictedPod deploys, in a namespace that enforces
// the restricted Pod Security profile, a claim without a class (so the
// cluster's default scaleplane-local class applies) and a non-root pod that
// writes a file into it before it turns ready. It asserts the claim is
// bound to a volume the provisioner made, the file is on the node under
// the volume's directory, and deleting the claim removes the volume and
// its directory.
func TestDynamicVolumeForARestrictedPod(t *testing.T) {
	s := needNode(t)
	ns := uniqueName("it-volume")
	o := s.kubectlOptions(ns)
	ctx := t.Context()
	workDir := t.TempDir()
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
  labels:
    pod-security.kubernetes.io/enforce: restricted
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: %[1]s
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 16Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: writer
  namespace: %[1]s
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: writer
    image: %[2]s
    imagePullPolicy: Never
    env:
    - {name: VERSION, value: written-by-the-pod}
    - {name: WRITE_FILE, value: /data/marker}
    readinessProbe:
      httpGet: {path: /readyz, port: 8080}
      periodSeconds: 1
    resources:
      requests: {cpu: 10m, memory: 16Mi}
      limits: {memory: 64Mi}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: ["ALL"]}
    volumeMounts:
    - {name: data, mountPath: /data}
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
`, ns, s.burner)

	// The namespace takes the pod and the claim with it (validate deletes
	// them itself); the provisioner then removes the released volume.
	defer test_structure.RunTestStage(t, "teardown", func() {
		_, err := k8s.RunKubectlAndGetOutputContextE(t, ctx, o, "delete", "namespace", ns, "--ignore-not-found", "--wait=false")
		assert.NoError(t, err, "delete namespace %s", ns)
	})
	test_structure.RunTestStage(t, "deploy", func() {
		test_structure.SaveString(t, workDir, "namespace", ns)
		k8s.KubectlApplyFromStringContext(t, ctx, o, manifest)
	})
	test_structure.RunTestStage(t, "validate", func() {
		volume, err := retry.DoWithRetryContextE(t, ctx, "the claim is bound", volumeBindRetries, volumePollInterval, func() (string, error) {
			out, err := k8s.RunKubectlAndGetOutputContextE(t, ctx, o, "get", "pvc", "data", "-o", "jsonpath={.status.phase} {.spec.volumeName} {.spec.storageClassName}")
			if err != nil {
				return "", err
			}
			f := strings.Fields(out)
			if len(f) != 3 || f[0] != "Bound" {
				return "", fmt.Errorf("claim: %q", out)
			}
			if f[2] != cluster.StorageClass {
				return "", retry.FatalError{Underlying: fmt.Errorf("claim took class %q, want the default %q", f[2], cluster.StorageClass)}
			}
			return f[1], nil
		})
		require.NoError(t, err, "the provisioner binds a claim of the default class")
		path, err := k8s.RunKubectlAndGetOutputContextE(t, ctx, o, "get", "pv", volume, "-o", "jsonpath={.spec.hostPath.path}")
		require.NoError(t, err, "read the volume's path")
		require.Equal(t, s.node.StateDir, filepath.Dir(filepath.Dir(path)), "the volume lives under the cluster's state (removed with --purge)")

		k8s.WaitUntilPodAvailableContext(t, ctx, o, "writer", volumePodRetries, volumePollInterval)
		got, err := os.ReadFile(filepath.Join(path, "marker"))
		require.NoError(t, err, "the non-root pod's file is on the node")
		assert.Equal(t, "written-by-the-pod\n", string(got), "the file holds what the pod wrote")

		k8s.RunKubectlContext(t, ctx, o, "delete", "pod", "writer", "--wait=true")
		k8s.RunKubectlContext(t, ctx, o, "delete", "pvc", "data", "--wait=true")
		_, err = retry.DoWithRetryContextE(t, ctx, "the volume and its directory go", volumeReleaseRetries, volumePollInterval, func() (string, error) {
			if _, err := k8s.RunKubectlAndGetOutputContextE(t, ctx, o, "get", "pv", volume); err == nil {
				return "", fmt.Errorf("volume %s still there", volume)
			}
			if _, err := os.Stat(path); err == nil {
				return "", fmt.Errorf("directory %s still there", path)
			}
			return "", nil
		})
		assert.NoError(t, err, "deleting the claim deletes its volume and directory")
	})
}
