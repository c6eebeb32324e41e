package users

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when no row matches.
var ErrNotFound = errors.New("user not found")

// Row is one users row.
type Row struct {
	ID, Email, Name, PasswordHash string
	CreatedAt                     time.Time
}

// Store routes reads to the replica pool and writes to the primary pool.
// Replication is asynchronous, so it keeps read-your-writes two ways: a
// user written through this store is read from the primary for a window,
// and a replica miss is retried on the primary (the worker may have just
// inserted the row and the replica not caught up yet).
type Store struct {
	rw, ro *pgxpool.Pool
	window time.Duration

	mu     sync.Mutex
	recent map[string]time.Time
}

// NewStore uses rw for writes and ro for reads.
func NewStore(rw, ro *pgxpool.Pool, window time.Duration) *Store {
	return &Store{rw: rw, ro: ro, window: window, recent: map[string]time.Time{}}
}

func (s *Store) wroteRecently(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.recent[id]
	if ok && time.Now().After(until) {
		delete(s.recent, id)
		return false
	}
	return ok
}

func (s *Store) markWritten(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if len(s.recent) > 10000 { // sweep so the map cannot grow without bound
		for k, until := range s.recent {
			if now.After(until) {
				delete(s.recent, k)
			}
		}
	}
	s.recent[id] = now.Add(s.window)
}

const selectUser = `SELECT id::text, email, name, password_hash, created_at FROM users WHERE `

func scan(row pgx.Row) (Row, error) {
	var r Row
	err := row.Scan(&r.ID, &r.Email, &r.Name, &r.PasswordHash, &r.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

func (s *Store) read(ctx context.Context, primaryFirst bool, where string, arg any) (Row, error) {
	q := selectUser + where
	if primaryFirst {
		return scan(s.rw.QueryRow(ctx, q, arg))
	}
	r, err := scan(s.ro.QueryRow(ctx, q, arg))
	if errors.Is(err, ErrNotFound) && s.ro != s.rw {
		return scan(s.rw.QueryRow(ctx, q, arg))
	}
	return r, err
}

// ByID reads one user by id.
func (s *Store) ByID(ctx context.Context, id string) (Row, error) {
	return s.read(ctx, s.wroteRecently(id), "id = $1::uuid", id)
}

// ByEmail reads one user by normalised email.
func (s *Store) ByEmail(ctx context.Context, email string) (Row, error) {
	return s.read(ctx, false, "email = $1", email)
}

// UpdateName writes to the primary and pins the user's reads to it.
func (s *Store) UpdateName(ctx context.Context, id, name string) (Row, error) {
	r, err := scan(s.rw.QueryRow(ctx,
		`UPDATE users SET name = $2, updated_at = now() WHERE id = $1::uuid
		 RETURNING id::text, email, name, password_hash, created_at`, id, name))
	if err == nil {
		s.markWritten(id)
	}
	return r, err
}
