package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/cache"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/register"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/resilience"
	"github.com/scaleplane/scaleplane/apps/gateway/internal/session"
	"github.com/scaleplane/scaleplane/apps/kit"
)

// Header values set on every profile answer, allocated once and shared:
// net/http only reads them, and Header.Set or Add replace or copy a full
// slice rather than write into it.
var (
	jsonContentType = []string{"application/json"}
	cacheHeader     = map[cache.Source][]string{}
)

func init() {
	for _, s := range []cache.Source{cache.L1, cache.L2, cache.L2Stale, cache.Loaded, cache.Fallback} {
		cacheHeader[s] = []string{string(s)}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, msg)
}

// token reads a client-supplied id (request id, idempotency key) when it is
// short printable ASCII, so that it is safe in logs and headers.
func token(s string) (string, bool) {
	if len(s) == 0 || len(s) > 128 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return "", false
		}
	}
	return s, true
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// register accepts a registration: decode, validate, produce, 202. The
// password is hashed by the worker, off the request path.
func (g *Gateway) register(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	req, err := register.Decode(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		var re *register.Error
		if errors.As(err, &re) {
			writeJSON(w, re.Status, re)
			return
		}
		writeError(w, http.StatusBadRequest, "unreadable body")
		return
	}
	requestID, ok := token(r.Header.Get("X-Request-Id"))
	if !ok {
		requestID = newID()
	}
	idem, ok := token(r.Header.Get("Idempotency-Key"))
	if !ok {
		idem = requestID
	}
	reg := account.Registration{RequestID: requestID, IdempotencyKey: idem, UserID: account.UserID(req.Email),
		Email: req.Email, Name: req.Name, Password: req.Password, AcceptedAt: time.Now().UTC()}
	val, _ := json.Marshal(reg)
	rec := &kgo.Record{Topic: g.cfg.Topic, Key: []byte(req.Email), Value: val, Headers: []kgo.RecordHeader{
		{Key: account.HeaderIdempotencyKey, Value: []byte(idem)},
		{Key: account.HeaderRequestID, Value: []byte(requestID)},
	}}
	ctx, span := g.tracer.Start(r.Context(), g.cfg.Topic+" publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(kit.Attr("messaging.system", "kafka"), kit.Attr("messaging.destination.name", g.cfg.Topic)))
	g.tel.Propagator.Inject(ctx, kit.KafkaHeaders{R: rec})
	pctx, cancel := context.WithTimeout(ctx, g.cfg.ProduceTimeout)
	err = g.producer.ProduceSync(pctx, rec).FirstErr()
	cancel()
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		span.End()
		g.rejected.WithLabelValues("produce").Inc()
		g.tel.Logger.WarnContext(ctx, "registration not accepted: Kafka did not acknowledge", "err", err, "request_id", requestID)
		unavailable(w, "registration queue unavailable, retry with the same Idempotency-Key")
		return
	}
	span.End()
	w.Header().Set("Location", "/v1/users/"+reg.UserID)
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted", "request_id": requestID, "user_id": reg.UserID})
}

// loadUser is the cache's loader: the users service behind the breaker.
func (g *Gateway) loadUser(ctx context.Context, id string) ([]byte, error) {
	u, err := g.users.GetUser(ctx, id)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"id": u.GetId(), "email": u.GetEmail(), "name": u.GetName(),
		"created_at": u.GetCreatedAt().AsTime().UTC().Format(time.RFC3339)})
}

func (g *Gateway) profile(w http.ResponseWriter, r *http.Request, id string) {
	v, src, err := g.cache.Get(r.Context(), id)
	switch {
	case err == nil:
		h := w.Header()
		h["X-Cache"] = cacheHeader[src]
		h["Content-Type"] = jsonContentType
		_, _ = w.Write(v)
	case errors.Is(err, resilience.ErrNotFound):
		writeError(w, http.StatusNotFound, "user not found")
	case r.Context().Err() != nil:
		// The client left; nobody reads the answer.
	default:
		g.rejected.WithLabelValues("users").Inc()
		g.tel.Logger.WarnContext(r.Context(), "users service unavailable", "err", err)
		unavailable(w, "users service unavailable")
	}
}

// getUser serves a profile: L1, L2 (stale-while-revalidate), then users.
func (g *Gateway) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !account.ValidUserID(id) {
		writeJSON(w, http.StatusBadRequest, register.Error{Message: "validation failed",
			Fields: map[string]string{"id": "must be a lower-case UUID"}})
		return
	}
	g.profile(w, r, id)
}

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// login checks the password through the users service and opens a session.
func (g *Gateway) login(w http.ResponseWriter, r *http.Request) {
	var c credentials
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.Email == "" || c.Password == "" || len(c.Password) > 256 || len(c.Email) > 254 {
		writeJSON(w, http.StatusBadRequest, register.Error{Message: "validation failed",
			Fields: map[string]string{"email": "required, at most 254 bytes", "password": "required, at most 256 bytes"}})
		return
	}
	u, err := g.users.CheckPassword(r.Context(), account.NormalizeEmail(c.Email), c.Password)
	switch {
	case err != nil && r.Context().Err() != nil:
		return
	case err != nil:
		g.rejected.WithLabelValues("users").Inc()
		unavailable(w, "users service unavailable")
		return
	case u == nil:
		writeError(w, http.StatusUnauthorized, "wrong email or password")
		return
	}
	if err := g.sessions.Create(r.Context(), w, session.Session{UserID: u.GetId(), Email: u.GetEmail(), CreatedAt: time.Now().UTC()}); err != nil {
		unavailable(w, "session store unavailable")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"user_id": u.GetId()})
}

// me answers for the session's user on any replica.
func (g *Gateway) me(w http.ResponseWriter, r *http.Request) {
	s, err := g.sessions.Get(r.Context(), r)
	switch {
	case errors.Is(err, session.ErrNoSession):
		writeError(w, http.StatusUnauthorized, "not logged in")
		return
	case err != nil:
		unavailable(w, "session store unavailable")
		return
	}
	g.profile(w, r, s.UserID)
}

// logout deletes the session (with ?all=true every session of the user).
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) {
	err := g.sessions.Delete(r.Context(), w, r, r.URL.Query().Get("all") == "true")
	switch {
	case errors.Is(err, session.ErrNoSession):
		writeError(w, http.StatusUnauthorized, "not logged in")
	case err != nil:
		unavailable(w, "session store unavailable")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
