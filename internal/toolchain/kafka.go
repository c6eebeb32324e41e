package toolchain

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/scaleplane/scaleplane/internal/progress"
)

// KafkaVersion is the pinned Apache Kafka release: the newest 4.x that Maven
// Central serves whole here. Bumping it makes a new cache directory.
const KafkaVersion = "4.4.0"

// kafkaScala is the Scala binary version of the kafka_<scala> core artifact.
const kafkaScala = "2.13"

// log4jVersion matches the log4j-api/log4j-core that kafka_2.13 brings, so the
// slf4j binding added beside them is the same release.
const log4jVersion = "2.25.5"

// dependencyPluginVersion pins maven-dependency-plugin instead of taking the
// old default bound by the Maven release that happens to be installed.
const dependencyPluginVersion = "3.8.1"

// kafkaTool is the cache name of the Kafka distribution.
const kafkaTool = "kafka"

// KafkaDist is a Kafka distribution in the cache: a flat directory of jars
// that is enough to run kafka.Kafka (a KRaft broker/controller) and
// kafka.tools.StorageTool (formatting its storage).
type KafkaDist struct {
	// Version is the Kafka release, KafkaVersion.
	Version string
	// Dir is the cache directory of this distribution.
	Dir string
	// LibDir holds the jars.
	LibDir string
	// Classpath is the java -cp value for the jars (a wildcard entry, so the
	// command line stays short).
	Classpath string
}

// KafkaLog4j is the log4j2 configuration the servers run with, here and in
// the Kafka image: everything to stdout at INFO, minus the full config dump
// every client and server prints.
const KafkaLog4j = `status = error
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
`

// ServerClass is the main class of a Kafka server (broker and/or controller).
const ServerClass = "kafka.Kafka"

// StorageToolClass is the main class that formats a KRaft node's log dirs.
const StorageToolClass = "kafka.tools.StorageTool"

// kafkaPom is the throwaway project whose only purpose is to name the
// artifacts: the core (server and storage tool) and a log4j2 binding for the
// slf4j 1.7 API Kafka logs through, without which the server logs nothing.
const kafkaPom = `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.scaleplane.toolchain</groupId>
  <artifactId>kafka-dist</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_%s</artifactId>
      <version>%s</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>%s</version>
    </dependency>
  </dependencies>
</project>
`

// Kafka returns the cached Kafka distribution, fetching its jars from Maven
// Central with mvn the first time (needs mvn and network; seconds when
// ~/.m2 already holds them).
func Kafka(ctx context.Context) (KafkaDist, error) {
	dir, err := Ensure(ctx, kafkaTool, KafkaVersion, func(dir string) error {
		return fetchKafka(ctx, filepath.Join(dir, "libs"))
	})
	if err != nil {
		return KafkaDist{}, err
	}
	lib := filepath.Join(dir, "libs")
	return KafkaDist{
		Version:   KafkaVersion,
		Dir:       dir,
		LibDir:    lib,
		Classpath: filepath.Join(lib, "*"),
	}, nil
}

// fetchKafka copies the runtime dependency closure of the Kafka core into lib.
func fetchKafka(ctx context.Context, lib string) error {
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return fmt.Errorf("mvn is needed to fetch the Kafka jars (apt-get install maven): %w", err)
	}
	work, err := os.MkdirTemp("", "scaleplane-kafka-pom-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	pom := filepath.Join(work, "pom.xml")
	if err := os.WriteFile(pom, fmt.Appendf(nil, kafkaPom, kafkaScala, KafkaVersion, log4jVersion), 0o644); err != nil {
		return err
	}
	// Not -q: Maven's "Downloaded from" lines are the count the progress
	// line shows (a cold ~/.m2 fetches a few hundred files).
	cmd := exec.CommandContext(ctx, mvn, "-B", "-f", pom,
		"org.apache.maven.plugins:maven-dependency-plugin:"+dependencyPluginVersion+":copy-dependencies",
		"-DincludeScope=runtime", "-DoutputDirectory="+lib)
	t := progress.Start(ctx, "mvn: Kafka "+KafkaVersion+"'s jars from Maven Central", 1)
	t.Step(1, "resolving and downloading")
	var out bytes.Buffer
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return t.Done(err)
	}
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return t.Done(err)
	}
	downloaded := 0
	lines := bufio.NewScanner(pipe)
	for lines.Scan() {
		out.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "Downloaded from") {
			downloaded++
			t.Detail("%d files downloaded", downloaded)
		}
	}
	if err := cmd.Wait(); err != nil {
		return t.Done(fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, progress.Tail(out.String(), 40)))
	}
	_ = t.Done(nil)
	core := filepath.Join(lib, "kafka_"+kafkaScala+"-"+KafkaVersion+".jar")
	if _, err := os.Stat(core); err != nil {
		return fmt.Errorf("mvn finished but the Kafka core jar is missing: %w", err)
	}
	return nil
}

// Warm makes sure every cached tool is present, so CI can fetch them once,
// before the tests and outside their time limits. It reports each tool's
// directory to logf.
func Warm(ctx context.Context, logf func(format string, args ...any)) error {
	k, err := Kafka(ctx)
	if err != nil {
		return err
	}
	logf("kafka %s: %s", k.Version, k.Dir)
	if err := WarmObservability(ctx, logf); err != nil {
		return err
	}
	return warmClusterTools(ctx, logf)
}
