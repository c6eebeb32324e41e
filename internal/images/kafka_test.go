package images

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
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/components/kafka"
)

// kafkaStartTimeout bounds a cold JVM start plus the storage format in a
// chroot on a loaded two-core machine.
const (
	kafkaStartTimeout = 90 * time.Second
	kafkaPollInterval = 500 * time.Millisecond
)

// TestKafkaImageRunsTheRenderedNode builds the Kafka image, extracts it and
// runs what the kafka component's pods run — its rendered start script and
// one-node server.properties, as the component's uid, with the pod's
// HOSTNAME and cluster id — then produces a record with acks=all, stops the
// node with SIGTERM, starts it again on the same data directory (the
// script's format must skip a formatted one) and reads the record back.
func TestKafkaImageRunsTheRenderedNode(t *testing.T) {
	ctx, opts := debianOrSkip(t)
	start := time.Now()
	img, err := KafkaImage(ctx, opts)
	require.NoError(t, err, "building the Kafka image")
	layers, err := img.Layers()
	require.NoError(t, err, "layers")
	var total int64
	for _, l := range layers {
		n, err := l.Size()
		require.NoError(t, err, "layer size")
		total += n
	}
	top, err := layers[len(layers)-1].Size()
	require.NoError(t, err, "kafka layer size")
	t.Logf("kafka image: %d layers, %s compressed (kafka layer %s), %s", len(layers), mib(total), mib(top), time.Since(start).Round(time.Millisecond))
	require.Len(t, layers, 3, "base, JRE, Kafka")
	jre, err := DebianServer(ctx, opts, mustSpec(t, "jre"))
	require.NoError(t, err, "JRE image")
	jreLayers, err := jre.Image.Layers()
	require.NoError(t, err, "JRE layers")
	for i := range jreLayers {
		a, _ := jreLayers[i].Digest()
		b, _ := layers[i].Digest()
		assert.Equal(t, a, b, "layer %d is the JRE image's, stored once on the node", i)
	}
	again, err := KafkaImage(ctx, opts)
	require.NoError(t, err, "building the Kafka image again")
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	assert.Equal(t, d1, d2, "the Kafka image is reproducible")
	cf, err := img.ConfigFile()
	require.NoError(t, err, "config")
	uid := strconv.Itoa(kafka.UID)
	assert.Equal(t, uid+":"+uid, cf.Config.User, "runs as the uid the component's pods use")
	files := imageFiles(t, img)
	for _, f := range []string{"opt/kafka/bin/kafka-server-start.sh", "opt/kafka/bin/kafka-storage.sh", "opt/kafka/libs/kafka_2.13-4.4.0.jar"} {
		assert.True(t, files[f], "the image has %s", f)
	}

	for _, port := range []int{kafka.Port, kafka.ControllerPort} {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		require.NoError(t, err, "the node listens on the component's fixed port %d, which must be free here", port)
		_ = l.Close()
	}
	root := extract(t, img)
	node := kafka.Node{Name: "kafka", Namespace: "it", Nodes: 1}
	props := kafka.RenderProperties(node, kafka.Settings{ReplicationFactor: 1, MinInSyncReplicas: 1, NumPartitions: 3, RetentionHours: 1})
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc/kafka"), 0o755), "config dir")
	for name, body := range map[string]string{"server.properties": props, kafka.StartScriptName: kafka.RenderStartScript(node)} {
		require.NoError(t, os.WriteFile(filepath.Join(root, "etc/kafka", name), []byte(body), 0o644), "writing %s", name)
	}
	// The pod's DNS name of itself: the controller votes for itself there.
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("127.0.0.1 localhost "+node.Host(0)+"\n"), 0o644), "hosts")
	mountForJVM(t, root)

	run := func() *chrootProc {
		return startChroot(t, root, uid+":"+uid, "/usr/bin/env", "-i", "PATH="+debianPath, "HOSTNAME=kafka-0",
			"KAFKA_CLUSTER_ID="+kafka.ClusterID(node.Namespace, node.Name), "KAFKA_HEAP_OPTS=-Xms256m -Xmx256m",
			"sh", "/etc/kafka/"+kafka.StartScriptName)
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
	}, kafkaStartTimeout, kafkaPollInterval, "the node starts and creates a topic (last error: %v)\n%s", lastErr, srv.out)
	pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.ProduceSync(pctx, &kgo.Record{Topic: "registrations", Value: []byte("ada")}).FirstErr(), "produce with acks=all\n%s", srv.out)
	c.Close()
	srv.stop(t)

	srv = run()
	c = client()
	var got []string
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		return len(got) > 0
	}, kafkaStartTimeout, kafkaPollInterval, "the restarted node serves the record written before the restart\n%s", srv.out)
	assert.Equal(t, []string{"ada"}, got, "the record survived the restart exactly once")
	srv.stop(t)
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

func mustSpec(t *testing.T, name string) DebianSpec {
	t.Helper()
	s, ok := DebianServerSpec(name)
	require.True(t, ok, "spec %s", name)
	return s
}
