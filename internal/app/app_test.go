package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/app"
	"github.com/eventsvc/eventsvc/internal/config"
	"github.com/eventsvc/eventsvc/internal/stream"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

const channel = "twlo_16311113333"

// server is a running eventsvc on free ports, with clients.
type server struct {
	app    *app.App
	cfg    config.Config
	client eventsv1.EventServiceClient
	base   string // http://host:port
}

func testConfig(t testing.TB) config.Config {
	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.Log.DataDir = t.TempDir()
	return cfg
}

func start(t testing.TB, cfg config.Config) *server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.Start(ctx, cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, a) })
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &server{app: a, cfg: cfg, client: eventsv1.NewEventServiceClient(conn), base: "http://" + a.HTTPAddr()}
}

// testLogger discards the app's log, or shows it with -v.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func shutdown(t testing.TB, a *app.App) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "webhook", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends a webhook and returns the status code and the decoded answer.
func (s *server) post(t *testing.T, path string, body []byte) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(s.base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func recvN(t *testing.T, s grpc.ServerStreamingClient[eventsv1.StreamEventsResponse], n int) []*eventsv1.Event {
	t.Helper()
	var evs []*eventsv1.Event
	for len(evs) < n {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(evs), n, err)
		}
		if ev := m.GetEvent(); ev != nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

// webhooks posts the four samples; the status updates through the
// per-channel URL so that they are attributed to the channel.
var webhooks = []struct{ file, path string }{
	{"message_twlo.json", "/webhooks/sociocs"},
	{"status_sent.json", "/webhooks/sociocs/" + channel},
	{"status_delivered.json", "/webhooks/sociocs/" + channel},
	{"status_failed.json", "/webhooks/sociocs/" + channel},
}

// expected returns what the converter makes of each sample, with the
// sequence it must be stored at. received_at differs and is ignored.
func expected(t *testing.T) []*eventsv1.Event {
	var evs []*eventsv1.Event
	for i, w := range webhooks {
		key := strings.TrimPrefix(strings.TrimPrefix(w.path, "/webhooks/sociocs"), "/")
		ev, err := webhook.Convert(sample(t, w.file), key, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ev.Sequence = uint64(i + 1)
		evs = append(evs, ev)
	}
	return evs
}

var ignoreReceivedAt = protocmp.IgnoreFields(&eventsv1.Event{}, "received_at")

func TestEndToEnd(t *testing.T) {
	s := start(t, testConfig(t))
	ctx := ctxT(t)
	want := expected(t)

	subs := []struct {
		name string
		req  *eventsv1.StreamEventsRequest
		want []int
	}{
		{"everything", &eventsv1.StreamEventsRequest{}, []int{0, 1, 2, 3}},
		{"channel", &eventsv1.StreamEventsRequest{ChannelKeys: []string{channel}}, []int{0, 1, 2, 3}},
		{"other channel", &eventsv1.StreamEventsRequest{ChannelKeys: []string{"gswa_1"}}, nil},
		{"messages", &eventsv1.StreamEventsRequest{Types: []eventsv1.EventType{eventsv1.EventType_EVENT_TYPE_MESSAGE}}, []int{0}},
		{"failures", &eventsv1.StreamEventsRequest{Statuses: []eventsv1.Status{eventsv1.Status_STATUS_FAILED}}, []int{3}},
		{"twilio status updates", &eventsv1.StreamEventsRequest{
			Providers: []eventsv1.Provider{eventsv1.Provider_PROVIDER_TWILIO_SMS},
			Types:     []eventsv1.EventType{eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE},
		}, []int{1, 2, 3}},
	}
	streams := make([]grpc.ServerStreamingClient[eventsv1.StreamEventsResponse], len(subs))
	for i, sb := range subs {
		var err error
		if streams[i], err = s.client.StreamEvents(ctx, sb.req); err != nil {
			t.Fatal(err)
		}
	}
	// A REST subscriber too.
	rest := s.restStream(t, ctx, "/v1/events:stream?channel_keys="+channel+"&types=EVENT_TYPE_STATUS_UPDATE")
	// Streams from now must be registered before the webhooks arrive: a
	// heartbeat-free way to know is the hub's count, which the gateway
	// stream also adds to.
	waitFor(t, "subscribers to register", func() bool { return s.app.Subscribers() == len(subs)+1 })

	for i, w := range webhooks {
		code, body := s.post(t, w.path, sample(t, w.file))
		if code != http.StatusOK || body["sequence"] != float64(i+1) || body["duplicate"] != false || body["id"] != want[i].GetId() {
			t.Fatalf("POST %s %s: %d %v", w.path, w.file, code, body)
		}
	}

	for i, sb := range subs {
		if len(sb.want) == 0 {
			continue
		}
		got := recvN(t, streams[i], len(sb.want))
		for j, idx := range sb.want {
			if diff := cmp.Diff(want[idx], got[j], protocmp.Transform(), ignoreReceivedAt); diff != "" {
				t.Errorf("%s: event %d differs (-want +got):\n%s", sb.name, j, diff)
			}
			if got[j].GetReceivedAt() == nil {
				t.Errorf("%s: event %d has no received_at", sb.name, j)
			}
		}
	}
	restGot := rest.events(t, 3)
	for j, ev := range restGot {
		if diff := cmp.Diff(want[j+1], ev, protocmp.Transform(), ignoreReceivedAt); diff != "" {
			t.Errorf("REST stream event %d differs (-want +got):\n%s", j, diff)
		}
	}
	// The subscriber of another channel received nothing: its next message
	// is not an event of ours. Prove it by ending the stream.
	s.app.Shutdown(ctxT(t))
	for {
		m, err := streams[2].Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("stream ended with %v, want UNAVAILABLE", err)
			}
			break
		}
		if m.GetHeartbeat() == nil {
			t.Fatalf("subscriber of another channel received %v", m)
		}
	}
}

