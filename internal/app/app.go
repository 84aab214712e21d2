// Package app is eventsvc's composition root: it builds the event log, the
// hub, the gRPC server, the REST gateway and the HTTP server from a Config,
// and owns the order in which they start and stop. It also wires the metrics
// and keeps readiness (/readyz and the gRPC health service) current.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/eventsvc/eventsvc/internal/auth"
	"github.com/eventsvc/eventsvc/internal/config"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/metrics"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/stream"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

// The NATS log is the event log the webhook adapter and the stream service
// use.
var _ eventlog.Log = (*natslog.Log)(nil)

// App is a running eventsvc.
type App struct {
	cfg    config.Config
	log    *slog.Logger
	evlog  *natslog.Log
	svc    *stream.Service
	health *health.Server
	// stopWatches ends the health Watch calls at shutdown; idempotent.
	stopWatches func()

	auth       *auth.Store    // nil: the API is open
	authn      *authenticator // nil: the API is open
	grpcServer *grpc.Server
	grpcLn     net.Listener
	httpServer *http.Server
	httpLn     net.Listener
	hook       *webhook.Handler

	// metricsServer serves /metrics on a port of its own (nil: /metrics is
	// on the HTTP port).
	metricsServer *http.Server
	metricsLn     net.Listener

	// stopStreams ends the stream service's Run: every stream ends with
	// its resume position.
	stopStreams context.CancelFunc
	errc        chan error // first error of a serving goroutine
	wg          sync.WaitGroup
	// closers close what Start opened, last first: on a failed start, and
	// at the end of Shutdown.
	closers closers

	// ready is what /readyz and the gRPC health service report; a watcher
	// that stopReadiness ends keeps it current.
	ready         *readiness
	stopReadiness context.CancelFunc
	// metrics is registered on a registry of this app's own, so that
	// several apps can run in one process.
	metrics *metrics.Metrics

	shutdownOnce sync.Once
	shutdownErr  error
}

// Start opens the event log, binds the listeners and starts serving. The
// caller must call Shutdown. ctx bounds start-up only. When a step fails,
// what the steps before it opened is closed, last first, and the error is
// returned (it wraps config.ErrInvalid when a setting or a file it names is
// at fault).
func Start(ctx context.Context, cfg config.Config, logger *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	checkFileLimit(cfg.Stream.MaxStreams, logger)
	a := &App{cfg: cfg, log: logger, errc: make(chan error, 4)}
	if a.metrics, err = metrics.New(prometheus.NewRegistry()); err != nil {
		return nil, err
	}
	var s startup
	for _, step := range []startStep{
		a.readFiles,
		a.lockDataDir,
		a.openLog,
		a.listen,
		a.startStreams,
		a.startGRPC,
		a.startHTTP,
		a.startReadiness,
	} {
		if err := step(ctx, &s); err != nil {
			return nil, errors.Join(err, a.closers.closeAll())
		}
	}
	logger.Info("eventsvc started", "http", a.HTTPAddr(), "grpc", a.GRPCAddr(), "metrics", a.MetricsAddr(), "epoch", a.evlog.Epoch(),
		"tls", s.grpcTLS != nil, "auth", a.auth != nil)
	return a, nil
}

// isAPIPath reports whether path is the REST API's (or its OpenAPI
// document), which browsers on other origins may call; the webhooks are
// not.
func isAPIPath(path string) bool {
	return strings.HasPrefix(path, "/v1/") || path == "/openapi.json"
}

// grpcOptions are the options the gRPC server starts from: the configured
// message sizes, then the stream package's, so that its tests and
// benchmarks measure the server the app runs.
func grpcOptions(cfg config.GRPC) []grpc.ServerOption {
	return append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(cfg.MaxSendMsgSize),
	}, stream.ServerOptions()...)
}

// goServe runs fn in a goroutine; a non-nil error that is not the normal end
// of serving is reported through Err.
func (a *App) goServe(name string, fn func() error) {
	a.wg.Go(func() {
		if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
			select {
			case a.errc <- fmt.Errorf("app: %s: %w", name, err):
			default:
			}
		}
	})
}

// HTTPAddr is the bound address of the HTTP server.
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// GRPCAddr is the bound address of the gRPC server.
func (a *App) GRPCAddr() string { return a.grpcLn.Addr().String() }

// MetricsAddr is the bound address that serves /metrics: the metrics
// server's, or HTTPAddr when /metrics is on the HTTP port.
func (a *App) MetricsAddr() string {
	if a.metricsLn == nil {
		return a.HTTPAddr()
	}
	return a.metricsLn.Addr().String()
}

// Subscribers is the number of live streams (gRPC and REST).
func (a *App) Subscribers() int { return a.svc.Subscribers() }

// Err reports the first failure of a serving part (after which the app
// should be shut down).
func (a *App) Err() <-chan error { return a.errc }

// Shutdown stops the app in dependency order within ctx: new webhooks get
// 503 with Retry-After (the HTTP listener stays open meanwhile) while those
// in flight are stored and answered; then every stream ends with UNAVAILABLE
// and its resume sequence, the servers stop (the metrics server last), and
// the log closes. Past ctx's deadline whatever is left is stopped at once
// and the error says what did not finish. It is idempotent.
func (a *App) Shutdown(ctx context.Context) error {
	a.shutdownOnce.Do(func() { a.shutdownErr = a.shutdown(ctx) })
	return a.shutdownErr
}

