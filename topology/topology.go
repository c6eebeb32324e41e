// Package topology names what the stack and the bundled services must agree
// on: the Kafka topics and consumer group, the Redis channel, and the ports
// the services listen and are called on. The stack puts these values in the
// pods' environment and the services take the same values as defaults, so a
// rename cannot leave a producer writing where no consumer reads, or a
// caller dialling a port nobody listens on.
//
// It is names only and imports nothing outside the standard library: the
// Pulumi program, the services and the command all link it without pulling
// in each other's dependencies (a database driver in the Pulumi program,
// the Pulumi SDK in a service). How many partitions a topic has is not a
// name: the stack computes it from its Env (stacks.Env.Topics).
package topology

import "strconv"

// The messaging names: the gateway produces to RegistrationsTopic, the
// worker consumes it in WorkerGroup, dead-letters to RegistrationsDLQTopic
// and announces each stored row on EventsChannel.
const (
	// RegistrationsTopic carries accepted registrations from the gateway to
	// the worker, keyed by normalised email.
	RegistrationsTopic = "registrations"
	// RegistrationsDLQTopic receives the records the worker can never store,
	// so one poison record does not stop its partition.
	RegistrationsDLQTopic = "registrations.dlq"
	// WorkerGroup is the worker's Kafka consumer group: its committed
	// offsets are where a restarted or rescheduled worker resumes.
	WorkerGroup = "registrations-worker"
	// EventsChannel is the Redis Pub/Sub channel of "registration stored"
	// events: the worker publishes after its commit and every gateway
	// replica relays them to its SSE clients.
	EventsChannel = "events.registrations"
)

// The ports. In the cluster every pod has its own network, so all services
// serve /metrics, /healthz and /readyz on AdminHTTPPort; on one host (`go
// run ./apps/<svc>` beside `scaleplane services up`) they cannot share it,
// so users and worker default to ports of their own.
const (
	// GatewayHTTPPort is the gateway's public HTTP port, the edge's upstream.
	GatewayHTTPPort = 8080
	// UsersGRPCPort is the users service's gRPC port, which the gateway calls.
	UsersGRPCPort = 9000
	// AdminHTTPPort is every service's admin port in the cluster, and the
	// gateway's default.
	AdminHTTPPort = 9090
	// UsersLocalAdminPort is the users service's default admin port, beside
	// the gateway's on one host.
	UsersLocalAdminPort = 9091
	// WorkerLocalAdminPort is the worker's default admin port, beside the
	// gateway's and the users service's on one host.
	WorkerLocalAdminPort = 9092
)

// ListenAddr is the address that binds port on every interface, the form
// of the services' *_ADDR variables (":8080").
func ListenAddr(port int) string { return ":" + strconv.Itoa(port) }