// restStream is a REST subscriber reading newline-delimited JSON.
type restStreamClient struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func (s *server) restStream(t *testing.T, ctx context.Context, path string) *restStreamClient {
	t.Helper()
	return s.restStreamAs(t, ctx, path, "")
}

// restStreamAs opens a REST stream with a bearer token ("": none).
func (s *server) restStreamAs(t *testing.T, ctx context.Context, path, token string) *restStreamClient {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	return &restStreamClient{resp: resp, sc: sc}
}

// events reads n events, decoding each line as a client would.
func (r *restStreamClient) events(t *testing.T, n int) []*eventsv1.Event {
	t.Helper()
	var evs []*eventsv1.Event
	for len(evs) < n {
		if !r.sc.Scan() {
			t.Fatalf("REST stream ended after %d of %d events: %v", len(evs), n, r.sc.Err())
		}
		var line struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(r.sc.Bytes(), &line); err != nil {
			t.Fatalf("REST stream line %q: %v", r.sc.Text(), err)
		}
		if line.Error != nil {
			t.Fatalf("REST stream error: %s", line.Error)
		}
		if !bytes.Contains(line.Result, []byte(`"epoch"`)) {
			t.Fatalf("REST stream line without epoch: %s", line.Result)
		}
		var m eventsv1.StreamEventsResponse
		if err := protojson.Unmarshal(line.Result, &m); err != nil {
			t.Fatalf("REST stream line %s: %v", line.Result, err)
		}
		if ev := m.GetEvent(); ev != nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

// end reads the stream to its final error line and returns the status it
// carries.
func (r *restStreamClient) end(t *testing.T) *spb.Status {
	t.Helper()
	for r.sc.Scan() {
		var line struct {
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(r.sc.Bytes(), &line); err != nil {
			t.Fatalf("REST stream line %q: %v", r.sc.Text(), err)
		}
		if line.Error != nil {
			st := new(spb.Status)
			if err := protojson.Unmarshal(line.Error, st); err != nil {
				t.Fatalf("REST stream error line %s: %v", line.Error, err)
			}
			if r.sc.Scan() {
				t.Fatalf("a line after the error: %s", r.sc.Text())
			}
			return st
		}
	}
	t.Fatalf("REST stream ended without an error line: %v", r.sc.Err())
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval
	}
}

func TestRESTListGetOpenAPI(t *testing.T) {
	s := start(t, testConfig(t))
	want := expected(t)
	for _, w := range webhooks {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK {
			t.Fatalf("POST: %d %v", code, body)
		}
	}
	get := func(path string) (int, []byte) {
		resp, err := http.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	code, body := get("/v1/events?types=EVENT_TYPE_STATUS_UPDATE&order=ORDER_NEWEST_FIRST&page_size=2")
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	if !bytes.Contains(body, []byte(`"channel_key":"`+channel+`"`)) || bytes.Contains(body, []byte(`channelKey`)) {
		t.Fatalf("list JSON does not use proto field names: %s", body)
	}
	var list eventsv1.ListEventsResponse
	if err := protojson.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.GetEvents()) != 2 || list.GetNextPageToken() == "" {
		t.Fatalf("first page: %v", &list)
	}
	for i, ev := range list.GetEvents() {
		if diff := cmp.Diff(want[3-i], ev, protocmp.Transform(), ignoreReceivedAt); diff != "" {
			t.Errorf("listed event %d differs (-want +got):\n%s", i, diff)
		}
	}
	code, body = get("/v1/events?types=EVENT_TYPE_STATUS_UPDATE&order=ORDER_NEWEST_FIRST&page_size=2&page_token=" + list.GetNextPageToken())
	var page2 eventsv1.ListEventsResponse
	if err := protojson.Unmarshal(body, &page2); code != http.StatusOK || err != nil || len(page2.GetEvents()) != 1 || page2.GetEvents()[0].GetSequence() != 2 || page2.GetNextPageToken() != "" {
		t.Fatalf("second page: %d %s", code, body)
	}

	for _, path := range []string{"/v1/events/4", "/v1/events/by-id/" + want[3].GetId()} {
		code, body = get(path)
		var got eventsv1.GetEventResponse
		if err := protojson.Unmarshal(body, &got); code != http.StatusOK || err != nil {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		if diff := cmp.Diff(want[3], got.GetEvent(), protocmp.Transform(), ignoreReceivedAt); diff != "" {
			t.Errorf("GET %s differs (-want +got):\n%s", path, diff)
		}
	}

	errs := []struct {
		path string
		code int
		msg  string
	}{
		{"/v1/events/99", http.StatusNotFound, "no such event"},
		{"/v1/events?providers=PROVIDER_NOPE", http.StatusBadRequest, "PROVIDER_NOPE"},
		{"/v1/events?page_size=5000", http.StatusBadRequest, "page_size 5000 is out of range"},
		{"/v1/events:stream?after_sequence=50", http.StatusBadRequest, "past the end of the log"},
	}
	for _, e := range errs {
		code, body = get(e.path)
		if code != e.code || !bytes.Contains(body, []byte(e.msg)) {
			t.Errorf("GET %s: %d %s; want %d containing %q", e.path, code, body, e.code, e.msg)
		}
	}

	code, body = get("/openapi.json")
	var doc struct {
		Swagger string                    `json:"swagger"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); code != http.StatusOK || err != nil || doc.Swagger != "2.0" {
		t.Fatalf("/openapi.json: %d %v", code, err)
	}
	for _, p := range []string{"/v1/events", "/v1/events:stream", "/v1/events/{sequence}", "/v1/events/by-id/{id}"} {
		if doc.Paths[p]["get"] == nil {
			t.Errorf("/openapi.json has no GET %s", p)
		}
	}
}

func TestRESTStreamEndsCleanlyWhenClientLeaves(t *testing.T) {
	s := start(t, testConfig(t))
	for i := 0; i < 4; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		r := s.restStream(t, ctx, "/v1/events:stream?from_earliest=true")
		waitFor(t, "the REST subscriber to register", func() bool { return s.app.Subscribers() == 1 })
		s.post(t, webhooks[0].path, sample(t, webhooks[0].file))
		r.events(t, 1)
		if len(streamGoroutines()) == 0 {
			t.Fatal("no goroutine of the open stream is found: the check below would prove nothing")
		}
		cancel()
		r.resp.Body.Close()
		waitFor(t, "the REST subscriber to leave", func() bool { return s.app.Subscribers() == 0 })
	}
	// No goroutine of a stream is left: not its writer, not its replay.
	waitFor(t, "the streams' goroutines to end", func() bool { return len(streamGoroutines()) == 0 })
}

// streamGoroutines returns the stacks of goroutines that serve a stream.
func streamGoroutines() []string {
	buf := make([]byte, 8<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		for _, fn := range []string{
			"internal/stream.(*Service).Subscribe",
			"internal/stream.(*Service).replay",
			"internal/gateway.(*streamHandler).serve",
			"EventService_StreamEvents",
		} {
			if strings.Contains(g, fn) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

func TestRestartKeepsEvents(t *testing.T) {
	cfg := testConfig(t)
	s := start(t, cfg)
	for _, w := range webhooks {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK {
			t.Fatalf("POST: %d %v", code, body)
		}
	}
	shutdown(t, s.app)

	s = start(t, cfg) // same data dir, new ports
	ctx := ctxT(t)
	list, err := s.client.ListEvents(ctx, &eventsv1.ListEventsRequest{})
	if err != nil || len(list.GetEvents()) != len(webhooks) {
		t.Fatalf("after restart ListEvents = %d events, %v", len(list.GetEvents()), err)
	}
	st, err := s.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{FromEarliest: true})
	if err != nil {
		t.Fatal(err)
	}
	want := expected(t)
	for i, ev := range recvN(t, st, len(want)) {
		if diff := cmp.Diff(want[i], ev, protocmp.Transform(), ignoreReceivedAt); diff != "" {
			t.Errorf("event %d after restart differs (-want +got):\n%s", i, diff)
		}
	}
	// Retries after the restart are still recognised.
	code, body := s.post(t, webhooks[3].path, sample(t, webhooks[3].file))
	if code != http.StatusOK || body["duplicate"] != true || body["sequence"] != float64(4) {
		t.Fatalf("retry after restart: %d %v", code, body)
	}
}

func TestConcurrentDuplicateWebhooksStoredOnce(t *testing.T) {
	s := start(t, testConfig(t))
	body := sample(t, "status_failed.json")
	var wg sync.WaitGroup
	results := make([]map[string]any, 10)
	codes := make([]int, 10)
	for i := range results {
		wg.Go(func() { codes[i], results[i] = s.post(t, "/webhooks/sociocs/"+channel, body) })
	}
	wg.Wait()
	dups := 0
	for i := range results {
		if codes[i] != http.StatusOK || results[i]["sequence"] != float64(1) {
			t.Fatalf("delivery %d: %d %v", i, codes[i], results[i])
		}
		if results[i]["duplicate"] == true {
			dups++
		}
	}
	list, err := s.client.ListEvents(ctxT(t), &eventsv1.ListEventsRequest{})
	if err != nil || len(list.GetEvents()) != 1 || dups != 9 {
		t.Fatalf("stored %d events (%v), %d duplicates; want 1 and 9", len(list.GetEvents()), err, dups)
	}
}

func TestShutdownEndsStreamsWithResumeSequence(t *testing.T) {
	s := start(t, testConfig(t))
	ctx := ctxT(t)
	st, err := s.client.StreamEvents(ctx, &eventsv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscriber to register", func() bool { return s.app.Subscribers() == 1 })
	s.post(t, webhooks[0].path, sample(t, webhooks[0].file))
	recvN(t, st, 1)
	shutdown(t, s.app)
	_, err = st.Recv()
	after, epoch, ok := stream.ResumeCursor(err)
	if status.Code(err) != codes.Unavailable || !ok || after != 1 || epoch == "" {
		t.Fatalf("stream ended with %v (cursor %d %q %v), want UNAVAILABLE resuming after 1", err, after, epoch, ok)
	}
}

// largeMessage is the message sample with a text of n bytes.
func largeMessage(t *testing.T, n int) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(sample(t, "message_twlo.json"), &m); err != nil {
		t.Fatal(err)
	}
	m["message_id"] = fmt.Sprintf("SM-large-%d", n)
	m["text"] = strings.Repeat("é", n/2)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLargeWebhookIsStored: a body near --webhook-max-body makes an event
// of about twice its size, over NATS's default max_payload; the embedded
// server is sized for it, and the event reads back over gRPC and REST.
func TestLargeWebhookIsStored(t *testing.T) {
	s := start(t, testConfig(t))
	body := largeMessage(t, 1000<<10)
	if len(body) > int(s.cfg.Webhook.MaxBodyBytes) {
		t.Fatalf("test body %d bytes is over the limit", len(body))
	}
	code, ans := s.post(t, "/webhooks/sociocs", body)
	if code != http.StatusOK {
		t.Fatalf("POST: %d %v", code, ans)
	}
	resp, err := s.client.GetEvent(ctxT(t), &eventsv1.GetEventRequest{Sequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetEvent(); !bytes.Equal(got.GetRawJson(), body) || len(got.GetMessage().GetText()) != 1000<<10 {
		t.Fatalf("event read back: raw_json %d bytes, text %d bytes", len(got.GetRawJson()), len(got.GetMessage().GetText()))
	}
	r, err := http.Get(s.base + "/v1/events/1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var rest eventsv1.GetEventResponse
	b, _ := io.ReadAll(r.Body)
	if err := protojson.Unmarshal(b, &rest); err != nil || !bytes.Equal(rest.GetEvent().GetRawJson(), body) {
		t.Fatalf("REST: %d, %v", r.StatusCode, err)
	}
}
