package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/scaleplane/scaleplane/stacks"
)

// services up creates the partitions the stack declares, not a count of
// its own, with the replication its brokers allow.
func TestServicesTopicsAreTheStacks(t *testing.T) {
	values, err := stacks.ReadStackConfig("../..", "local")
	require.NoError(t, err)
	env, err := stacks.Parse("local", values)
	require.NoError(t, err)
	want := env.Topics()

	got, err := stackTopics("../..", "local", 3)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i, tp := range got {
		assert.Equal(t, want[i].Name, tp.Name)
		assert.Equal(t, want[i].Partitions, tp.Partitions, "%s: the stack's partitions", tp.Name)
		assert.Equal(t, want[i].RetentionMs, tp.RetentionMs, "%s: the stack's retention", tp.Name)
		assert.Equal(t, 3, tp.ReplicationFactor, "%s: one replica per broker started", tp.Name)
	}

	_, err = stackTopics("../..", "nosuch", 1)
	assert.ErrorAs(t, err, new(usageError), "an unknown stack is a usage error")
}

func TestCreateTopicsMakesTheDeclaredPartitions(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(kc.Close)
	declared, err := stackTopics("../..", "local", 1)
	require.NoError(t, err)

	require.NoError(t, createTopics(context.Background(), kc.ListenAddrs(), declared, tlog{t}))

	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	td, err := kadm.NewClient(cl).ListTopics(context.Background())
	require.NoError(t, err)
	for _, tp := range declared {
		require.Contains(t, td, tp.Name)
		assert.Len(t, td[tp.Name].Partitions, tp.Partitions, "%s has the stack's partitions", tp.Name)
	}
}

// tlog shows what createTopics reports in the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) { l.t.Logf("%s", p); return len(p), nil }
