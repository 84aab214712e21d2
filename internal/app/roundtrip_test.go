package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

// The invariant every webhook path keeps: a webhook that gets a 2xx can be
// read back, exactly, by every reader (GetEvent by sequence and by id,
// ListEvents, a gRPC stream, an NDJSON stream and an SSE stream, over gRPC
// and REST), and a webhook that does not is refused with a 4xx, after which
// the next good webhook is stored and delivered. TestEveryReaderReadsWhat
// WasAcknowledged checks it for the bodies that once broke it;
// FuzzWebhookPath for whatever the fuzzer makes.

// readers are one reader of each kind, open from before the first webhook:
// each must deliver every event stored, in order.
type readers struct {
	grpc   grpc.ServerStreamingClient[eventsv1.StreamEventsResponse]
	ndjson *bufio.Scanner
	sse    *bufio.Scanner
}

func (s *server) openReaders(t testing.TB) *readers {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g, err := s.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	r := &readers{grpc: g}
	for _, accept := range []string{"application/x-ndjson", "text/event-stream"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/v1/events:stream", nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/events:stream (%s): %s", accept, resp.Status)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		if accept == "text/event-stream" {
			r.sse = sc
		} else {
			r.ndjson = sc
		}
	}
	// Each stream says it is live with a heartbeat first: once all three
	// have, no event can slip past any of them.
	if m, err := g.Recv(); err != nil || m.GetHeartbeat() == nil {
		t.Fatalf("the gRPC stream began with %v, %v; want a heartbeat", m, err)
	}
	if !r.ndjson.Scan() || !strings.Contains(r.ndjson.Text(), `"heartbeat"`) {
		t.Fatalf("the NDJSON stream began with %q, %v", r.ndjson.Text(), r.ndjson.Err())
	}
	if ev, data := nextSSE(t, r.sse); ev != "heartbeat" {
		t.Fatalf("the SSE stream began with %q %s", ev, data)
	}
	return r
}

// nextSSE returns the type and data of the next Server-Sent Event.
func nextSSE(t testing.TB, sc *bufio.Scanner) (event string, data []byte) {
	t.Helper()
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" && data != nil:
			return event, data
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: ")...)
		}
	}
	t.Fatalf("the SSE stream ended: %v", sc.Err())
	return "", nil
}

// next returns the next event of each stream, in the order gRPC, NDJSON,
// SSE, passing over heartbeats.
func (r *readers) next(t testing.TB) map[string]*eventsv1.Event {
	t.Helper()
	out := map[string]*eventsv1.Event{}
	for out["gRPC stream"] == nil {
		m, err := r.grpc.Recv()
		if err != nil {
			t.Fatalf("gRPC stream: %v", err)
		}
		out["gRPC stream"] = m.GetEvent()
	}
	for out["NDJSON stream"] == nil {
		if !r.ndjson.Scan() {
			t.Fatalf("NDJSON stream ended: %v", r.ndjson.Err())
		}
		var line struct{ Result, Error json.RawMessage }
		if err := json.Unmarshal(r.ndjson.Bytes(), &line); err != nil || line.Error != nil {
			t.Fatalf("NDJSON stream line %.300s: %v", r.ndjson.Text(), err)
		}
		m := new(eventsv1.StreamEventsResponse)
		if err := protojson.Unmarshal(line.Result, m); err != nil {
			t.Fatalf("NDJSON stream line %.300s: %v", line.Result, err)
		}
		out["NDJSON stream"] = m.GetEvent()
	}
	for out["SSE stream"] == nil {
		typ, data := nextSSE(t, r.sse)
		switch typ {
		case "heartbeat":
		case "":
			ev := new(eventsv1.Event)
			if err := protojson.Unmarshal(data, ev); err != nil {
				t.Fatalf("SSE event %.300s: %v", data, err)
			}
			out["SSE stream"] = ev
		default:
			t.Fatalf("SSE stream sent %q: %.300s", typ, data)
		}
	}
	return out
}

// getJSON decodes the REST answer at path into m.
func (s *server) getJSON(t testing.TB, path string, m proto.Message) {
	t.Helper()
	resp, err := http.Get(s.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %.300s", path, resp.Status, b)
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		t.Fatalf("GET %s: %v in %.300s", path, err, b)
	}
}

// received is the time the test's conversions are made at: received_at is
// the server's, and compared apart.
var received = time.Unix(0, 0)

