// Package account is the contract the three services share about a user
// account: how an email is normalised, how a user id is derived, the Kafka
// message of a registration, the Redis names, the password hash format and
// the database schema. It is domain, not plumbing: the gateway writes what
// the worker reads and the users service verifies what the worker hashed.
package account

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Names shared by producer and consumer sides.
const (
	// TopicRegistrations carries accepted registrations, keyed by email.
	TopicRegistrations = "registrations"
	// TopicRegistrationsDLQ receives records the worker can never store.
	TopicRegistrationsDLQ = "registrations.dlq"
	// ConsumerGroup is the worker's Kafka consumer group.
	ConsumerGroup = "registrations-worker"
	// EventsChannel is the Redis Pub/Sub channel of "registration stored"
	// events that every gateway replica relays to its SSE clients.
	EventsChannel = "events.registrations"
	// HeaderIdempotencyKey and HeaderRequestID are Kafka record headers.
	HeaderIdempotencyKey = "idempotency-key"
	HeaderRequestID      = "request-id"
)

// NormalizeEmail lower-cases and trims; the normalised form is the Kafka key
// (so all registrations of one email land on one partition, in order) and
// the unique column.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// UserID derives the id from the normalised email, so the gateway can answer
// the 202 with the id the worker will store, before the row exists.
func UserID(normalizedEmail string) string {
	sum := sha256.Sum256([]byte("scaleplane/user/" + normalizedEmail))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80 // version 8: custom (RFC 9562)
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// ValidUserID reports whether s has the canonical lower-case UUID form.
func ValidUserID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// Registration is the JSON value of a record on TopicRegistrations. The
// password travels in clear text to the worker, which hashes it: the topic
// must be encrypted in transit, ACL-restricted and short-retention.
type Registration struct {
	RequestID      string    `json:"request_id"`
	IdempotencyKey string    `json:"idempotency_key"`
	UserID         string    `json:"user_id"`
	Email          string    `json:"email"`
	Name           string    `json:"name"`
	Password       string    `json:"password"`
	AcceptedAt     time.Time `json:"accepted_at"`
}

// Stored is the event published on EventsChannel after the row is committed.
type Stored struct {
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	RequestID string `json:"request_id"`
}

// CacheKey is the Redis key of a cached profile; the worker deletes it after
// a write so no replica serves a stale negative or old profile from Redis.
func CacheKey(userID string) string { return "user:{" + userID + "}" }