func (a *App) shutdown(ctx context.Context) error {
	a.log.Info("shutting down")
	// Webhooks first: from here a new one gets 503 with Retry-After, and
	// the HTTP listener stays open so that senders get that answer rather
	// than a refused connection. Those admitted before are stored and get
	// their 2xx before anything they need is stopped.
	a.hook.Drain()
	// Not ready from now on, over gRPC health and /readyz alike.
	a.ready.stop()
	a.stopReadiness()
	var errs []error
	select {
	case <-a.hook.Drained():
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("app: webhooks in flight: %w", ctx.Err()))
	}
	// Every stream, gRPC and REST, replaying or live, ends now with its
	// resume position. A client that has stopped reading gets a grace period
	// to read on and receive it; then its send is cut short.
	grace := a.shutdownGrace(ctx)
	a.stopStreams()
	if !waitUntil(a.svc.Drained(), grace) {
		a.svc.Interrupt()
		select {
		case <-a.svc.Drained():
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("app: streams: %w", ctx.Err()))
		}
	}
	if err := a.httpServer.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("app: http shutdown: %w", err))
		a.httpServer.Close()
	}
	// Health watchers have seen NOT_SERVING by now; end their calls so that
	// the graceful stop need not wait for them.
	a.stopWatches()
	stopped := make(chan struct{})
	go func() {
		a.grpcServer.GracefulStop()
		close(stopped)
	}()
	// Every call has ended by now; what a graceful stop still waits for is
	// the last bytes of streams whose clients do not read, which may never
	// come. They get the same grace.
	unread := time.NewTimer(grace)
	defer unread.Stop()
	select {
	case <-stopped:
	case <-unread.C:
		a.log.Warn("closing gRPC connections whose clients did not read the end of their streams", "after", grace)
		a.grpcServer.Stop()
		<-stopped
	case <-ctx.Done():
		a.grpcServer.Stop()
		<-stopped
		errs = append(errs, fmt.Errorf("app: grpc shutdown: %w", ctx.Err()))
	}
	// Metrics last, so that the shutdown itself can be scraped.
	if a.metricsServer != nil {
		if err := a.metricsServer.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("app: metrics shutdown: %w", err))
			a.metricsServer.Close()
		}
	}
	// What is left: the goroutines, then the log and the data directory.
	if err := a.closers.closeAll(); err != nil {
		errs = append(errs, fmt.Errorf("app: close: %w", err))
	}
	a.log.Info("stopped")
	return errors.Join(errs...)
}

// serveHTTP serves h on ln (over TLS when tlsConfig is set) with the
// configured HTTP bounds, and returns the server. No WriteTimeout: it bounds
// a whole response and would cut REST streams; writeDeadlines bounds each
// write instead.
func (a *App) serveHTTP(name string, ln net.Listener, h http.Handler, tlsConfig *tls.Config) *http.Server {
	srv := &http.Server{
		Handler:           writeDeadlines(h, a.cfg.HTTP.WriteTimeout),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: a.cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       a.cfg.HTTP.ReadTimeout,
		IdleTimeout:       a.cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.closers.push(func() error { return ignoreClosed(srv.Close()) })
	a.goServe(name, func() error {
		if tlsConfig != nil {
			return srv.ServeTLS(ln, "", "")
		}
		return srv.Serve(ln)
	})
	return srv
}

// shutdownGrace is how long a shutdown waits for clients that have stopped
// reading, twice over (to take their last events, then their status): the
// gRPC write timeout, or less so that the shutdown fits in its deadline.
func (a *App) shutdownGrace(ctx context.Context) time.Duration {
	grace := a.cfg.GRPC.WriteTimeout
	if deadline, ok := ctx.Deadline(); ok {
		grace = min(grace, time.Until(deadline)/3)
	}
	return max(grace, 0)
}

// waitUntil reports whether done closed within d.
func waitUntil(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// ReloadAuth re-reads the auth file: new requests are authenticated with
// the new clients; open streams whose credential is gone end with
// UNAUTHENTICATED, those whose client's rights narrowed with
// PERMISSION_DENIED (both with their resume position), the others go on.
// An invalid file leaves the current clients in force and is returned.
// Without an auth file it does nothing.
func (a *App) ReloadAuth() error {
	if a.auth == nil {
		return nil
	}
	if err := a.auth.Reload(); err != nil {
		return err
	}
	a.authn.revalidate(a.svc)
	return nil
}

// Run starts the app, serves until ctx ends or a part fails, then shuts down
// within cfg.ShutdownTimeout. Each receive from reload re-reads the auth
// file (main sends one per SIGHUP); reload may be nil.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger, reload <-chan struct{}) error {
	a, err := Start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	var runErr error
serve:
	for {
		select {
		case <-ctx.Done():
			break serve
		case runErr = <-a.Err():
			break serve
		case <-reload:
			// Reload logs its outcome; a bad file keeps the old clients.
			_ = a.ReloadAuth()
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(runErr, a.Shutdown(sctx))
}
