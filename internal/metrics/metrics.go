// Package metrics exposes eventsvc's Prometheus metrics: it observes webhooks
// (as a webhook.Observer) and streams (as a stream.Observer), instruments the
// gRPC server with the standard grpc_server_* metrics, adds the Go runtime and
// process collectors, and serves them all in the Prometheus text format.
//
// Every metric is registered on the registry given to New, never on the
// global default, so that several apps can run in one process (as the tests
// do). Label values are bounded: nothing a webhook sender controls becomes a
// label value as is.
//
// A Metrics is safe for concurrent use; its observer methods never block.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/eventsvc/eventsvc/internal/sociocs"
	"github.com/eventsvc/eventsvc/internal/stream"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

// Metrics satisfies what the webhook handler and the stream service declare.
var (
	_ webhook.Observer = (*Metrics)(nil)
	_ stream.Observer  = (*Metrics)(nil)
)

// Label values used when the real value is missing or not one we know.
const (
	// LabelOther stands for a provider code, event type or outcome that is
	// not one of the known values.
	LabelOther = "other"
	// LabelAnonymous names the client of a stream when the API is open.
	LabelAnonymous = "anonymous"
)

// knownProviders are the Sociocs provider codes the webhook converter maps;
// any other code is labelled "other".
var knownProviders = sociocs.Providers.Codes()

// storeBuckets are the upper bounds, in seconds, of the webhook-to-stored
// histogram: a publish to an embedded server takes well under a millisecond,
// to a cluster a few milliseconds, and a NATS leader election several
// seconds.
var storeBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// queueBuckets are the upper bounds of the queue-depth histogram: one
// message is the norm, the default --stream-buffer is 1024.
var queueBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}

// waitBuckets are the upper bounds, in seconds, of the delivery-wait
// histogram: a live event waits well under a millisecond on an idle server.
var waitBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 60}

// Metrics holds eventsvc's metrics.
type Metrics struct {
	reg *prometheus.Registry

	webhooks          *prometheus.CounterVec // outcome, provider, type
	warnings          *prometheus.CounterVec // provider
	signatureFailures prometheus.Counter
	storeSeconds      *prometheus.HistogramVec // outcome
	stored            prometheus.Counter

	subscribers *prometheus.GaugeVec // client
	delivered   prometheus.Counter
	evicted     *prometheus.CounterVec // client
	queueDepth  prometheus.Histogram
	waitSeconds prometheus.Histogram

	grpc *grpcprom.ServerMetrics
}

// New creates eventsvc's metrics and registers them, with the Go runtime and
// process collectors, on reg. It fails only if reg already holds a metric of
// the same name (for instance when New is called twice with one registry).
func New(reg *prometheus.Registry) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventsvc_webhooks_total",
			Help: "Webhook requests by outcome (stored, duplicate, bad_request, unauthorized, too_large, " +
				"unsupported_media_type, method_not_allowed, unavailable), provider code (" + strings.Join(knownProviders, ", ") + "; " +
				"other for any other code; empty when the body was not parsed) and event type (message, " +
				"status_update, unknown; empty when the body was not parsed).",
		}, []string{"outcome", "provider", "type"}),
		warnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventsvc_webhook_conversion_warnings_total",
			Help: "Conversion warnings of converted webhooks, whatever their outcome (fields that could not be " +
				"mapped to the typed event and are kept only in raw_json), by provider code as in eventsvc_webhooks_total.",
		}, []string{"provider"}),
		signatureFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventsvc_webhook_signature_failures_total",
			Help: "Webhooks rejected with 401 because the X-Sociocs-Signature header was missing or did not match " +
				"the body for any configured secret.",
		}),
		storeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventsvc_webhook_store_duration_seconds",
			Help: "Time from the arrival of a webhook to the event log's acknowledgement that it is stored, " +
				"by outcome (stored, or duplicate for a retry already stored).",
			Buckets: storeBuckets,
		}, []string{"outcome"}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventsvc_events_stored_total",
			Help: "Events newly stored in the event log (retries recognised as duplicates are not counted).",
		}),
		subscribers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventsvc_subscribers",
			Help: "Open event streams (gRPC StreamEvents and REST /v1/events:stream) by client name " +
				"(anonymous when the API is open).",
		}, []string{"client"}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventsvc_events_delivered_total",
			Help: "Events sent to subscribers, replayed or live, counted once per subscriber (heartbeats and gaps " +
				"are not events).",
		}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventsvc_subscribers_evicted_total",
			Help: "Streams ended with RESOURCE_EXHAUSTED because the subscriber fell more than --stream-buffer events " +
				"behind, by client name (anonymous when the API is open).",
		}, []string{"client"}),
		queueDepth: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventsvc_stream_queue_depth",
			Help: "Messages waiting in a stream's queue each time its writer takes them to send (one " +
				"observation per batch). Depths approaching --stream-buffer mean subscribers are falling behind " +
				"and will be evicted.",
			Buckets: queueBuckets,
		}),
		waitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "eventsvc_delivery_wait_seconds",
			Help: "Time from an event's storage in the log to its hand-over to a subscriber's transport, one " +
				"observation per delivered event (replayed events included, which are as old as they are).",
			Buckets: waitBuckets,
		}),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram()),
	}
	for _, c := range []prometheus.Collector{
		m.webhooks, m.warnings, m.signatureFailures, m.storeSeconds, m.stored,
		m.subscribers, m.delivered, m.evicted, m.queueDepth, m.waitSeconds, m.grpc,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Handler serves the metrics of the registry given to New in the Prometheus
// exposition formats. A metric that cannot be gathered is logged to logger
// (default slog.Default()) and the rest are served.
func (m *Metrics) Handler(logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.With("component", "metrics").Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // promhttp_metric_handler_errors_total
	})
}

