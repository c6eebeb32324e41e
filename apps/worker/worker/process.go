package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/mail"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/apps/kit"
	"github.com/scaleplane/scaleplane/topology"
)

// item is one record on its way through a batch.
type item struct {
	rec      *kgo.Record
	ctx      context.Context
	span     trace.Span
	reg      account.Registration
	hash     string
	poison   error // set when the record can never be stored
	inserted bool
}

// decode parses and checks a record; anything malformed is poison: retrying
// it can never succeed, so it goes to the dead-letter topic.
func decode(rec *kgo.Record) (account.Registration, error) {
	var r account.Registration
	if err := json.Unmarshal(rec.Value, &r); err != nil {
		return r, fmt.Errorf("value is not a registration: %w", err)
	}
	switch {
	case r.Email == "" || account.NormalizeEmail(r.Email) != r.Email:
		return r, errors.New("email missing or not normalised")
	case account.UserID(r.Email) != r.UserID:
		return r, errors.New("user_id does not match email")
	case r.IdempotencyKey == "" || r.Name == "" || r.Password == "":
		return r, errors.New("idempotency_key, name and password are required")
	}
	if _, err := mail.ParseAddress(r.Email); err != nil {
		return r, fmt.Errorf("email: %w", err)
	}
	return r, nil
}

// isPoison tells the errors that a retry cannot fix (bad data, violated
// constraints) from transient ones (connection refused while Postgres
// restarts, admin shutdown, serialization failure).
func isPoison(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && len(pg.Code) == 5 {
		class := pg.Code[:2]
		return class == "22" || class == "23"
	}
	return false
}

const insertUser = `INSERT INTO users (id, email, name, password_hash, idempotency_key, request_id)
VALUES ($1::uuid, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`

