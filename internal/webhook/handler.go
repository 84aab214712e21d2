// Package webhook is the HTTP adapter for Sociocs webhooks: it checks the
// request (method, content type, size, signature), converts the JSON body into
// an Event and hands it to the event log, answering 2xx only once the event is
// stored.
//
// A Handler is safe for concurrent use.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/sociocs"
)

// DefaultMaxBodyBytes is the default limit on a webhook body.
const DefaultMaxBodyBytes = 1 << 20

// SignatureHeader carries the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Sociocs-Signature"

// Outcome is what became of one webhook request.
type Outcome string

// Outcomes, one per answer the handler gives.
const (
	OutcomeStored               Outcome = "stored"
	OutcomeDuplicate            Outcome = "duplicate"
	OutcomeBadRequest           Outcome = "bad_request"
	OutcomeUnauthorized         Outcome = "unauthorized"
	OutcomeTooLarge             Outcome = "too_large"
	OutcomeUnsupportedMediaType Outcome = "unsupported_media_type"
	OutcomeMethodNotAllowed     Outcome = "method_not_allowed"
	OutcomeUnavailable          Outcome = "unavailable"
)

// Result describes one webhook request, for metrics.
type Result struct {
	Outcome   Outcome
	Provider  string // provider code; "" when unknown or not parsed
	EventType string // "message", "status_update", "unknown"; "" when not parsed
	Warnings  int    // conversion warnings
	EventID   string
	// Duration is from the start of the request to the publish ack (or to
	// the error).
	Duration time.Duration
}

// Observer receives one Result per webhook request. It must not block.
type Observer interface{ ObserveWebhook(Result) }

// Options configures a Handler. Zero values mean the defaults noted.
type Options struct {
	// Secrets are the accepted HMAC keys (several during a rotation). Empty:
	// unsigned webhooks are accepted.
	Secrets [][]byte
	// MaxBodyBytes limits a body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger: default slog.Default().
	Logger *slog.Logger
	// Observer: optional.
	Observer Observer
	// Now: default time.Now; sets received_at.
	Now func() time.Time
}

// Handler serves Sociocs webhooks.
type Handler struct {
	pub  eventlog.Publisher
	opts Options
	log  *slog.Logger

	mu       sync.Mutex // protects draining and inflight
	draining bool
	inflight int           // requests admitted and not yet answered
	drained  chan struct{} // closed once draining with nothing in flight

	served atomic.Uint64 // requests answered, whatever the answer
}

// Served returns how many webhook requests the handler has answered.
func (h *Handler) Served() uint64 { return h.served.Load() }

// NewHandler returns a handler that stores webhooks through pub.
func NewHandler(pub eventlog.Publisher, opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{pub: pub, opts: opts, log: opts.Logger.With("component", "webhook"), drained: make(chan struct{})}
}

// Paths the handler is mounted at.
const (
	Path           = "/webhooks/sociocs"
	PathPerChannel = "/webhooks/sociocs/{channel_key}"
)

// Register mounts the handler on mux at Path and PathPerChannel, without a
// method in the pattern, so that the handler itself answers other methods
// with a JSON 405.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle(Path, h)
	mux.Handle(PathPerChannel, h)
}

// Drain makes the handler answer 503 with Retry-After (and Connection:
// close) to every new webhook, so that a server shutting down stops taking
// work that it might not store. Webhooks admitted before it are stored and
// answered as usual; Drained tells when the last of them has been. Drain is
// idempotent.
func (h *Handler) Drain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.draining {
		h.draining = true
		if h.inflight == 0 {
			close(h.drained)
		}
	}
}

// Drained returns a channel that is closed once Drain has been called and
// every webhook admitted before it has been answered.
func (h *Handler) Drained() <-chan struct{} { return h.drained }

// admit counts a request in flight, unless the handler is draining.
func (h *Handler) admit() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return false
	}
	h.inflight++
	return true
}

func (h *Handler) done() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inflight--
	if h.draining && h.inflight == 0 {
		close(h.drained)
	}
}

