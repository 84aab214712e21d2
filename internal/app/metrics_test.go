package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

const webhookSecret = "metrics-test-secret"

// postSigned sends body to path with the given signature header ("" for
// none) and returns the status code.
func (s *server) postSigned(t *testing.T, path string, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(webhook.SignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// scrape reads /metrics as Prometheus would and flattens it: one value per
// series, keyed name{label="value",...} with the labels sorted and empty ones
// left out (as Prometheus treats them); a histogram gives name_count and
// name_sum.
func (s *server) scrape(t *testing.T) (map[string]float64, map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	flat := make(map[string]float64)
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				if l.GetValue() != "" {
					labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
			}
			sort.Strings(labels)
			key := func(suffix string) string { return name + suffix + "{" + strings.Join(labels, ",") + "}" }
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				flat[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				flat[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				flat[key("_count")] = float64(m.GetHistogram().GetSampleCount())
				flat[key("_sum")] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return flat, families, string(body)
}

// waitMetrics scrapes until every series in want has its value (a series
// not exposed reads 0), and fails with the difference at the deadline.
// Polling covers the moments between a client seeing an effect and the
// server counting it (a stream's event is counted once its send returns).
func (s *server) waitMetrics(t *testing.T, want map[string]float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		all, _, _ := s.scrape(t)
		got := make(map[string]float64, len(want))
		for k := range want {
			got[k] = all[k]
		}
		diff := cmp.Diff(want, got)
		if diff == "" {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics differ (-want +got):\n%s", diff)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// withField returns the JSON object body with field set to value.
func withField(t *testing.T, body []byte, fields map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func warningsOf(t *testing.T, body []byte, channelKey string) int {
	t.Helper()
	ev, err := webhook.Convert(body, channelKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return len(ev.GetConversionWarnings())
}

func TestMetricsCountWhatHappened(t *testing.T) {
	cfg := testConfig(t)
	cfg.Webhook.Secrets = []string{webhookSecret}
	cfg.Stream.Heartbeat = time.Hour // no idle heartbeat: messages sent are exact
	s := start(t, cfg)
	ctx := ctxT(t)
	sign := func(b []byte) string { return webhook.Sign(b, []byte(webhookSecret)) }

	// Two subscribers from now, over gRPC.
	var streams []grpc.ServerStreamingClient[eventsv1.StreamEventsResponse]
	cancels := make([]context.CancelFunc, 2)
	for i := range cancels {
		sctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		st, err := s.client.StreamEvents(sctx, &eventsv1.StreamEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	t.Cleanup(func() {
		for _, c := range cancels {
			c()
		}
	})
	waitFor(t, "subscribers to register", func() bool { return s.app.Subscribers() == 2 })
	s.waitMetrics(t, map[string]float64{`eventsvc_subscribers{client="anonymous"}`: 2})

	message := sample(t, "message_twlo.json")
	delivered := sample(t, "status_delivered.json")
	// A provider code and an event type a sender made up must not become
	// label values.
	const evilProvider = "evil_provider_0123456789abcdef"
	evil := withField(t, message, map[string]any{"provider": evilProvider, "message_id": "MMevil"})
	oddType := withField(t, message, map[string]any{"event": "made_up_event", "message_id": "MModd"})
	notJSON := []byte(`{"event": "message",`)

	posts := []struct {
		name, path string
		body       []byte
		sig        string
		code       int
	}{
		{"message", "/webhooks/sociocs", message, sign(message), http.StatusOK},
		{"status update", "/webhooks/sociocs/" + channel, delivered, sign(delivered), http.StatusOK},
		{"retried message", "/webhooks/sociocs", message, sign(message), http.StatusOK},
		{"unknown provider", "/webhooks/sociocs", evil, sign(evil), http.StatusOK},
		{"unknown event type", "/webhooks/sociocs", oddType, sign(oddType), http.StatusOK},
		{"not JSON", "/webhooks/sociocs", notJSON, sign(notJSON), http.StatusBadRequest},
		{"wrong signature", "/webhooks/sociocs", message, sign([]byte("something else")), http.StatusUnauthorized},
		{"no signature", "/webhooks/sociocs", message, "", http.StatusUnauthorized},
	}
	for _, p := range posts {
		if code := s.postSigned(t, p.path, p.body, p.sig); code != p.code {
			t.Fatalf("%s: POST %s answered %d, want %d", p.name, p.path, code, p.code)
		}
	}
	// The converter decides what a warning is; the metric must add them
	// up for every webhook converted (the retry included).
	warnings := 2*warningsOf(t, message, "") + warningsOf(t, delivered, channel) + warningsOf(t, evil, "") + warningsOf(t, oddType, "")
	if warningsOf(t, evil, "") == 0 || warningsOf(t, oddType, "") == 0 {
		t.Fatal("the made-up provider and event type should each raise a conversion warning")
	}

	// Four events stored; each stream receives all of them.
	const stored = 4
	for i, st := range streams {
		if got := recvN(t, st, stored); len(got) != stored {
			t.Fatalf("stream %d: %d events", i, len(got))
		}
	}
	// A unary call, to see it counted.
	if _, err := s.client.ListEvents(ctx, &eventsv1.ListEventsRequest{}); err != nil {
		t.Fatal(err)
	}

	const svc = `grpc_service="sociocs.events.v1.EventService"`
	streamLabels := `grpc_method="StreamEvents",` + svc + `,grpc_type="server_stream"`
	all := s.waitMetrics(t, map[string]float64{
		`eventsvc_webhooks_total{outcome="stored",provider="twlo",type="message"}`:       1,
		`eventsvc_webhooks_total{outcome="stored",provider="twlo",type="status_update"}`: 1,
		`eventsvc_webhooks_total{outcome="duplicate",provider="twlo",type="message"}`:    1,
		`eventsvc_webhooks_total{outcome="stored",provider="other",type="message"}`:      1,
		`eventsvc_webhooks_total{outcome="stored",provider="twlo",type="unknown"}`:       1,
		`eventsvc_webhooks_total{outcome="bad_request"}`:                                 1,
		`eventsvc_webhooks_total{outcome="unauthorized"}`:                                2,
		`eventsvc_webhook_signature_failures_total{}`:                                    2,
		`eventsvc_events_stored_total{}`:                                                 stored,
		`eventsvc_webhook_store_duration_seconds_count{outcome="stored"}`:                stored,
		`eventsvc_webhook_store_duration_seconds_count{outcome="duplicate"}`:             1,
		`eventsvc_webhook_conversion_warnings_total{provider="twlo"}`:                    float64(warnings - warningsOf(t, evil, "")),
		`eventsvc_webhook_conversion_warnings_total{provider="other"}`:                   float64(warningsOf(t, evil, "")),
		`eventsvc_subscribers{client="anonymous"}`:                                       2,
		`eventsvc_events_delivered_total{}`:                                              2 * stored,
		`eventsvc_subscribers_evicted_total{client="anonymous"}`:                         0,
		// Standard gRPC server metrics: two streams started, each sent its
		// first heartbeat and the events; one ListEvents answered OK.
		`grpc_server_started_total{` + streamLabels + `}`:                                                                      2,
		`grpc_server_msg_sent_total{` + streamLabels + `}`:                                                                     2 * (1 + stored),
		`grpc_server_handled_total{grpc_code="OK",grpc_method="ListEvents",` + svc + `,grpc_type="unary"}`:                     1,
		`grpc_server_handling_seconds_count{grpc_method="ListEvents",` + svc + `,grpc_type="unary"}`:                           1,
		`grpc_server_handled_total{grpc_code="Canceled",` + streamLabels + `}`:                                                 0,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"}`: 0,
	})
	// Zero-valued series exist for every method before its first call.
	if _, ok := all[`grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"}`]; !ok {
		t.Error("gRPC metrics are not initialised for the health service")
	}

	// One subscriber leaves: the gauge goes down, the RPC is counted as
	// ended by the client.
	cancels[0]()
	if _, err := streams[0].Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("canceled stream: %v", err)
	}
	s.waitMetrics(t, map[string]float64{
		`eventsvc_subscribers{client="anonymous"}`:                             1,
		`grpc_server_handled_total{grpc_code="Canceled",` + streamLabels + `}`: 1,
	})

	_, families, body := s.scrape(t)
	if strings.Contains(body, evilProvider) || strings.Contains(body, "made_up_event") {
		t.Error("a value from a webhook body became a label value")
	}
	for name, f := range families {
		if strings.HasPrefix(name, "eventsvc_") && len(f.GetHelp()) < 20 {
			t.Errorf("%s has no useful help text: %q", name, f.GetHelp())
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if families[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestMetricsCountEvictedSubscribers(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stream.BufferSize = 1
	// The evicted stream's writer is blocked in a send to the client that
	// does not read; the write timeout ends it.
	cfg.GRPC.WriteTimeout = 500 * time.Millisecond
	s := start(t, cfg)
	// Large events soon block the server's sends to it, and the one-event
	// queue behind them overflows.
	s.subscribeWithoutReading(t)

	text := strings.Repeat("x", 200<<10)
	evicted := func() bool {
		m, _, _ := s.scrape(t)
		return m[`eventsvc_subscribers_evicted_total{client="anonymous"}`] == 1
	}
	// Three events overflow it (one in flight, one queued); the hub
	// evicts asynchronously, so a few more are posted, then the eviction
	// is waited for.
	for i := 0; i < 8 && !evicted(); i++ {
		body := withField(t, sample(t, "message_twlo.json"), map[string]any{"text": text, "message_id": fmt.Sprintf("MMbig%d", i)})
		if code := s.postSigned(t, "/webhooks/sociocs", body, ""); code != http.StatusOK {
			t.Fatalf("POST large webhook %d: %d", i, code)
		}
	}
	waitFor(t, "the slow subscriber to be evicted", evicted)
	s.waitMetrics(t, map[string]float64{
		`eventsvc_subscribers_evicted_total{client="anonymous"}`: 1,
		`eventsvc_subscribers{client="anonymous"}`:               0,
		`grpc_server_handled_total{grpc_code="ResourceExhausted",grpc_method="StreamEvents",grpc_service="sociocs.events.v1.EventService",grpc_type="server_stream"}`: 1,
	})
}

// TestMetricsCountStalledSubscribers: a gRPC subscriber that reads nothing
// for --grpc-write-timeout, with room left in its queue, is cut by the
// write watchdog; that is an eviction, and counted as one.
func TestMetricsCountStalledSubscribers(t *testing.T) {
	cfg := testConfig(t)
	cfg.GRPC.WriteTimeout = 300 * time.Millisecond
	s := start(t, cfg)
	s.subscribeWithoutReading(t)
	// Two events of 200 KiB pass the client's 64 KiB window: the second
	// send blocks, and the queue (1,024) is far from full.
	text := strings.Repeat("x", 200<<10)
	for i := range 2 {
		body := withField(t, sample(t, "message_twlo.json"), map[string]any{"text": text, "message_id": fmt.Sprintf("MMstall%d", i)})
		if code := s.postSigned(t, "/webhooks/sociocs", body, ""); code != http.StatusOK {
			t.Fatalf("POST large webhook %d: %d", i, code)
		}
	}
	s.waitMetrics(t, map[string]float64{
		`eventsvc_subscribers_evicted_total{client="anonymous"}`: 1,
		`eventsvc_subscribers{client="anonymous"}`:               0,
	})
}

// subscribeWithoutReading opens a gRPC stream that is never read, on a
// connection with small fixed flow-control windows (the default windows
// grow to megabytes), and waits until it is registered.
func (s *server) subscribeWithoutReading(t *testing.T) {
	t.Helper()
	conn, err := grpc.NewClient(s.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := eventsv1.NewEventServiceClient(conn).StreamEvents(ctxT(t), &eventsv1.StreamEventsRequest{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscriber that does not read to register", func() bool { return s.app.Subscribers() == 1 })
}

// TestMetricsCountRESTUnaryCalls: a unary REST call is counted by the
// standard gRPC server metrics as the same call over gRPC is, refusals of
// its credential or its rights included; a request the gateway cannot parse
// never became a call and is not counted.
func TestMetricsCountRESTUnaryCalls(t *testing.T) {
	s := startWithAuth(t)
	const svc = `grpc_service="sociocs.events.v1.EventService",grpc_type="unary"`
	tests := []struct {
		method, path, token string
		code                int
		series              string // grpc_code and grpc_method
	}{
		{"GET", "/v1/events", "tok-admin", 200, `grpc_code="OK",grpc_method="ListEvents"`},
		{"GET", "/v1/events", "", 401, `grpc_code="Unauthenticated",grpc_method="ListEvents"`},
		{"GET", "/v1/events?channel_keys=" + otherChannel, "tok-twlo", 403, `grpc_code="PermissionDenied",grpc_method="ListEvents"`},
		{"GET", "/v1/events?channel_keys=%zz", "tok-admin", 400, ""},
		{"GET", "/v1/events/1", "tok-admin", 200, `grpc_code="OK",grpc_method="GetEvent"`},
		{"GET", "/v1/events/by-id/ev_nope", "tok-admin", 404, `grpc_code="NotFound",grpc_method="GetEvent"`},
		{"POST", "/v1/stream-tokens", "tok-admin", 200, `grpc_code="OK",grpc_method="CreateStreamToken"`},
	}
	want := map[string]float64{}
	for _, m := range []string{"ListEvents", "GetEvent", "CreateStreamToken"} {
		want[`grpc_server_started_total{grpc_method="`+m+`",`+svc+`}`] = 0
		want[`grpc_server_handling_seconds_count{grpc_method="`+m+`",`+svc+`}`] = 0
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.token != "" {
			h.Set("Authorization", "Bearer "+tt.token)
		}
		if resp, b := do(t, tt.method, s.base+tt.path, h, nil); resp.StatusCode != tt.code {
			t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, resp.StatusCode, b, tt.code)
		}
		if tt.series == "" {
			continue
		}
		want[`grpc_server_handled_total{`+tt.series+`,`+svc+`}`]++
		method := tt.series[strings.Index(tt.series, "grpc_method="):]
		want[`grpc_server_started_total{`+method+`,`+svc+`}`]++
		want[`grpc_server_handling_seconds_count{`+method+`,`+svc+`}`]++
	}
	s.waitMetrics(t, want)
}
