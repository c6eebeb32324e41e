package cluster

import (
	"testing"

	"github.com/scaleplane/scaleplane/internal/preflight"
)

// TestPreflightKnowsTheNodesPorts keeps internal/preflight's copy of the
// node's ports (it cannot import this package and still build in seconds)
// equal to the ports the node listens on.
func TestPreflightKnowsTheNodesPorts(t *testing.T) {
	want := map[int]bool{
		APIServerPort: true, EtcdClientPort: true, EtcdPeerPort: true,
		KubeletPort: true, KubeletHealthzPort: true, KubeProxyHealthzPort: true,
		KubeProxyMetricsPort: true, ControllerManagerPort: true, SchedulerPort: true,
	}
	got := map[int]bool{}
	for _, p := range preflight.NodePorts {
		got[p.Number] = true
		if !want[p.Number] {
			t.Errorf("preflight checks port %d (%s), which the node does not use", p.Number, p.Owner)
		}
	}
	for p := range want {
		if !got[p] {
			t.Errorf("the node listens on port %d, which preflight does not check", p)
		}
	}
}
