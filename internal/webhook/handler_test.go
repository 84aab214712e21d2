package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// memLog is an in-memory Publisher that dedupes by id, like the real log.
type memLog struct {
	mu     sync.Mutex
	events []*eventsv1.Event
	byID   map[string]uint64
	err    error
}

func (m *memLog) Publish(_ context.Context, ev *eventsv1.Event) (eventlog.Ack, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return eventlog.Ack{}, m.err
	}
	if m.byID == nil {
		m.byID = map[string]uint64{}
	}
	if seq, ok := m.byID[ev.GetId()]; ok {
		return eventlog.Ack{Sequence: seq, Duplicate: true}, nil
	}
	m.events = append(m.events, ev)
	m.byID[ev.GetId()] = uint64(len(m.events))
	return eventlog.Ack{Sequence: uint64(len(m.events))}, nil
}

type results struct {
	mu  sync.Mutex
	all []Result
}

func (r *results) ObserveWebhook(res Result) {
	r.mu.Lock()
	r.all = append(r.all, res)
	r.mu.Unlock()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newServer(t *testing.T, opts Options) (*httptest.Server, *memLog, *results) {
	t.Helper()
	pub := &memLog{}
	obs := &results{}
	opts.Logger = quiet()
	opts.Observer = obs
	mux := http.NewServeMux()
	NewHandler(pub, opts).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, pub, obs
}

type reply struct {
	status  int
	header  http.Header
	body    map[string]any
	errCode string
	errMsg  string
}

func do(t *testing.T, method, url string, body []byte, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q, want application/json", method, url, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r.body); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, url, err)
	}
	if e, ok := r.body["error"].(map[string]any); ok {
		r.errCode, _ = e["code"].(string)
		r.errMsg, _ = e["message"].(string)
	}
	return r
}

func TestHandlerRejects(t *testing.T) {
	secret := []byte("My Shared Secret")
	srv, pub, obs := newServer(t, Options{MaxBodyBytes: 4096, Secrets: [][]byte{secret}})
	good := readSample(t, "status_sent.json")
	signed := func(b []byte) map[string]string { return map[string]string{SignatureHeader: Sign(b, secret)} }
	seed := readSample(t, "invalid_seed_example.json")
	dup := []byte(`{"message_id":"m","event":"message","contact":{"name":"a","name":"b"}}`)
	latin1 := []byte("{\"message_id\":\"m\",\"text\":\"caf\xe9\"}")
	deep := []byte(`{"event_data":` + strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 101))
	longKey := []byte(`{"event":"message","channel_key":"twlo_` + strings.Repeat("x", 300) + `"}`)
	ctlID := []byte(`{"event":"message","message_id":"a\u0000b"}`)
	tests := []struct {
		name    string
		method  string
		path    string
		body    []byte
		header  map[string]string
		status  int
		code    string
		msg     string
		outcome Outcome
	}{
		{"GET", http.MethodGet, "/webhooks/sociocs", nil, nil, 405, "method_not_allowed", "method GET is not allowed", OutcomeMethodNotAllowed},
		{"PUT per channel", http.MethodPut, "/webhooks/sociocs/twlo_1", good, signed(good), 405, "method_not_allowed", "PUT", OutcomeMethodNotAllowed},
		{"form body", http.MethodPost, "/webhooks/sociocs", good, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", "is not JSON", OutcomeUnsupportedMediaType},
		{"too large by length", http.MethodPost, "/webhooks/sociocs", make([]byte, 4097), nil, 413, "body_too_large", "limit of 4096 bytes", OutcomeTooLarge},
		{"missing signature", http.MethodPost, "/webhooks/sociocs", good, nil, 401, "missing_signature", "X-Sociocs-Signature header is missing", OutcomeUnauthorized},
		{"wrong signature", http.MethodPost, "/webhooks/sociocs", good, map[string]string{SignatureHeader: Sign(good, []byte("other"))}, 401, "invalid_signature", "does not match", OutcomeUnauthorized},
		{"garbage signature", http.MethodPost, "/webhooks/sociocs", good, map[string]string{SignatureHeader: "zz"}, 401, "invalid_signature", "does not match", OutcomeUnauthorized},
		{"signature of another body", http.MethodPost, "/webhooks/sociocs", good, signed([]byte("{}")), 401, "invalid_signature", "does not match", OutcomeUnauthorized},
		{"not JSON", http.MethodPost, "/webhooks/sociocs", seed, signed(seed), 400, "invalid_json", "line 23, column 3 (byte 609)", OutcomeBadRequest},
		{"not an object", http.MethodPost, "/webhooks/sociocs", []byte(`[{"event":"message"}]`), signed([]byte(`[{"event":"message"}]`)), 400, "not_an_object", "is not a JSON object: it is an array", OutcomeBadRequest},
		{"empty", http.MethodPost, "/webhooks/sociocs", []byte{}, signed([]byte{}), 400, "empty_body", "empty", OutcomeBadRequest},
		{"duplicate key", http.MethodPost, "/webhooks/sociocs", dup, signed(dup), 400, "duplicate_key", `the body has duplicate key "name" in contact`, OutcomeBadRequest},
		{"bad channel key", http.MethodPost, "/webhooks/sociocs/a%20b", good, signed(good), 400, "invalid_channel_key", "not printable ASCII", OutcomeBadRequest},
		{"not UTF-8", http.MethodPost, "/webhooks/sociocs", latin1, signed(latin1), 400, "invalid_utf8", "the body is not valid UTF-8: byte 29 (0xe9)", OutcomeBadRequest},
		{"too deep", http.MethodPost, "/webhooks/sociocs", deep, signed(deep), 400, "too_deep", "the body nests objects and arrays deeper than 64 levels, at event_data.a.a.", OutcomeBadRequest},
		{"channel key in the body", http.MethodPost, "/webhooks/sociocs/twlo_1", longKey, signed(longKey), 400, "invalid_channel_key", "the body has an invalid channel_key: 305 bytes, longer than 256", OutcomeBadRequest},
		{"message id", http.MethodPost, "/webhooks/sociocs", ctlID, signed(ctlID), 400, "invalid_message_id", "the body has an invalid message_id: byte 1 is a control character", OutcomeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs.mu.Lock()
			obs.all = nil
			obs.mu.Unlock()
			r := do(t, tt.method, srv.URL+tt.path, tt.body, tt.header)
			if r.status != tt.status || r.errCode != tt.code || !strings.Contains(r.errMsg, tt.msg) {
				t.Fatalf("got %d %q %q, want %d %q containing %q", r.status, r.errCode, r.errMsg, tt.status, tt.code, tt.msg)
			}
			if tt.status == 405 && r.header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
			if len(obs.all) != 1 || obs.all[0].Outcome != tt.outcome {
				t.Errorf("observer saw %+v, want one %s", obs.all, tt.outcome)
			}
		})
	}
	if len(pub.events) != 0 {
		t.Fatalf("rejected webhooks were published: %d", len(pub.events))
	}
}