// roundTrip posts body to path and checks the invariant for it; it reports
// whether the webhook was stored as a new event.
func (s *server) roundTrip(t *testing.T, r *readers, path string, body []byte) (stored bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.Post(s.base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("a webhook got %s: %.300s; want 200, or 400 or 413 for a body refused", resp.Status, answer)
		}
		return false
	}
	var ack struct {
		ID        string `json:"id"`
		Sequence  uint64 `json:"sequence"`
		Duplicate bool   `json:"duplicate"`
	}
	if err := json.Unmarshal(answer, &ack); err != nil {
		t.Fatalf("the 200's body %q: %v", answer, err)
	}
	got := map[string]*eventsv1.Event{}
	for name, req := range map[string]*eventsv1.GetEventRequest{"GetEvent by sequence": {Sequence: ack.Sequence}, "GetEvent by id": {Id: ack.ID}} {
		resp, err := s.client.GetEvent(ctx, req)
		if err != nil {
			t.Fatalf("%s of an acknowledged event (%d, %s): %v", name, ack.Sequence, ack.ID, err)
		}
		got[name] = resp.GetEvent()
	}
	bySeq := got["GetEvent by sequence"]
	if bySeq.GetId() != ack.ID {
		t.Fatalf("GetEvent(%d) has id %s, the webhook's answer %s", ack.Sequence, bySeq.GetId(), ack.ID)
	}
	if ack.Duplicate {
		return false // stored before: its readers read it then
	}
	key := strings.TrimPrefix(strings.TrimPrefix(path, webhook.Path), "/")
	want, err := webhook.Convert(body, key, received)
	if err != nil {
		t.Fatalf("acknowledged, but Convert refuses it: %v", err)
	}
	want.Sequence = ack.Sequence
	want.ReceivedAt = bySeq.GetReceivedAt()
	list, err := s.client.ListEvents(ctx, &eventsv1.ListEventsRequest{Order: eventsv1.Order_ORDER_NEWEST_FIRST, PageSize: 1})
	if err != nil || len(list.GetEvents()) != 1 {
		t.Fatalf("ListEvents: %v, %v", list, err)
	}
	got["ListEvents"] = list.GetEvents()[0]
	for name, p := range map[string]string{"REST GetEvent by sequence": "/v1/events/" + strconv.FormatUint(ack.Sequence, 10), "REST GetEvent by id": "/v1/events/by-id/" + ack.ID} {
		resp := new(eventsv1.GetEventResponse)
		s.getJSON(t, p, resp)
		got[name] = resp.GetEvent()
	}
	restList := new(eventsv1.ListEventsResponse)
	s.getJSON(t, "/v1/events?order=ORDER_NEWEST_FIRST&page_size=1", restList)
	if len(restList.GetEvents()) != 1 {
		t.Fatalf("REST ListEvents gave %d events", len(restList.GetEvents()))
	}
	got["REST ListEvents"] = restList.GetEvents()[0]
	for name, ev := range r.next(t) {
		got[name] = ev
	}
	for name, ev := range got {
		if !bytes.Equal(ev.GetRawJson(), body) {
			t.Fatalf("%s: raw_json is not the body", name)
		}
		if !proto.Equal(ev, want) {
			t.Fatalf("%s read back another event:\n got %.1000v\nwant %.1000v", name, ev, want)
		}
	}
	return true
}

// goodWebhooks counts the good webhooks posted after a refusal, so that each
// has a message id of its own.
var goodWebhooks atomic.Int64

// roundTripNext posts a good webhook after a refused one: it must be stored
// and delivered.
func (s *server) roundTripNext(t *testing.T, r *readers) {
	t.Helper()
	body := fmt.Appendf(nil, `{"message_id":"next-%d","event":"message","provider":"twlo","channel_key":"twlo_1","text":"after a refusal"}`, goodWebhooks.Add(1))
	if !s.roundTrip(t, r, webhook.Path, body) {
		t.Fatal("the good webhook after a refused one was not stored")
	}
}

