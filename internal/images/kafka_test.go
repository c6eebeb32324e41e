package images

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testKafka stands in for the kafka component's values, which the plan
// (internal/imageplan) passes; its tests run the component's rendered node
// on the image.
var testKafka = KafkaSpec{UID: 1000, Port: 9092}

// TestKafkaImageLayersAndUser builds the Kafka image and checks its shape:
// the JRE image's layers shared, one Kafka layer on top, reproducible, run
// as the uid asked for, the launchers and the jars in place, the broker
// port exposed.
func TestKafkaImageLayersAndUser(t *testing.T) {
	ctx, opts := debianOrSkip(t)
	start := time.Now()
	img, err := KafkaImage(ctx, opts, testKafka)
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
	again, err := KafkaImage(ctx, opts, testKafka)
	require.NoError(t, err, "building the Kafka image again")
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	assert.Equal(t, d1, d2, "the Kafka image is reproducible")
	cf, err := img.ConfigFile()
	require.NoError(t, err, "config")
	uid := strconv.Itoa(testKafka.UID)
	assert.Equal(t, uid+":"+uid, cf.Config.User, "runs as the uid the pods use")
	assert.Contains(t, cf.Config.ExposedPorts, strconv.Itoa(testKafka.Port)+"/tcp", "documents the broker port")
	files := imageFiles(t, img)
	for _, f := range []string{"opt/kafka/bin/kafka-server-start.sh", "opt/kafka/bin/kafka-storage.sh", "opt/kafka/libs/kafka_2.13-4.4.0.jar"} {
		assert.True(t, files[f], "the image has %s", f)
	}
}

func mustSpec(t *testing.T, name string) DebianSpec {
	t.Helper()
	s, ok := DebianServerSpec(name)
	require.True(t, ok, "spec %s", name)
	return s
}