func TestHandlerTooLargeWhileReading(t *testing.T) {
	srv, pub, _ := newServer(t, Options{MaxBodyBytes: 100})
	// No Content-Length: the limit is enforced while reading.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/sociocs", io.MultiReader(strings.NewReader(`{"text":"`), strings.NewReader(strings.Repeat("x", 200)+`"}`)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || len(pub.events) != 0 {
		t.Fatalf("status %d, %d published; want 413 and nothing", resp.StatusCode, len(pub.events))
	}
}

func TestHandlerAcceptsTextJustUnderTheLimit(t *testing.T) {
	const limit = 64 << 10
	srv, pub, _ := newServer(t, Options{MaxBodyBytes: limit})
	prefix := `{"message_id":"big","event":"message","provider":"twlo","channel_key":"twlo_1","text":"`
	suffix := `"}`
	text := strings.Repeat("é", (limit-len(prefix)-len(suffix))/2) // 2 bytes each
	body := []byte(prefix + text + suffix)
	if len(body) > limit || len(body) < limit-1 {
		t.Fatalf("test body is %d bytes, want just under %d", len(body), limit)
	}
	if r := do(t, http.MethodPost, srv.URL+"/webhooks/sociocs", body, nil); r.status != 200 {
		t.Fatalf("just under the limit: %d %v", r.status, r.body)
	}
	if got := pub.events[0].GetMessage().GetText(); got != text {
		t.Fatalf("text of %d bytes came back as %d bytes", len(text), len(got))
	}
	over := append([]byte(prefix+text+"xx"), suffix...)
	if r := do(t, http.MethodPost, srv.URL+"/webhooks/sociocs", over, nil); r.status != 413 {
		t.Fatalf("just over the limit: %d", r.status)
	}
}

