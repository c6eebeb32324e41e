// Package e2e holds the end-to-end proofs of the sample services: the
// gateway, worker and users service run in the test process as libraries,
// against real Kafka (KRaft), a real Redis Cluster and a real Postgres
// primary with a streaming replica behind PgBouncer, all started by
// internal/realserver on loopback. See apps/README.md for what each test
// proves and the figures measured.
package e2e