// httpError is an answer other than success.
type httpError struct {
	status  int
	code    string
	message string
	outcome Outcome
}

func (e *httpError) Error() string { return e.message }

func fail(status int, outcome Outcome, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, message: fmt.Sprintf(format, args...), outcome: outcome}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	admitted := h.admit()
	if admitted {
		defer h.done()
	}
	var tracker *readTracker
	if expectsContinue(r) {
		tracker = &readTracker{ReadCloser: r.Body}
		r.Body = tracker
	}
	res := Result{}
	ev, ack, herr := h.serve(r, admitted, &res)
	res.Duration = time.Since(start)
	channel := r.PathValue("channel_key")
	if herr != nil {
		if r.Context().Err() != nil && herr.outcome == OutcomeUnavailable {
			// The sender gave up; nobody reads the answer.
			h.log.Warn("webhook abandoned by the sender", "channel_key", channel, "event_id", res.EventID)
		}
		res.Outcome = herr.outcome
		if herr.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		if herr.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		if !admitted {
			// The sender's next attempt had better open a new connection,
			// which a load balancer can send to another instance. The
			// body is still read (briefly: the server is stopping), so
			// that the answer is not lost to a reset.
			w.Header().Set("Connection", "close")
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(drainReadTime))
		}
		if !h.discardBody(r, tracker) {
			w.Header().Set("Connection", "close")
		}
		writeJSON(w, herr.status, map[string]any{"error": map[string]string{"code": herr.code, "message": herr.message}})
		level := slog.LevelWarn
		switch {
		case !admitted:
			level = slog.LevelInfo // a shutdown, not a fault
		case herr.status >= 500:
			level = slog.LevelError
		}
		h.log.Log(r.Context(), level, "webhook rejected", "outcome", herr.outcome, "status", herr.status,
			"error", herr.message, "channel_key", channel, "event_id", res.EventID, "duration", res.Duration)
	} else {
		res.Outcome = OutcomeStored
		if ack.Duplicate {
			res.Outcome = OutcomeDuplicate
		}
		writeStored(w, ev.GetId(), ack)
		attrs := []slog.Attr{slog.Any("outcome", res.Outcome), slog.String("event_id", ev.GetId()), slog.Uint64("sequence", ack.Sequence),
			slog.String("type", res.EventType), slog.String("provider", res.Provider), slog.String("channel_key", ev.GetChannelKey()),
			slog.Duration("duration", res.Duration)}
		if n := len(ev.GetConversionWarnings()); n > 0 {
			// What could not be mapped is named, never its value: the body
			// stays out of the logs. The value is in the event's raw_json.
			h.log.LogAttrs(context.Background(), slog.LevelWarn, "webhook stored with conversion warnings", append(attrs, slog.Any("warnings", ev.GetConversionWarnings()))...)
		} else {
			h.log.LogAttrs(context.Background(), slog.LevelInfo, "webhook stored", attrs...)
		}
	}
	if h.opts.Observer != nil {
		h.opts.Observer.ObserveWebhook(res)
	}
	h.served.Add(1)
}