func TestHandlerStores(t *testing.T) {
	secrets := [][]byte{[]byte("old secret"), []byte("new secret")}
	srv, pub, obs := newServer(t, Options{Secrets: secrets})
	body := readSample(t, "message_twlo.json")
	for i, secret := range secrets {
		r := do(t, http.MethodPost, srv.URL+"/webhooks/sociocs", body, map[string]string{SignatureHeader: strings.ToUpper(Sign(body, secret))})
		wantDup := i == 1
		if r.status != 200 || r.body["sequence"] != float64(1) || r.body["duplicate"] != wantDup || r.body["id"] != pub.events[0].GetId() {
			t.Fatalf("signed with secret %d: %d %v", i, r.status, r.body)
		}
	}
	if len(pub.events) != 1 {
		t.Fatalf("a retried webhook was stored %d times", len(pub.events))
	}
	got := obs.all
	if len(got) != 2 || got[0].Outcome != OutcomeStored || got[1].Outcome != OutcomeDuplicate ||
		got[0].Provider != "twlo" || got[0].EventType != "message" || got[0].EventID != pub.events[0].GetId() || got[0].Warnings != 0 {
		t.Fatalf("observer saw %+v", got)
	}

	// Status updates through the per-channel URL get the channel.
	r := do(t, http.MethodPost, srv.URL+"/webhooks/sociocs/gswa_919800000000", readSample(t, "status_delivered.json"),
		map[string]string{SignatureHeader: Sign(readSample(t, "status_delivered.json"), secrets[1]), "Content-Type": "application/json; charset=utf-8"})
	if r.status != 200 {
		t.Fatalf("status update: %d %v", r.status, r.body)
	}
	ev := pub.events[1]
	if ev.GetChannelKey() != "gswa_919800000000" || ev.GetProvider() != eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP {
		t.Fatalf("status update stored as %v", ev)
	}
}

func TestHandlerWithoutSecretAcceptsUnsignedAndNoContentType(t *testing.T) {
	srv, pub, _ := newServer(t, Options{})
	if r := do(t, http.MethodPost, srv.URL+"/webhooks/sociocs", readSample(t, "status_sent.json"), map[string]string{"Content-Type": ""}); r.status != 200 {
		t.Fatalf("unsigned, no content type: %d %v", r.status, r.body)
	}
	if r := do(t, http.MethodPost, srv.URL+"/webhooks/sociocs", []byte(`{"event":"x"}`), map[string]string{"Content-Type": "application/vnd.sociocs+json"}); r.status != 200 {
		t.Fatalf("+json content type: %d %v", r.status, r.body)
	}
	if len(pub.events) != 2 {
		t.Fatalf("%d stored, want 2", len(pub.events))
	}
}

func TestHandlerUnavailableWhenTheLogFails(t *testing.T) {
	srv, pub, obs := newServer(t, Options{})
	pub.err = errors.New("nats: no responders")
	r := do(t, http.MethodPost, srv.URL+"/webhooks/sociocs", readSample(t, "status_sent.json"), nil)
	if r.status != 503 || r.header.Get("Retry-After") == "" || r.errCode != "unavailable" || strings.Contains(r.errMsg, "nats") {
		t.Fatalf("got %d %v (Retry-After %q); want 503 with Retry-After and no internal detail", r.status, r.body, r.header.Get("Retry-After"))
	}
	if obs.all[0].Outcome != OutcomeUnavailable {
		t.Fatalf("observer saw %+v", obs.all)
	}
}

// TestHandlerRefusesWhatTheLogRefuses: an event the log refuses as it is
// gets a 400, not a 503 that its sender would retry for ever.
func TestHandlerRefusesWhatTheLogRefuses(t *testing.T) {
	srv, pub, obs := newServer(t, Options{})
	pub.err = fmt.Errorf("%w: eventlog: its subject would be 2000 bytes", eventlog.ErrInvalidEvent)
	r := do(t, http.MethodPost, srv.URL+"/webhooks/sociocs", readSample(t, "status_sent.json"), nil)
	if r.status != 400 || r.errCode != "invalid_event" || r.header.Get("Retry-After") != "" {
		t.Fatalf("got %d %v; want 400 invalid_event", r.status, r.body)
	}
	if obs.all[0].Outcome != OutcomeBadRequest {
		t.Fatalf("observer saw %+v", obs.all)
	}
}

// gatedLog is a Publisher whose Publish waits for release, to hold a webhook
// in flight.
type gatedLog struct {
	memLog
	entered chan struct{} // one value per Publish that has started
	release chan struct{} // closed to let every Publish finish
}

func (g *gatedLog) Publish(ctx context.Context, ev *eventsv1.Event) (eventlog.Ack, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.memLog.Publish(ctx, ev)
}