// UnaryServerInterceptor and StreamServerInterceptor count gRPC calls
// (grpc_server_started_total, grpc_server_handled_total,
// grpc_server_msg_sent_total, grpc_server_msg_received_total) and time them
// (grpc_server_handling_seconds), by the method's full name and the code of
// the error the handler returns. They chain with other interceptors; the
// unary one also counts calls served without a gRPC server that present
// themselves as gRPC calls (the REST gateway's).
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return m.grpc.UnaryServerInterceptor()
}

func (m *Metrics) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return m.grpc.StreamServerInterceptor()
}

// InitializeGRPC creates the gRPC metrics at zero for every method and code of
// the services registered on s, so that rates are defined before the first
// call. Call it after the services are registered.
func (m *Metrics) InitializeGRPC(s *grpc.Server) { m.grpc.InitializeMetrics(s) }

// ObserveWebhook implements webhook.Observer.
func (m *Metrics) ObserveWebhook(r webhook.Result) {
	provider := providerLabel(r.Provider)
	m.webhooks.WithLabelValues(outcomeLabel(r.Outcome), provider, eventTypeLabel(r.EventType)).Inc()
	if r.Warnings > 0 {
		m.warnings.WithLabelValues(provider).Add(float64(r.Warnings))
	}
	switch r.Outcome {
	case webhook.OutcomeUnauthorized:
		m.signatureFailures.Inc()
	case webhook.OutcomeStored, webhook.OutcomeDuplicate:
		if r.Outcome == webhook.OutcomeStored {
			m.stored.Inc()
		}
		m.storeSeconds.WithLabelValues(string(r.Outcome)).Observe(r.Duration.Seconds())
	}
}

// StreamStarted implements stream.Observer.
func (m *Metrics) StreamStarted(client string) {
	m.subscribers.WithLabelValues(clientLabel(client)).Inc()
}

// StreamEnded implements stream.Observer.
func (m *Metrics) StreamEnded(client string, _ codes.Code) {
	m.subscribers.WithLabelValues(clientLabel(client)).Dec()
}

// EventsDelivered implements stream.Observer.
func (m *Metrics) EventsDelivered(n int) {
	if n > 0 {
		m.delivered.Add(float64(n))
	}
}

// SubscriberEvicted implements stream.Observer.
func (m *Metrics) SubscriberEvicted(client string) {
	m.evicted.WithLabelValues(clientLabel(client)).Inc()
}

// QueueDepth implements stream.Observer.
func (m *Metrics) QueueDepth(n int) { m.queueDepth.Observe(float64(n)) }

// DeliveryWait implements stream.Observer.
func (m *Metrics) DeliveryWait(d time.Duration) { m.waitSeconds.Observe(d.Seconds()) }

// providerLabel bounds the provider label: a known code (in lower case, as
// the converter matches it), "" when there was none, else "other". The code
// comes from the webhook body, which anyone who can reach the port controls.
func providerLabel(code string) string {
	if code == "" {
		return ""
	}
	for _, p := range knownProviders {
		if strings.EqualFold(code, p) {
			return p
		}
	}
	return LabelOther
}

// eventTypeLabel bounds the type label to the names webhook.Result documents.
func eventTypeLabel(t string) string {
	switch t {
	case "", "message", "status_update", "unknown":
		return t
	}
	return LabelOther
}

// outcomeLabel bounds the outcome label to the webhook package's outcomes.
func outcomeLabel(o webhook.Outcome) string {
	switch o {
	case webhook.OutcomeStored, webhook.OutcomeDuplicate, webhook.OutcomeBadRequest, webhook.OutcomeUnauthorized,
		webhook.OutcomeTooLarge, webhook.OutcomeUnsupportedMediaType, webhook.OutcomeMethodNotAllowed,
		webhook.OutcomeUnavailable:
		return string(o)
	}
	return LabelOther
}

// clientLabel names a stream's client; client names come from the
// operator's configuration, not from requests, so they are few.
func clientLabel(client string) string {
	if client == "" {
		return LabelAnonymous
	}
	return client
}