// serve handles one request; admitted is false when the handler is draining.
func (h *Handler) serve(r *http.Request, admitted bool, res *Result) (*eventsv1.Event, eventlog.Ack, *httpError) {
	if r.Method != http.MethodPost {
		return nil, eventlog.Ack{}, fail(http.StatusMethodNotAllowed, OutcomeMethodNotAllowed, "method_not_allowed",
			"method %s is not allowed: webhooks are POSTed", r.Method)
	}
	if !admitted {
		return nil, eventlog.Ack{}, fail(http.StatusServiceUnavailable, OutcomeUnavailable, "unavailable",
			"the server is shutting down; retry shortly")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return nil, eventlog.Ack{}, fail(http.StatusUnsupportedMediaType, OutcomeUnsupportedMediaType, "unsupported_media_type",
			"content type %q is not JSON: send application/json", ct)
	}
	channel := r.PathValue("channel_key")
	if channel != "" || strings.HasPrefix(r.URL.Path, Path+"/") {
		if err := checkChannelKey(channel); err != nil {
			return nil, eventlog.Ack{}, fail(http.StatusBadRequest, OutcomeBadRequest, "invalid_channel_key", "channel key in the URL: %v", err)
		}
	}
	max := h.opts.MaxBodyBytes
	if r.ContentLength > max {
		return nil, eventlog.Ack{}, tooLarge(max)
	}
	body, err := readBody(r.Body, max+1, r.ContentLength)
	if err != nil {
		return nil, eventlog.Ack{}, fail(http.StatusBadRequest, OutcomeBadRequest, "unreadable_body", "reading the body failed: %v", err)
	}
	if int64(len(body)) > max {
		return nil, eventlog.Ack{}, tooLarge(max)
	}
	if len(h.opts.Secrets) > 0 {
		sig := r.Header.Get(SignatureHeader)
		if sig == "" {
			return nil, eventlog.Ack{}, fail(http.StatusUnauthorized, OutcomeUnauthorized, "missing_signature",
				"the %s header is missing: this endpoint accepts signed webhooks only", SignatureHeader)
		}
		if !VerifySignature(body, sig, h.opts.Secrets) {
			return nil, eventlog.Ack{}, fail(http.StatusUnauthorized, OutcomeUnauthorized, "invalid_signature",
				"the %s header does not match the body for any configured secret", SignatureHeader)
		}
	}
	if len(body) == 0 {
		return nil, eventlog.Ack{}, fail(http.StatusBadRequest, OutcomeBadRequest, "empty_body", "the body is empty: expected a JSON object")
	}
	ev, err := Convert(body, channel, h.opts.Now())
	if err != nil {
		return nil, eventlog.Ack{}, refusal(err)
	}
	res.EventID = ev.GetId()
	res.Provider = ev.GetProviderCode()
	res.EventType = eventTypeName(ev.GetType())
	res.Warnings = len(ev.GetConversionWarnings())
	ack, err := h.pub.Publish(r.Context(), ev)
	if errors.Is(err, eventlog.ErrTooLarge) {
		h.log.Error("a webhook is too large for the event log", "event_id", ev.GetId(), "body_bytes", len(body), "err", err)
		return ev, eventlog.Ack{}, fail(http.StatusRequestEntityTooLarge, OutcomeTooLarge, "event_too_large",
			"the event made from this body (%d bytes) is larger than the event log accepts", len(body))
	}
	if errors.Is(err, eventlog.ErrInvalidEvent) {
		h.log.Error("the event log refused a webhook's event", "event_id", ev.GetId(), "err", err)
		return ev, eventlog.Ack{}, fail(http.StatusBadRequest, OutcomeBadRequest, "invalid_event",
			"the event made from this body cannot be stored: %v", err)
	}
	if err != nil {
		h.log.Error("storing a webhook failed", "event_id", ev.GetId(), "err", err)
		return ev, eventlog.Ack{}, fail(http.StatusServiceUnavailable, OutcomeUnavailable, "unavailable",
			"the event could not be stored; retry shortly")
	}
	return ev, ack, nil
}

// refusal is the 400 for a body Convert refused, with a code that says which
// rule it broke and a message that says where.
func refusal(err error) *httpError {
	msg := "the body " + strings.TrimPrefix(err.Error(), "webhook: body ")
	code := "not_an_object"
	var syn *SyntaxError
	var field *FieldError
	switch {
	case errors.As(err, &syn):
		code, msg = "invalid_json", syn.Error()
	case errors.Is(err, ErrNotUTF8):
		code = "invalid_utf8"
	case errors.Is(err, ErrTooDeep):
		code = "too_deep"
	case errors.Is(err, ErrDuplicateKey):
		code = "duplicate_key"
	case errors.As(err, &field):
		code = "invalid_" + field.Field
	}
	return fail(http.StatusBadRequest, OutcomeBadRequest, code, "%s", msg)
}

