package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// readyTimeout bounds one readiness check, so that a NATS server that
// accepts connections but does not answer counts as unavailable.
const readyTimeout = 2 * time.Second

// Reasons for not being ready. They are shown to whoever asks /readyz, so
// they name the condition, never a URL or an internal error.
const (
	notReadyStarting     = "starting"
	notReadyLog          = "event log unavailable"
	notReadyStore        = "event log cannot store events"
	notReadyDiskFull     = "event log cannot store events: its disk is full"
	notReadyShuttingDown = "shutting down"
)

// notReadyReason names what err, from the event log's Ready, says is wrong.
func notReadyReason(err error) string {
	switch {
	case !errors.Is(err, eventlog.ErrCannotStore):
		return notReadyLog
	case strings.Contains(err.Error(), "no space left on device"):
		return notReadyDiskFull
	}
	return notReadyStore
}

// healthServices are the names the gRPC health service reports on: the
// server as a whole ("") and the event service.
var healthServices = []string{"", eventsv1.EventService_ServiceDesc.ServiceName}

// readiness publishes whether the app is ready to /readyz and to the gRPC
// health service, so that the two always agree. It is safe for concurrent
// use.
type readiness struct {
	health *health.Server

	mu       sync.Mutex // protects reason and shutdown; orders updates of health
	reason   string     // why the app is not ready; "" when it is
	shutdown bool       // once set, nothing changes any more
}

// newReadiness starts not ready (the health server alone would start
// SERVING).
func newReadiness(h *health.Server) *readiness {
	r := &readiness{health: h, reason: notReadyStarting}
	for _, svc := range healthServices {
		h.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	return r
}

// set records reason ("" for ready) and reports whether it changed. After
// stop it does nothing.
func (r *readiness) set(reason string) (changed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutdown || r.reason == reason {
		return false
	}
	wasReady := r.reason == ""
	r.reason = reason
	if wasReady == (reason == "") {
		return true // another reason to be not ready: health stays as it is
	}
	st := healthpb.HealthCheckResponse_SERVING
	if reason != "" {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	for _, svc := range healthServices {
		r.health.SetServingStatus(svc, st)
	}
	return true
}

// stop makes the app not ready for good, as its shutdown begins.
func (r *readiness) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shutdown = true
	r.reason = notReadyShuttingDown
	r.health.Shutdown()
}

// notReady returns why the app is not ready, or "" when it is.
func (r *readiness) notReady() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reason
}

// watchReadiness checks readiness every cfg.ReadinessInterval until ctx ends.
func (a *App) watchReadiness(ctx context.Context) {
	t := time.NewTicker(a.cfg.ReadinessInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.checkReadiness(ctx)
		}
	}
}

// checkReadiness asks the event log whether it is reachable and its stream
// exists, and publishes the answer; a change is logged with the cause.
func (a *App) checkReadiness(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	err := a.evlog.Ready(cctx)
	if ctx.Err() != nil {
		return // stopping: the check was cut short, not failed
	}
	reason := ""
	if err != nil {
		reason = notReadyReason(err)
	}
	if !a.ready.set(reason) {
		return
	}
	if err != nil {
		a.log.Warn("not ready", "reason", reason, "err", err)
	} else {
		a.log.Info("ready")
	}
}

// serveReadyz answers 200 "ready", or 503 with the reason in a line of text.
func (a *App) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if reason := a.ready.notReady(); reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", reason)
		return
	}
	fmt.Fprintln(w, "ready")
}

// healthService is the gRPC health service with one change: Watch calls end
// with UNAVAILABLE once the app stops them (at shutdown). grpc-go's health
// server keeps them open, and a graceful stop would wait for them until its
// deadline.
type healthService struct {
	*health.Server
	stopped <-chan struct{} // closed: end every Watch
}

func (h healthService) Watch(req *healthpb.HealthCheckRequest, ss grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(req, watchStream{ss, ctx})
	select {
	case <-h.stopped:
		return status.Error(codes.Unavailable, "the server is shutting down")
	default:
		return err
	}
}

// watchStream replaces a Watch stream's context.
type watchStream struct {
	grpc.ServerStreamingServer[healthpb.HealthCheckResponse]
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }
