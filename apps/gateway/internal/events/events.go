// Package events relays "registration stored" events from Redis Pub/Sub to
// the Server-Sent-Events clients of this replica. The worker publishes once;
// every replica is subscribed, so a client hears the event whichever replica
// it is connected to (the articles' Pub/Sub for socket coordination).
package events

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Hub fans messages out to connected clients.
type Hub struct {
	mu      sync.Mutex
	clients map[chan string]struct{}
	closed  chan struct{}
	once    sync.Once
	log     *slog.Logger
	gauge   prometheus.Gauge
	dropped prometheus.Counter
	// Heartbeat keeps idle connections from being cut by proxies.
	Heartbeat time.Duration
}

// NewHub returns an empty hub.
func NewHub(log *slog.Logger, reg prometheus.Registerer) *Hub {
	h := &Hub{clients: map[chan string]struct{}{}, closed: make(chan struct{}), log: log, Heartbeat: 15 * time.Second,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sse_clients", Help: "Connected SSE clients."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "sse_events_dropped_total",
			Help: "Events not delivered because a client's buffer was full."})}
	reg.MustRegister(h.gauge, h.dropped)
	return h
}

// Broadcast delivers msg to every client without blocking: a slow client
// loses events rather than stalling the others.
func (h *Hub) Broadcast(msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c <- msg:
		default:
			h.dropped.Inc()
		}
	}
}

// Close ends every stream, so that a graceful shutdown is not held up by
// connections that never end on their own.
func (h *Hub) Close() { h.once.Do(func() { close(h.closed) }) }

// Subscribe relays channel until ctx ends, resubscribing after errors.
func (h *Hub) Subscribe(ctx context.Context, rdb redis.UniversalClient, channel string) {
	for ctx.Err() == nil {
		ps := rdb.Subscribe(ctx, channel)
		if _, err := ps.Receive(ctx); err != nil {
			h.log.Warn("events subscribe failed, retrying", "err", err)
			_ = ps.Close()
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			continue
		}
		ch := ps.Channel()
	loop:
		for {
			select {
			case m, ok := <-ch:
				if !ok {
					break loop
				}
				h.Broadcast(m.Payload)
			case <-ctx.Done():
				break loop
			}
		}
		_ = ps.Close()
	}
}

// ServeHTTP streams events as text/event-stream until the client leaves or
// the hub closes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The server's WriteTimeout is right for requests, wrong for a stream.
	_ = rc.SetWriteDeadline(time.Time{})
	c := make(chan string, 64)
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	h.gauge.Inc()
	defer func() {
		h.mu.Lock()
		delete(h.clients, c)
		h.mu.Unlock()
		h.gauge.Dec()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": connected\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(h.Heartbeat)
	defer tick.Stop()
	for {
		var err error
		select {
		case msg := <-c:
			_, err = fmt.Fprintf(w, "event: registration.stored\ndata: %s\n\n", msg)
		case <-tick.C:
			_, err = fmt.Fprint(w, ": heartbeat\n\n")
		case <-r.Context().Done():
			return
		case <-h.closed:
			_, _ = fmt.Fprint(w, "event: shutdown\ndata: {}\n\n")
			_ = rc.Flush()
			return
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}
