package imageplan

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/images/imagetest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/components/kafka"
	"github.com/scaleplane/scaleplane/internal/images"
)

// kafkaStartTimeout bounds a cold JVM start plus the storage format in a
// chroot on a loaded two-core machine.
const (
	kafkaStartTimeout = 90 * time.Second
	kafkaPollInterval = 500 * time.Millisecond
)

// TestKafkaImageRunsTheRenderedNode builds the Kafka image the local
// stack's plan asks for (the builder's own tests check its layers) and runs
// what the kafka component's pods run on it — the component's rendered
// start script and one-node server.properties, as the uid the plan passed,
// with the image's environment, the pod's HOSTNAME and cluster id — then
// produces a record with acks=all, stops the node with SIGTERM, starts it
// again on the same data directory (the script's format must skip a
// formatted one) and reads the record back.
func TestKafkaImageRunsTheRenderedNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("building Debian images needs root (debootstrap, chroot, numeric owners); CI runs as root")
	}
	opts := images.DebianOptions{Log: imagetest.Log{T: t}}
	if _, cached, err := images.DebianBaseDir(opts); err != nil || !cached {
		require.NoError(t, err, "cache dir")
		if testing.Short() {
			t.Skip("the Debian base is not cached and making it downloads the archive; run without -short once")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	plan, err := For("../..", stackEnv(t, "local"), nil)
	require.NoError(t, err, "planning local")
	require.NotNil(t, plan.Kafka, "local runs its own Kafka image")
	img, err := images.KafkaImage(ctx, opts, plan.Kafka.Spec)
	require.NoError(t, err, "building the Kafka image")
	cf, err := img.ConfigFile()
	require.NoError(t, err, "config")
	uid := strconv.Itoa(kafka.UID)
	assert.Equal(t, uid+":"+uid, cf.Config.User, "runs as the uid the component's pods use")

	for _, port := range []int{kafka.Port, kafka.ControllerPort} {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		require.NoError(t, err, "the node listens on the component's fixed port %d, which must be free here", port)
		_ = l.Close()
	}
	root := imagetest.Extract(t, img)
	node := kafka.Node{Name: "kafka", Namespace: "it", Nodes: 1}
	props := kafka.RenderProperties(node, kafka.Settings{ReplicationFactor: 1, MinInSyncReplicas: 1, NumPartitions: 3, RetentionHours: 1})
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc/kafka"), 0o755), "config dir")
	for name, body := range map[string]string{"server.properties": props, kafka.StartScriptName: kafka.RenderStartScript(node)} {
		require.NoError(t, os.WriteFile(filepath.Join(root, "etc/kafka", name), []byte(body), 0o644), "writing %s", name)
	}
	// The pod's DNS name of itself: the controller votes for itself there.
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("127.0.0.1 localhost "+node.Host(0)+"\n"), 0o644), "hosts")
	mountForJVM(t, root)

	run := func() *imagetest.Proc {
		args := append([]string{"/usr/bin/env", "-i"}, cf.Config.Env...)
		args = append(args, "HOSTNAME=kafka-0", "KAFKA_CLUSTER_ID="+kafka.ClusterID(node.Namespace, node.Name), "KAFKA_HEAP_OPTS=-Xms256m -Xmx256m",
			"sh", "/etc/kafka/"+kafka.StartScriptName)
		return imagetest.Start(t, root, uid+":"+uid, args...)
	}
	client := func() *kgo.Client {
		// The node advertises its in-cluster name: every address maps to loopback.
		dial := func(ctx context.Context, network, host string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(host)
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		}
		c, err := kgo.NewClient(kgo.SeedBrokers(net.JoinHostPort("127.0.0.1", strconv.Itoa(kafka.Port))), kgo.Dialer(dial),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ConsumeTopics("registrations"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		require.NoError(t, err, "kafka client")
		t.Cleanup(c.Close)
		return c
	}

	srv := run()
	c := client()
	adm := kadm.NewClient(c)
	var lastErr error
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := adm.CreateTopic(ctx, 3, 1, nil, "registrations")
		if err == nil {
			err = res.Err
		}
		lastErr = err
		return err == nil
	}, kafkaStartTimeout, kafkaPollInterval, "the node starts and creates a topic (last error: %v)\n%s", lastErr, srv.Output())
	pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.ProduceSync(pctx, &kgo.Record{Topic: "registrations", Value: []byte("ada")}).FirstErr(), "produce with acks=all\n%s", srv.Output())
	c.Close()
	srv.Stop(t)

	srv = run()
	c = client()
	var got []string
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		return len(got) > 0
	}, kafkaStartTimeout, kafkaPollInterval, "the restarted node serves the record written before the restart\n%s", srv.Output())
	assert.Equal(t, []string{"ada"}, got, "the record survived the restart exactly once")
	srv.Stop(t)
}

// mountForJVM gives the extracted root what a container has and the JVM
// needs: /proc (it reads its limits there) and the /dev/null, /dev/random
// and /dev/urandom device nodes (SecureRandom), made as nodes of the
// temporary root rather than a bind mount of the host's /dev, so removing
// the directory can never reach the host's devices.
func mountForJVM(t *testing.T, root string) {
	t.Helper()
	dev := filepath.Join(root, "dev")
	require.NoError(t, os.MkdirAll(dev, 0o755), "dev dir")
	for name, minor := range map[string]int{"null": 3, "zero": 5, "random": 8, "urandom": 9} {
		p := filepath.Join(dev, name)
		_ = os.Remove(p)
		require.NoError(t, syscall.Mknod(p, syscall.S_IFCHR|0o666, 1<<8|minor), "mknod %s", p)
		require.NoError(t, os.Chmod(p, 0o666), "chmod %s", p)
	}
	proc := filepath.Join(root, "proc")
	require.NoError(t, os.MkdirAll(proc, 0o755), "proc dir")
	out, err := exec.Command("mount", "-t", "proc", "proc", proc).CombinedOutput()
	require.NoError(t, err, "mount proc: %s", out)
	t.Cleanup(func() { _ = exec.Command("umount", proc).Run() })
}
