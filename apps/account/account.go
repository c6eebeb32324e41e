// Package account is the contract the three services share about a user
// account: how an email is normalised, how a user id is derived, the Kafka
// message of a registration, the Redis key of a profile, the password hash
// format and the database schema. It is domain, not plumbing: the gateway writes what
// the worker reads and the users service verifies what the worker hashed.
package account

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// The Kafka record headers of a registration: part of its message, as the
// JSON value is. The topic, group and channel names are the topology's
// (package topology), which the stack shares without linking this package.
const (
	// HeaderIdempotencyKey is the record header holding the registration's
	// idempotency key, readable without decoding the value.
	HeaderIdempotencyKey = "idempotency-key"
	// HeaderRequestID is the record header holding the request id of the
	// HTTP request that produced the record, likewise.
	HeaderRequestID = "request-id"
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

// Registration is the JSON value of a record on topology.RegistrationsTopic.
// The password travels in clear text to the worker, which hashes it: the
// topic must be encrypted in transit, ACL-restricted and short-retention.
type Registration struct {
	RequestID      string    `json:"request_id"`
	IdempotencyKey string    `json:"idempotency_key"`
	UserID         string    `json:"user_id"`
	Email          string    `json:"email"`
	Name           string    `json:"name"`
	Password       string    `json:"password"`
	AcceptedAt     time.Time `json:"accepted_at"`
}

// Stored is the event published on topology.EventsChannel after the row is
// committed.
type Stored struct {
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	RequestID string `json:"request_id"`
}

// CacheKey is the Redis key of a cached profile; the worker deletes it after
// a write so no replica serves a stale negative or old profile from Redis.
func CacheKey(userID string) string { return "user:{" + userID + "}" }
