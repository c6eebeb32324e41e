package cluster

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// provisionerSource is the volume provisioner (provisioner/main.go), built
// by the go command into the cache the first time the cluster starts.
//
//go:embed provisioner/main.go
var provisionerSource []byte

// StorageClass is the cluster's default StorageClass: each claim gets a
// directory of its own on the node (see provisioner/main.go for why not
// the controller manager's hostPath provisioner).
const StorageClass = "scaleplane-local"

// provisionerName is the provisioner's component name, binary and user.
const provisionerName = "volume-provisioner"

// provisionerUser is the identity of the provisioner's client certificate;
// the storage addon grants it only what provisioning needs.
const provisionerUser = "scaleplane:volume-provisioner"

// buildProvisioner returns the provisioner binary, building it if needed.
func buildProvisioner(ctx context.Context) (string, error) {
	bin, err := toolchain.StdlibMain(ctx, provisionerName, provisionerSource)
	if err != nil {
		return "", fmt.Errorf("building the volume provisioner: %w", err)
	}
	return bin, nil
}

// storageManifest is the default StorageClass and the provisioner's RBAC:
// volumes (cluster-scoped) it creates and deletes, claims and classes it
// reads, events nowhere.
func storageManifest() string {
	return `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ` + StorageClass + `
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: scaleplane.dev/hostpath
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: scaleplane:volume-provisioner
rules:
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, create, delete]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: scaleplane:volume-provisioner
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: scaleplane:volume-provisioner
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: ` + provisionerUser + `
`
}
