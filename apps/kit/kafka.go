package kit

import (
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaHeaders lets an OpenTelemetry propagator read and write W3C trace
// context in Kafka record headers, so a trace continues from the producer to
// the consumer across the broker.
type KafkaHeaders struct{ R *kgo.Record }

// Get returns the first header named key.
func (c KafkaHeaders) Get(key string) string {
	for _, h := range c.R.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces the header named key.
func (c KafkaHeaders) Set(key, value string) {
	for i, h := range c.R.Headers {
		if h.Key == key {
			c.R.Headers[i].Value = []byte(value)
			return
		}
	}
	c.R.Headers = append(c.R.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// Keys lists the header names.
func (c KafkaHeaders) Keys() []string {
	out := make([]string, 0, len(c.R.Headers))
	for _, h := range c.R.Headers {
		out = append(out, h.Key)
	}
	return out
}
