package app_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/config"
	"github.com/eventsvc/eventsvc/internal/natstest"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// withExternalNATS starts a nats-server process and returns a test
// configuration that uses it (skipped with -short).
func withExternalNATS(t *testing.T) (config.Config, *natstest.Server) {
	t.Helper()
	nats := natstest.Start(t, natstest.Options{})
	cfg := testConfig(t)
	cfg.Log.NATSURL = nats.URL()
	return cfg, nats
}

func TestExternalNATS(t *testing.T) {
	cfg, _ := withExternalNATS(t)
	s := start(t, cfg)
	ctx := ctxT(t)
	st, err := s.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{ChannelKeys: []string{channel}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscriber to register", func() bool { return s.app.Subscribers() == 1 })
	for i, w := range webhooks {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK || body["sequence"] != float64(i+1) {
			t.Fatalf("POST %s: %d %v", w.file, code, body)
		}
	}
	want := expected(t)
	for i, ev := range recvN(t, st, len(want)) {
		if ev.GetId() != want[i].GetId() || ev.GetSequence() != want[i].GetSequence() || ev.GetType() != want[i].GetType() {
			t.Errorf("event %d: got %v, want %v", i, ev, want[i])
		}
	}
	// The events are in the external server: a second eventsvc on it sees
	// them.
	cfg2 := cfg
	cfg2.Log.DataDir = t.TempDir() // each instance has a directory of its own
	s2 := start(t, cfg2)
	list, err := s2.client.ListEvents(ctx, &eventsv1.ListEventsRequest{})
	if err != nil || len(list.GetEvents()) != len(want) {
		t.Fatalf("second instance lists %d events (%v), want %d", len(list.GetEvents()), err, len(want))
	}
	// The server's max_payload is NATS's default, 1 MiB: a webhook within
	// --webhook-max-body whose event exceeds it can never be stored, and is
	// refused with 413 rather than a 503 that the sender would retry for
	// ever.
	code, body := s.post(t, "/webhooks/sociocs", largeMessage(t, 900<<10))
	if errBody, _ := body["error"].(map[string]any); code != http.StatusRequestEntityTooLarge || errBody["code"] != "event_too_large" {
		t.Fatalf("a webhook too large for the server: %d %v, want 413 event_too_large", code, body)
	}
}

func TestWebhookGets503WhenNATSIsDown(t *testing.T) {
	cfg, nats := withExternalNATS(t)
	s := start(t, cfg)
	if code, body := s.post(t, webhooks[0].path, sample(t, webhooks[0].file)); code != http.StatusOK {
		t.Fatalf("POST with NATS up: %d %v", code, body)
	}
	nats.Kill()
	resp, err := http.Post(s.base+webhooks[1].path, "application/json", strings.NewReader(string(sample(t, webhooks[1].file))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("POST with NATS down: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// NATS comes back on the same port and store: the sender's retry is
	// stored, and nothing acknowledged was lost.
	nats.Restart()
	waitFor(t, "a retried webhook to be stored", func() bool {
		code, _ := s.post(t, webhooks[1].path, sample(t, webhooks[1].file))
		return code == http.StatusOK
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := s.client.ListEvents(ctx, &eventsv1.ListEventsRequest{})
	if err != nil || len(list.GetEvents()) != 2 {
		t.Fatalf("after recovery %d events (%v), want 2", len(list.GetEvents()), err)
	}
}

// TestStreamLostWithTheNATSStore: nats-server stops, its store is deleted,
// and it starts again, empty. eventsvc creates the stream again (a new
// epoch), becomes ready and stores webhooks again; open streams, gRPC, REST
// and SSE, end with FAILED_PRECONDITION and their position in the old
// epoch, never in silence; new streams, GetEvent and ListEvents use the new
// epoch, and the id index is rebuilt for it.
func TestStreamLostWithTheNATSStore(t *testing.T) {
	cfg, nats := withExternalNATS(t)
	cfg.ReadinessInterval = 50 * time.Millisecond
	s := start(t, cfg)
	ctx := ctxT(t)
	for i, w := range webhooks[:3] {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK {
			t.Fatalf("webhook %d: %d %v", i, code, body)
		}
	}
	st, err := s.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{FromEarliest: true})
	if err != nil {
		t.Fatal(err)
	}
	old := recvN(t, st, 3)
	list, err := s.client.ListEvents(ctx, &eventsv1.ListEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	oldEpoch := list.GetEpoch()
	_, rest := rawStream(t, ctx, s.base+"/v1/events:stream?from_earliest=true", nil)
	_, sse := rawStream(t, ctx, s.base+"/v1/events:stream?from_earliest=true", http.Header{"Accept": {"text/event-stream"}})
	for range 3 {
		if line := readLine(t, rest); !strings.Contains(line, `"event"`) {
			t.Fatalf("REST stream: %q", line)
		}
	}
	for n := 0; n < 3; {
		if line := readLine(t, sse); strings.HasPrefix(line, "data: ") {
			n++
		}
	}

	nats.Stop()
	entries, err := os.ReadDir(nats.StoreDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(nats.StoreDir(), e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	nats.Restart()

	// Every open stream ends, naming its position in the old epoch.
	_, err = st.Recv()
	for err == nil {
		_, err = st.Recv()
	}
	if after, epoch, ok := stream.ResumeCursor(err); status.Code(err) != codes.FailedPrecondition || !ok || after != 3 || epoch != oldEpoch {
		t.Fatalf("the gRPC stream ended with %v, want FAILED_PRECONDITION resuming after 3 in epoch %q", err, oldEpoch)
	}
	if reason := errorReason(err); reason != "epoch_changed" {
		t.Errorf("the gRPC stream's reason is %q, want epoch_changed", reason)
	}
	for {
		line := readLine(t, rest)
		if !strings.HasPrefix(line, `{"error"`) {
			continue
		}
		if !strings.Contains(line, `"code":9`) || !strings.Contains(line, `"epoch_changed"`) || !strings.Contains(line, oldEpoch) {
			t.Fatalf("the REST stream ended with %s, want FAILED_PRECONDITION (9), epoch_changed and the old epoch", line)
		}
		break
	}
	for {
		line := readLine(t, sse)
		if line != "event: error\n" {
			continue
		}
		data := readLine(t, sse)
		if !strings.Contains(data, `"status":"FailedPrecondition"`) || !strings.Contains(data, `"resume_after_sequence":"3"`) {
			t.Fatalf("the SSE stream ended with %s", data)
		}
		break
	}

	// Ready again, and storing: the log's new epoch starts at 1.
	waitFor(t, "/readyz to answer ready", func() bool {
		resp, err := http.Get(s.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	var body map[string]any
	waitFor(t, "a webhook to be stored in the new log", func() bool {
		var code int
		code, body = s.post(t, webhooks[3].path, sample(t, webhooks[3].file))
		return code == http.StatusOK
	})
	if body["sequence"] != float64(1) {
		t.Fatalf("the first webhook of the new log: %v, want sequence 1", body)
	}
	id, _ := body["id"].(string)
	got, err := s.client.GetEvent(ctx, &eventsv1.GetEventRequest{Id: id})
	if err != nil || got.GetEvent().GetSequence() != 1 || got.GetEpoch() == oldEpoch {
		t.Fatalf("GetEvent by id in the new log: %v %v (old epoch %q)", got, err, oldEpoch)
	}
	if _, err := s.client.GetEvent(ctx, &eventsv1.GetEventRequest{Id: old[1].GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("GetEvent of an event of the lost log: %v, want NOT_FOUND", err)
	}
	list, err = s.client.ListEvents(ctx, &eventsv1.ListEventsRequest{})
	if err != nil || len(list.GetEvents()) != 1 || list.GetEpoch() != got.GetEpoch() {
		t.Fatalf("ListEvents in the new log: %v %v", list, err)
	}
	// A new stream is of the new epoch; the old cursor is refused as any
	// cursor of a recreated log is.
	st2, err := s.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{FromEarliest: true})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st2.Recv(); err != nil || m.GetEvent().GetId() != id || m.GetEpoch() != got.GetEpoch() {
		t.Fatalf("a new stream from the earliest: %v %v", m, err)
	}
	after := uint64(3)
	st3, err := s.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{AfterSequence: &after, Epoch: oldEpoch})
	if err == nil {
		_, err = st3.Recv()
	}
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("resuming with the old cursor: %v, want FAILED_PRECONDITION", err)
	}
}

// errorReason is the reason of the eventsvc ErrorInfo of a status.
func errorReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == stream.ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}