func TestHandlerDrain(t *testing.T) {
	pub := &gatedLog{entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := NewHandler(pub, Options{Logger: quiet()})
	post := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhooks/sociocs", bytes.NewReader(readSample(t, "status_sent.json"))))
		return rec
	}
	inflight := make(chan *httptest.ResponseRecorder)
	go func() { inflight <- post() }()
	<-pub.entered // admitted and being stored

	h.Drain()
	h.Drain() // idempotent
	select {
	case <-h.Drained():
		t.Fatal("Drained closed with a webhook in flight")
	default:
	}
	rec := post()
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || rec.Header().Get("Connection") != "close" {
		t.Fatalf("draining handler answered %d %v, want 503 with Retry-After and Connection: close", rec.Code, rec.Header())
	}

	close(pub.release)
	if rec := <-inflight; rec.Code != 200 {
		t.Fatalf("the webhook in flight when draining began got %d %s, want 200", rec.Code, rec.Body)
	}
	<-h.Drained() // the test's deadline bounds this
	if len(pub.events) != 1 {
		t.Fatalf("stored %d events, want only the one in flight", len(pub.events))
	}
}

func TestHandlerDrainedAtOnceWhenIdle(t *testing.T) {
	h := NewHandler(&memLog{}, Options{Logger: quiet()})
	h.Drain()
	select {
	case <-h.Drained():
	default:
		t.Fatal("Drained not closed by Drain with nothing in flight")
	}
}

func TestHandlerLogsNoSecretsOrBodies(t *testing.T) {
	var logs bytes.Buffer
	secret := []byte("s3cr3t-value")
	pub := &memLog{}
	h := NewHandler(pub, Options{Secrets: [][]byte{secret}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	body := []byte(`{"message_id":"m","event":"message","text":"private words","contact":{"extra_fields":"nope"}}`)
	for _, sig := range []string{Sign(body, secret), Sign(body, []byte("x"))} {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/sociocs", bytes.NewReader(body))
		req.Header.Set(SignatureHeader, sig)
		h.ServeHTTP(httptest.NewRecorder(), req)
		for _, leak := range []string{string(secret), sig, "private words"} {
			if strings.Contains(logs.String(), leak) {
				t.Fatalf("log contains %q:\n%s", leak, logs.String())
			}
		}
	}
	if !strings.Contains(logs.String(), "contact.extra_fields") {
		t.Fatalf("the conversion warning was not logged:\n%s", logs.String())
	}
}

func TestSignature(t *testing.T) {
	// Sociocs's published test vector.
	const want = "a52954ef969a496aeed237f48b03c6df7ea43cd0f6e595d06dfe7a8b14b5d891"
	body, secret := []byte("Hello, World!"), []byte("My Shared Secret")
	if got := Sign(body, secret); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	tests := []struct {
		sig     string
		secrets [][]byte
		ok      bool
	}{
		{want, [][]byte{secret}, true},
		{strings.ToUpper(want), [][]byte{secret}, true},
		{want, [][]byte{[]byte("other"), secret}, true},
		{want, [][]byte{[]byte("other")}, false},
		{want[:62], [][]byte{secret}, false},
		{"not hex", [][]byte{secret}, false},
		{"", [][]byte{secret}, false},
	}
	for _, tt := range tests {
		if got := VerifySignature(body, tt.sig, tt.secrets); got != tt.ok {
			t.Errorf("VerifySignature(%q, %d secrets) = %v, want %v", tt.sig, len(tt.secrets), got, tt.ok)
		}
	}
}

// nopPublisher acknowledges without storing, to measure the handler alone.
type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, *eventsv1.Event) (eventlog.Ack, error) {
	return eventlog.Ack{Sequence: 1}, nil
}

func BenchmarkHandler(b *testing.B) {
	h := NewHandler(nopPublisher{}, Options{Logger: quiet()})
	body := readSample(b, "message_twlo.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/webhooks/sociocs", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkBareJSON is the baseline the ingest target is measured against: a
// handler that only parses the JSON.
func BenchmarkBareJSON(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(200)
	})
	body := readSample(b, "message_twlo.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhooks/sociocs", bytes.NewReader(body)))
	}
}

func TestWriteStoredMatchesWriteJSON(t *testing.T) {
	for _, tt := range []struct {
		id  string
		ack eventlog.Ack
	}{
		{EventID("m", "message", "", nil), eventlog.Ack{Sequence: 1}},
		{EventID("m", "message", "", nil), eventlog.Ack{Sequence: 1<<64 - 1, Duplicate: true}},
		{"<odd \"id\">\u2028", eventlog.Ack{Sequence: 7}},
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		writeJSON(want, http.StatusOK, map[string]any{"id": tt.id, "sequence": tt.ack.Sequence, "duplicate": tt.ack.Duplicate})
		writeStored(got, tt.id, tt.ack)
		if got.Code != want.Code || got.Body.String() != want.Body.String() || fmt.Sprint(got.Header()) != fmt.Sprint(want.Header()) {
			t.Errorf("writeStored(%q, %+v) = %d %v %q, want %d %v %q", tt.id, tt.ack,
				got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}
