package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/scaleplane/scaleplane/internal/toolchain"
)

// KafkaHome is where the Kafka image keeps its jars, launchers and logging
// config: the apache/kafka image's layout, so the kafka component's start
// script runs unchanged on either image.
const KafkaHome = "/opt/kafka"

// kafkaServerStart and kafkaStorage are the two launchers the component's
// start script calls. The upstream scripts of those names go through
// kafka-run-class.sh, which needs bash and writes log files under
// $KAFKA_HOME/logs; these call java directly, log to stdout only (the pods
// have a read-only root filesystem) and honour the same KAFKA_HEAP_OPTS
// and KAFKA_JVM_PERFORMANCE_OPTS variables.
const kafkaServerStart = `#!/bin/sh
# kafka-server-start.sh of scaleplane's Kafka image: runs a KRaft server
# with the properties file given.
exec java ${KAFKA_HEAP_OPTS:--Xmx1g -Xms1g} \
  ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent} \
  -XX:+ExitOnOutOfMemoryError -XX:-UsePerfData -Djava.awt.headless=true \
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties \
  -cp '/opt/kafka/libs/*' kafka.Kafka "$@"
`

// kafkaStorage formats a node's log directory: a short-lived JVM, so a
// small heap and the serial collector.
const kafkaStorage = `#!/bin/sh
# kafka-storage.sh of scaleplane's Kafka image: kafka.tools.StorageTool.
exec java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties \
  -cp '/opt/kafka/libs/*' kafka.tools.StorageTool "$@"
`

// KafkaSpec is what the pods that run the Kafka image expect of it, which
// the caller takes from the component that declares them.
type KafkaSpec struct {
	// UID is the uid (and gid) the pods run as: the image's kafka user and
	// the owner of its data directory.
	UID int
	// Port is the broker port the image documents as exposed.
	Port int
}

// KafkaImage makes the in-cluster Kafka image: the Debian base and JRE
// layers (shared with the other server images), and one layer with the
// Kafka jars from Maven Central (the cached distribution the real-server
// tests run), the two launchers, the logging config and a kafka user whose
// uid is spec.UID, the one the pods run as.
func KafkaImage(ctx context.Context, opts DebianOptions, spec KafkaSpec) (v1.Image, error) {
	jreSpec, _ := DebianServerSpec("jre")
	jre, err := DebianServer(ctx, opts, jreSpec)
	if err != nil {
		return nil, err
	}
	dist, err := toolchain.Kafka(ctx)
	if err != nil {
		return nil, err
	}
	passwd, err := os.ReadFile(filepath.Join(jre.Base.Rootfs, "etc", "passwd"))
	if err != nil {
		return nil, fmt.Errorf("base passwd: %w", err)
	}
	group, err := os.ReadFile(filepath.Join(jre.Base.Rootfs, "etc", "group"))
	if err != nil {
		return nil, fmt.Errorf("base group: %w", err)
	}
	layerTar, err := kafkaLayer(dist.LibDir, passwd, group, spec.UID)
	if err != nil {
		return nil, fmt.Errorf("making the Kafka layer: %w", err)
	}
	img, cf, err := appendLayer(jre.Image, layerTar)
	if err != nil {
		return nil, fmt.Errorf("making the Kafka layer: %w", err)
	}
	cf.Config.User = fmt.Sprintf("%d:%d", spec.UID, spec.UID)
	cf.Config.Entrypoint = []string{KafkaHome + "/bin/kafka-server-start.sh"}
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = KafkaHome
	cf.Config.Env = append(cf.Config.Env, "KAFKA_HOME="+KafkaHome)
	cf.Config.ExposedPorts = map[string]struct{}{fmt.Sprintf("%d/tcp", spec.Port): {}}
	return mutate.ConfigFile(img, cf)
}

// kafkaLayer is the uncompressed, reproducible tar of the Kafka layer:
// root-owned read-only jars and launchers (the server cannot replace its
// own code), /etc/passwd and /etc/group with a kafka user added (the JVM
// and the tools look up the running uid), and the data directory the
// StatefulSet's volume is mounted on, owned by that user (uid).
func kafkaLayer(libDir string, passwd, group []byte, uid int) ([]byte, error) {
	jars, err := filepath.Glob(filepath.Join(libDir, "*.jar"))
	if err != nil || len(jars) == 0 {
		return nil, fmt.Errorf("no jars in %s (%v)", libDir, err)
	}
	slices.Sort(jars)
	user := fmt.Sprintf("kafka:x:%d:%d:Kafka:/var/lib/kafka:/usr/sbin/nologin\n", uid, uid)
	grp := fmt.Sprintf("kafka:x:%d:\n", uid)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, owner int) error {
		return tw.WriteHeader(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: mode, Uid: owner, Gid: owner, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return file("etc/group", 0o644, append(withoutEntry(group, "kafka"), grp...)) },
		func() error { return file("etc/passwd", 0o644, append(withoutEntry(passwd, "kafka"), user...)) },
		func() error { return dir("opt", 0o755, 0) },
		func() error { return dir("opt/kafka", 0o755, 0) },
		func() error { return dir("opt/kafka/bin", 0o755, 0) },
		func() error { return file("opt/kafka/bin/kafka-server-start.sh", 0o555, []byte(kafkaServerStart)) },
		func() error { return file("opt/kafka/bin/kafka-storage.sh", 0o555, []byte(kafkaStorage)) },
		func() error { return dir("opt/kafka/config", 0o755, 0) },
		func() error { return file("opt/kafka/config/log4j2.properties", 0o444, []byte(toolchain.KafkaLog4j)) },
		func() error { return dir("opt/kafka/libs", 0o755, 0) },
	}
	for _, jar := range jars {
		steps = append(steps, func() error {
			b, err := os.ReadFile(jar)
			if err != nil {
				return err
			}
			return file("opt/kafka/libs/"+filepath.Base(jar), 0o444, b)
		})
	}
	steps = append(steps,
		func() error { return dir("var/lib/kafka", 0o755, uid) },
		func() error { return dir("var/lib/kafka/data", 0o700, uid) },
	)
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// withoutEntry drops name's line from a passwd or group file, so a rebuild
// over a base that has the user already does not list it twice.
func withoutEntry(file []byte, name string) []byte {
	var out []byte
	for line := range strings.Lines(string(file)) {
		if !strings.HasPrefix(line, name+":") {
			out = append(out, line...)
		}
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}

// buildKafka makes the Kafka image k asks for (none when k is nil).
func buildKafka(ctx context.Context, k *KafkaBuild, log io.Writer) ([]server, error) {
	if k == nil {
		return nil, nil
	}
	ref := k.Ref
	if tag := ref[strings.LastIndex(ref, ":")+1:]; tag != toolchain.KafkaVersion {
		// The image would carry another release's name.
		return nil, fmt.Errorf("%s: the Kafka image built here is release %s; tag it %s", ref, toolchain.KafkaVersion, toolchain.KafkaVersion)
	}
	fmt.Fprintf(log, "images: %s from Debian's JRE and the Kafka %s jars of Maven Central\n", ref, toolchain.KafkaVersion)
	img, err := KafkaImage(ctx, DebianOptions{Log: log}, k.Spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	sv, err := tagImage("kafka", ref, img)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "images: %s %s (%s)\n", ref, sv.Digest[:19], sv.DigestRef)
	return []server{sv}, nil
}