// MaxDiscardBytes is how much of a refused body the handler reads and
// throws away, past --webhook-max-body, before it answers.
//
// Many HTTP clients (Python's urllib among them) write the whole body before
// they read the answer. Were the server to answer and close with their body
// unread, the kernel would reset the connection, and such a client would
// see a reset instead of its 413 or 503. Reading the rest first lets the
// answer through; past this bound the connection is closed instead.
const MaxDiscardBytes = 16 << 20

// drainReadTime bounds reading the body of a webhook refused because the
// server is shutting down: the shutdown must not wait on a slow sender.
const drainReadTime = 2 * time.Second

// discardBody reads what is left of a refused request's body, within
// MaxDiscardBytes past the limit, and reports whether it all was read, so
// that the connection can serve another request. tracker is non-nil when
// the client sent Expect: 100-continue: a body not asked for yet is not
// sent at all, and the connection is closed rather than reading it.
func (h *Handler) discardBody(r *http.Request, tracker *readTracker) bool {
	switch {
	case r.ContentLength == 0:
		return true
	case tracker != nil && !tracker.read:
		return false
	case r.ContentLength > h.opts.MaxBodyBytes+MaxDiscardBytes:
		return false // more than can be read: closing at once wastes less
	}
	_, err := io.CopyN(io.Discard, r.Body, MaxDiscardBytes+1)
	return err == io.EOF
}

// readTracker records whether a body has been read from, which, for a
// request with Expect: 100-continue, tells whether the client was asked
// for it.
type readTracker struct {
	io.ReadCloser
	read bool
}

func (t *readTracker) Read(p []byte) (int, error) {
	t.read = true
	return t.ReadCloser.Read(p)
}

func expectsContinue(r *http.Request) bool {
	return r.ProtoAtLeast(1, 1) && strings.EqualFold(r.Header.Get("Expect"), "100-continue")
}

func tooLarge(max int64) *httpError {
	return fail(http.StatusRequestEntityTooLarge, OutcomeTooLarge, "body_too_large", "the body is larger than the limit of %d bytes", max)
}

func eventTypeName(t eventsv1.EventType) string {
	if code := sociocs.EventTypes.Code(t); code != "" {
		return code
	}
	return "unknown"
}

// isJSON accepts application/json and any */*+json, with parameters.
func isJSON(contentType string) bool {
	if contentType == "application/json" {
		return true // what senders send; ParseMediaType allocates
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeStored answers a stored webhook with what writeJSON would write for
// {"id", "sequence", "duplicate"}, without building a map to encode.
func writeStored(w http.ResponseWriter, id string, ack eventlog.Ack) {
	if !isPlainASCII(id) {
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "sequence": ack.Sequence, "duplicate": ack.Duplicate})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	b := make([]byte, 0, 64+len(id))
	b = append(b, `{"duplicate":`...)
	b = strconv.AppendBool(b, ack.Duplicate)
	b = append(b, `,"id":"`...)
	b = append(b, id...)
	b = append(b, `","sequence":`...)
	b = strconv.AppendUint(b, ack.Sequence, 10)
	b = append(b, "}\n"...)
	w.Write(b)
}

// isPlainASCII reports whether s is a JSON string's content as it is: event
// ids ("ev_" and hex digits) always are.
func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// readBody reads r up to limit bytes, as io.ReadAll(io.LimitReader(r, limit))
// does, into a buffer sized from the request's Content-Length when it is
// known, so that the usual body is read without growing the buffer.
func readBody(r io.Reader, limit, contentLength int64) ([]byte, error) {
	if contentLength < 0 || contentLength >= limit {
		return io.ReadAll(io.LimitReader(r, limit))
	}
	// One byte more than announced, so that the read that finds EOF has
	// room and a body longer than announced is still read up to limit.
	b := make([]byte, 0, contentLength+1)
	lr := io.LimitReader(r, limit)
	for {
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow, as io.ReadAll would
		}
	}
}