// bodies the service once acknowledged and then failed to read back, or
// that cost it its connection to NATS; and others at the bounds.
func hostileBodies(t testing.TB) []struct {
	name, path string
	body       string
	stored     bool
} {
	deep := func(field string, d int) string {
		return `{"message_id":"p` + field + strconv.Itoa(d) + `","event":"status_update","event_data":{"status":"failed","` + field + `":` +
			strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d) + `}}`
	}
	var many strings.Builder
	many.WriteString(`{"message_id":"many","event":"message","file_urls":[`)
	for i := range 100_000 {
		if i > 0 {
			many.WriteByte(',')
		}
		many.WriteString("1")
	}
	many.WriteString(`],"timestamp":253402300800000}`)
	numbers := `{"message_id":"numbers","event":"status_update","event_data":{"status":"failed","error":[` + strings.Repeat("0,", 150_000) + `0]}}`
	extra := `{"message_id":"extra","event":"message","contact":{"extra_fields":"` + strings.Repeat(`{\"a\":`, 3000) + "1" + strings.Repeat("}", 3000) + `"}}`
	sample, err := os.ReadFile(filepath.Join("..", "webhook", "testdata", "status_failed.json"))
	if err != nil {
		t.Fatal(err)
	}
	return []struct {
		name, path string
		body       string
		stored     bool
	}{
		{"a sample", "/webhooks/sociocs/twlo_16311113333", string(sample), true},
		{"channel_key of 3,105 bytes", webhook.Path, `{"message_id":"m","event":"message","provider":"twlo","channel_key":"twlo_` + strings.Repeat("x", 3100) + `"}`, false},
		{"provider_err_obj 4,000 deep", "/webhooks/sociocs/twlo_x", deep("provider_err_obj", 4000), false},
		{"provider_err_obj 17 deep", "/webhooks/sociocs/twlo_x", deep("provider_err_obj", 17), true},
		{"provider_err_obj 16 deep", "/webhooks/sociocs/twlo_x", deep("provider_err_obj", 16), true},
		{"error 60 deep", "/webhooks/sociocs/twlo_x", deep("error", 60), true},
		{"extra_fields holding JSON 3,000 deep", webhook.Path, extra, true},
		{"100,000 faults and a time past 9999", webhook.Path, many.String(), true},
		{"an error of 150,000 numbers", "/webhooks/sociocs/twlo_x", numbers, true},
		{"not UTF-8", webhook.Path, "{\"message_id\":\"l\",\"text\":\"caf\xe9\"}", false},
		{"text with NUL, U+2028 and U+202E", webhook.Path, `{"message_id":"u","event":"message","text":"a\u0000b\u2028c\u202ed","name":"😀"}`, true},
		{"duplicate key", webhook.Path, `{"message_id":"d","text":"a","text":"b"}`, false},
		{"empty object", webhook.Path, `{}`, true},
		{"message_id of 300 bytes", webhook.Path, `{"message_id":"` + strings.Repeat("i", 300) + `","event":"message"}`, false},
		{"numbers past float64", webhook.Path, `{"message_id":"n","event":"message","contact":{"id":1e400,"extra_fields":"{\"x\":1e400,\"y\":-0}"},"timestamp":-99999999999999999999}`, true},
	}
}

// TestEveryReaderReadsWhatWasAcknowledged: the bodies that broke the
// invariant, and others at the bounds, keep it; none costs the service its
// readiness.
func TestEveryReaderReadsWhatWasAcknowledged(t *testing.T) {
	s := start(t, testConfig(t))
	r := s.openReaders(t)
	for _, tt := range hostileBodies(t) {
		if stored := s.roundTrip(t, r, tt.path, []byte(tt.body)); stored != tt.stored {
			t.Fatalf("%s: stored %v, want %v", tt.name, stored, tt.stored)
		}
		if !tt.stored {
			s.roundTripNext(t, r)
		}
	}
	if code, body := s.get(t, "/readyz"); code != http.StatusOK {
		t.Fatalf("after the hostile webhooks /readyz = %d %s", code, body)
	}
}

// FuzzWebhookPath fuzzes the whole path of a webhook: the body the fuzzer
// makes is posted to a running eventsvc, and the invariant checked with
// every reader.
func FuzzWebhookPath(f *testing.F) {
	for _, tt := range hostileBodies(f) {
		if len(tt.body) < 4096 {
			f.Add([]byte(tt.body))
		}
	}
	for _, name := range []string{"message_twlo.json", "status_sent.json", "status_delivered.json", "status_failed.json"} {
		b, err := os.ReadFile(filepath.Join("..", "webhook", "testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := start(f, testConfig(f))
	r := s.openReaders(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if !s.roundTrip(t, r, webhook.Path, body) {
			s.roundTripNext(t, r)
		}
	})
}
