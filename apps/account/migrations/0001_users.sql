-- users: one row per registered email. The worker inserts with
-- ON CONFLICT DO NOTHING, so a redelivered Kafka record (same idempotency
-- key) or a second registration of the same email never makes a second row.
CREATE TABLE IF NOT EXISTS users (
    id              uuid        PRIMARY KEY,
    email           text        NOT NULL UNIQUE,
    name            text        NOT NULL,
    password_hash   text        NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    request_id      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
