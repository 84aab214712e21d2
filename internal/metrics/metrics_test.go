package metrics_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/grpc/codes"

	"github.com/eventsvc/eventsvc/internal/metrics"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

func newMetrics(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// series gathers reg and returns the named metrics in the text format,
// without their help (each metric's Help is its documentation, checked by
// the app's tests, not repeated here).
func series(t *testing.T, reg *prometheus.Registry, names ...string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if !strings.HasPrefix(l, "# HELP ") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func compare(t *testing.T, reg *prometheus.Registry, want string, names ...string) {
	t.Helper()
	if diff := cmp.Diff(strings.TrimSpace(want), series(t, reg, names...)); diff != "" {
		t.Errorf("metrics differ (-want +got):\n%s", diff)
	}
}

func TestWebhookLabelsAreBounded(t *testing.T) {
	tests := []struct {
		name   string
		result webhook.Result
		want   string
	}{
		{"known provider", webhook.Result{Outcome: webhook.OutcomeStored, Provider: "twlowa", EventType: "message"},
			`outcome="stored",provider="twlowa",type="message"} 1`},
		{"known provider in capitals", webhook.Result{Outcome: webhook.OutcomeStored, Provider: "GSWA", EventType: "status_update"},
			`outcome="stored",provider="gswa",type="status_update"} 1`},
		{"unknown provider", webhook.Result{Outcome: webhook.OutcomeStored, Provider: "evil\"}\n", EventType: "unknown"},
			`outcome="stored",provider="other",type="unknown"} 1`},
		{"long provider", webhook.Result{Outcome: webhook.OutcomeDuplicate, Provider: strings.Repeat("tlnx", 1000), EventType: "message"},
			`outcome="duplicate",provider="other",type="message"} 1`},
		{"not parsed", webhook.Result{Outcome: webhook.OutcomeBadRequest},
			`outcome="bad_request",provider="",type=""} 1`},
		{"unknown type", webhook.Result{Outcome: webhook.OutcomeStored, Provider: "tlnx", EventType: "made_up"},
			`outcome="stored",provider="tlnx",type="other"} 1`},
		{"unknown outcome", webhook.Result{Outcome: "made_up", Provider: "twlo", EventType: "message"},
			`outcome="other",provider="twlo",type="message"} 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			m.ObserveWebhook(tt.result)
			compare(t, reg, "# TYPE eventsvc_webhooks_total counter\neventsvc_webhooks_total{"+tt.want, "eventsvc_webhooks_total")
		})
	}
}

func TestWebhookOutcomes(t *testing.T) {
	m, reg := newMetrics(t)
	for _, r := range []webhook.Result{
		{Outcome: webhook.OutcomeStored, Provider: "twlo", EventType: "message", Warnings: 2, Duration: 3 * time.Millisecond},
		{Outcome: webhook.OutcomeDuplicate, Provider: "twlo", EventType: "message", Warnings: 2, Duration: time.Millisecond},
		{Outcome: webhook.OutcomeUnavailable, Provider: "nope", EventType: "message", Warnings: 1, Duration: time.Second},
		{Outcome: webhook.OutcomeUnauthorized},
		{Outcome: webhook.OutcomeUnauthorized},
		{Outcome: webhook.OutcomeTooLarge},
	} {
		m.ObserveWebhook(r)
	}
	want := `
# TYPE eventsvc_events_stored_total counter
eventsvc_events_stored_total 1
# TYPE eventsvc_webhook_conversion_warnings_total counter
eventsvc_webhook_conversion_warnings_total{provider="other"} 1
eventsvc_webhook_conversion_warnings_total{provider="twlo"} 4
# TYPE eventsvc_webhook_signature_failures_total counter
eventsvc_webhook_signature_failures_total 2
`
	compare(t, reg, want, "eventsvc_events_stored_total", "eventsvc_webhook_signature_failures_total", "eventsvc_webhook_conversion_warnings_total")
	// Only stored and duplicate webhooks time the store.
	hist := series(t, reg, "eventsvc_webhook_store_duration_seconds")
	for _, want := range []string{
		`eventsvc_webhook_store_duration_seconds_count{outcome="stored"} 1`,
		`eventsvc_webhook_store_duration_seconds_sum{outcome="stored"} 0.003`,
		`eventsvc_webhook_store_duration_seconds_count{outcome="duplicate"} 1`,
	} {
		if !strings.Contains(hist, want) {
			t.Errorf("store duration lacks %s:\n%s", want, hist)
		}
	}
	if strings.Contains(hist, "unavailable") {
		t.Errorf("a webhook that was not stored was timed:\n%s", hist)
	}
}

func TestStreamObserver(t *testing.T) {
	m, reg := newMetrics(t)
	m.StreamStarted("")
	m.StreamStarted("")
	m.StreamStarted("billing")
	m.EventsDelivered(3)
	m.EventsDelivered(0)
	m.SubscriberEvicted("")
	m.StreamEnded("", codes.ResourceExhausted)
	m.StreamEnded("billing", codes.Canceled)
	want := `
# TYPE eventsvc_events_delivered_total counter
eventsvc_events_delivered_total 3
# TYPE eventsvc_subscribers gauge
eventsvc_subscribers{client="anonymous"} 1
eventsvc_subscribers{client="billing"} 0
# TYPE eventsvc_subscribers_evicted_total counter
eventsvc_subscribers_evicted_total{client="anonymous"} 1
`
	compare(t, reg, want, "eventsvc_subscribers", "eventsvc_events_delivered_total", "eventsvc_subscribers_evicted_total")
}

func TestRegistries(t *testing.T) {
	// Apps in one process each have a registry: New must not touch the
	// global one, and one registry takes one Metrics.
	for i := range 2 {
		if _, err := metrics.New(prometheus.NewRegistry()); err != nil {
			t.Fatalf("metrics.New on registry %d: %v", i, err)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); err == nil || !strings.HasPrefix(err.Error(), "metrics: ") {
		t.Fatalf("a second New on one registry: %v, want a metrics error", err)
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "eventsvc_") {
			t.Errorf("%s is on the global registry", mf.GetName())
		}
	}
}
