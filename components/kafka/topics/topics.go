// Package topics declares Kafka topics: the Topic a stack computes, its
// checks, and topics.json, the file the topics Job reads and the policies
// inspect. It links no Kafka client, so the Pulumi program that declares
// topics does not either; package topicadmin makes a cluster match them.
package topics

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
)

// Topic is one declared topic. The JSON names are those of topics.json,
// the file the Job reads and the policies inspect.
type Topic struct {
	Name              string `json:"name"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replicationFactor"`
	// RetentionMs is retention.ms; 0 leaves the broker default.
	RetentionMs int64 `json:"retentionMs,omitempty"`
}

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Validate reports every problem of a topic list.
func Validate(ts []Topic) error {
	var errs []error
	seen := map[string]bool{}
	for _, t := range ts {
		if !topicName.MatchString(t.Name) || t.Name == "." || t.Name == ".." {
			errs = append(errs, fmt.Errorf("topic %q: not a valid Kafka topic name", t.Name))
		}
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("topic %q: declared twice", t.Name))
		}
		seen[t.Name] = true
		if t.Partitions < 1 {
			errs = append(errs, fmt.Errorf("topic %q: partitions %d: must be at least 1", t.Name, t.Partitions))
		}
		if t.ReplicationFactor < 1 {
			errs = append(errs, fmt.Errorf("topic %q: replicationFactor %d: must be at least 1", t.Name, t.ReplicationFactor))
		}
		if t.RetentionMs < 0 && t.RetentionMs != -1 {
			errs = append(errs, fmt.Errorf("topic %q: retentionMs %d: must be positive, 0 (broker default) or -1 (forever)", t.Name, t.RetentionMs))
		}
	}
	return errors.Join(errs...)
}

// Marshal renders topics.json.
func Marshal(ts []Topic) (string, error) {
	b, err := json.MarshalIndent(ts, "", "  ")
	return string(b) + "\n", err
}

// Parse reads topics.json.
func Parse(b []byte) ([]Topic, error) {
	var ts []Topic
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("topics.json: %w", err)
	}
	return ts, Validate(ts)
}
