// Package session keeps login sessions in Redis so that any gateway replica
// can serve any request: no sticky sessions, no state in the pod. The
// browser holds an opaque random token; Redis holds only its SHA-256, so a
// leaked Redis dump yields no usable cookie.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
)

// CookieName is the session cookie.
const CookieName = "sp_session"

// ErrNoSession means the request carries no valid session.
var ErrNoSession = errors.New("no valid session")

// Session is what Redis stores under the token's hash.
type Session struct {
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

// Store creates, reads and deletes sessions.
type Store struct {
	redis  redis.UniversalClient
	ttl    time.Duration
	secure bool
}

// NewStore returns a store whose sessions live ttl; secure marks the cookie
// Secure (HTTPS only), off only for plain-HTTP local development.
func NewStore(rdb redis.UniversalClient, ttl time.Duration, secure bool) *Store {
	return &Store{redis: rdb, ttl: ttl, secure: secure}
}

func sessionKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "session:{" + hex.EncodeToString(sum[:]) + "}"
}

// userKey is the set of a user's session keys, for logging out everywhere.
func userKey(userID string) string { return "user-sessions:{" + userID + "}" }

// Create stores a session and sets its cookie on w.
func (s *Store) Create(ctx context.Context, w http.ResponseWriter, sess Session) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	val, _ := json.Marshal(sess)
	key := sessionKey(token)
	// Two keys in two slots: a pipeline, not a transaction (cluster mode).
	// Should the set write fail, the session still expires by its own TTL.
	pipe := s.redis.Pipeline()
	pipe.Set(ctx, key, val, s.ttl)
	pipe.SAdd(ctx, userKey(sess.UserID), key)
	pipe.Expire(ctx, userKey(sess.UserID), s.ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", MaxAge: int(s.ttl.Seconds()),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	return nil
}

func token(r *http.Request) (string, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil || len(c.Value) != 43 {
		return "", false
	}
	return c.Value, true
}

// Get returns the request's session or ErrNoSession.
func (s *Store) Get(ctx context.Context, r *http.Request) (Session, error) {
	var sess Session
	t, ok := token(r)
	if !ok {
		return sess, ErrNoSession
	}
	raw, err := s.redis.Get(ctx, sessionKey(t)).Bytes()
	if errors.Is(err, redis.Nil) {
		return sess, ErrNoSession
	}
	if err != nil {
		return sess, err
	}
	if err := json.Unmarshal(raw, &sess); err != nil {
		return sess, ErrNoSession
	}
	return sess, nil
}

// Delete removes the request's session, or with all every session of its
// user, on every replica at once (they all read Redis), and clears the cookie.
func (s *Store) Delete(ctx context.Context, w http.ResponseWriter, r *http.Request, all bool) error {
	sess, err := s.Get(ctx, r)
	if err != nil {
		return err
	}
	t, _ := token(r)
	keys := []string{sessionKey(t)}
	if all {
		members, err := s.redis.SMembers(ctx, userKey(sess.UserID)).Result()
		if err != nil {
			return err
		}
		keys = append(keys, members...)
	}
	pipe := s.redis.Pipeline()
	for _, k := range keys {
		pipe.Del(ctx, k)
		pipe.SRem(ctx, userKey(sess.UserID), k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	return nil
}