// store inserts the items in one transaction; ON CONFLICT DO NOTHING makes a
// redelivered record (same id, same idempotency key) a no-op, which is what
// turns at-least-once delivery into exactly one row.
//
// Each record's trace gets a client span of the write: the batch is one
// transaction, but a registration's trace should show where it was stored.
func (w *Worker) store(ctx context.Context, items []*item) error {
	spans := make([]trace.Span, len(items))
	for i, it := range items {
		_, spans[i] = w.tracer.Start(it.ctx, "INSERT users", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(kit.Attr("db.system.name", "postgresql"), kit.Attr("db.operation.name", "INSERT"),
				kit.Attr("db.collection.name", "users"), attribute.Int("db.operation.batch.size", len(items))))
	}
	err := w.insert(ctx, items)
	for _, s := range spans {
		if err != nil {
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
	return err
}

// insert runs the batch of inserts in one transaction.
func (w *Worker) insert(ctx context.Context, items []*item) error {
	return pgx.BeginFunc(ctx, w.db, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, it := range items {
			r := it.reg
			b.Queue(insertUser, r.UserID, r.Email, r.Name, it.hash, r.IdempotencyKey, r.RequestID)
		}
		res := tx.SendBatch(ctx, b)
		for _, it := range items {
			tag, err := res.Exec()
			if err != nil {
				_ = res.Close()
				return err
			}
			it.inserted = tag.RowsAffected() == 1
		}
		return res.Close()
	})
}

// storeWithRetry retries transient failures with capped exponential backoff
// and full jitter until ctx ends; a poison error is returned at once.
func (w *Worker) storeWithRetry(ctx context.Context, items []*item) error {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, w.cfg.StoreTimeout)
		err := w.store(actx, items)
		cancel()
		if err == nil || isPoison(err) || ctx.Err() != nil {
			return err
		}
		w.metrics.storeRetries.Inc()
		d := min(w.cfg.RetryMax, w.cfg.RetryBase<<min(attempt, 20))
		d = time.Duration(rand.Int64N(int64(d) + 1))
		w.tel.Logger.WarnContext(ctx, "store failed, retrying", "err", err, "attempt", attempt+1, "backoff", d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// processBatch takes a polled batch to the point where its offsets may be
// committed: every record is stored or dead-lettered. It returns an error
// only when ctx ended first; the batch is then redelivered.
func (w *Worker) processBatch(ctx context.Context, recs []*kgo.Record) error {
	items := make([]*item, len(recs))
	for i, rec := range recs {
		pctx := w.tel.Propagator.Extract(ctx, kit.KafkaHeaders{R: rec})
		sctx, span := w.tracer.Start(pctx, topology.RegistrationsTopic+" process",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(kit.Attr("messaging.system", "kafka"),
				kit.Attr("messaging.destination.name", rec.Topic)))
		it := &item{rec: rec, ctx: sctx, span: span}
		it.reg, it.poison = decode(rec)
		items[i] = it
	}
	defer func() {
		for _, it := range items {
			if it.poison != nil {
				it.span.SetStatus(codes.Error, it.poison.Error())
			}
			it.span.End()
		}
	}()

	// The CPU-heavy step, in a pool bounded by HashConcurrency.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.cfg.HashConcurrency)
	for _, it := range items {
		if it.poison != nil {
			continue
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			start := time.Now()
			h, err := account.HashPassword(it.reg.Password, w.cfg.Hash)
			w.metrics.hashSeconds.Observe(time.Since(start).Seconds())
			it.hash = h
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}

	good := make([]*item, 0, len(items))
	for _, it := range items {
		if it.poison == nil {
			good = append(good, it)
		}
	}
	if len(good) > 0 {
		err := w.storeWithRetry(ctx, good)
		if err != nil && !isPoison(err) {
			return err
		}
		if err != nil { // isolate the poison record(s): one transaction each
			for _, it := range good {
				if err := w.storeWithRetry(ctx, []*item{it}); err != nil {
					if !isPoison(err) {
						return err
					}
					it.poison = err
				}
			}
		}
	}
	if err := w.deadLetter(ctx, items); err != nil {
		return err
	}
	if w.cfg.OnStored != nil {
		w.cfg.OnStored(ctx, len(recs))
	}
	w.announce(ctx, items)
	return nil
}

// deadLetter produces every poison record to the DLQ topic with the reason,
// synchronously and with acks=all: the offsets are committed only after.
func (w *Worker) deadLetter(ctx context.Context, items []*item) error {
	var dlq []*kgo.Record
	for _, it := range items {
		if it.poison == nil {
			continue
		}
		w.tel.Logger.ErrorContext(it.ctx, "dead-lettering record", "err", it.poison,
			"partition", it.rec.Partition, "offset", it.rec.Offset)
		r := &kgo.Record{Topic: w.cfg.DLQTopic, Key: it.rec.Key, Value: it.rec.Value,
			Headers: append(append([]kgo.RecordHeader(nil), it.rec.Headers...),
				kgo.RecordHeader{Key: "dlq-reason", Value: []byte(it.poison.Error())},
				kgo.RecordHeader{Key: "dlq-source", Value: fmt.Appendf(nil, "%s/%d/%d", it.rec.Topic, it.rec.Partition, it.rec.Offset)})}
		dlq = append(dlq, r)
	}
	for attempt := 0; len(dlq) > 0; attempt++ {
		err := w.kafka.ProduceSync(ctx, dlq...).FirstErr()
		if err == nil {
			w.metrics.records.WithLabelValues("dead_lettered").Add(float64(len(dlq)))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.tel.Logger.WarnContext(ctx, "dead-letter produce failed, retrying", "err", err)
		select {
		case <-time.After(min(w.cfg.RetryMax, w.cfg.RetryBase<<min(attempt, 20))):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// announce invalidates the cached profile and publishes "registration
// stored" for the gateways' SSE clients. Failures are logged, not retried:
// the row is durable, the cache entry expires on its own and events are
// best-effort notifications.
func (w *Worker) announce(ctx context.Context, items []*item) {
	var stored int
	pipe := w.redis.Pipeline()
	for _, it := range items {
		if it.poison != nil {
			continue
		}
		if !it.inserted {
			w.metrics.records.WithLabelValues("duplicate").Inc()
			continue
		}
		stored++
		r := it.reg
		ev, _ := json.Marshal(account.Stored{UserID: r.UserID, Email: r.Email, Name: r.Name, RequestID: r.RequestID})
		pipe.Del(ctx, account.CacheKey(r.UserID))
		pipe.Publish(ctx, topology.EventsChannel, ev)
	}
	w.metrics.records.WithLabelValues("stored").Add(float64(stored))
	if stored == 0 {
		return
	}
	if _, err := pipe.Exec(ctx); err != nil {
		w.metrics.announceErrors.Inc()
		w.tel.Logger.WarnContext(ctx, "cache invalidation or event publish failed", "err", err)
	}
}
