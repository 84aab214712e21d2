package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/eventsvc/eventsvc"
	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/auth"
	"github.com/eventsvc/eventsvc/internal/config"
	"github.com/eventsvc/eventsvc/internal/dirlock"
	"github.com/eventsvc/eventsvc/internal/gateway"
	"github.com/eventsvc/eventsvc/internal/natslog"
	"github.com/eventsvc/eventsvc/internal/stream"
	"github.com/eventsvc/eventsvc/internal/ui"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

// The steps of Start, in the order it runs them. A step pushes a closer for
// each thing it opens or starts, as soon as it has, so that when a later
// step fails exactly what was opened is closed.

// startStep is one step of Start. ctx bounds start-up only.
type startStep func(ctx context.Context, s *startup) error

// startup is what a step hands on to later ones and the App does not keep.
type startup struct {
	grpcTLS, httpTLS *tls.Config // nil: plain text
	cluster          natslog.Cluster
	tokens           *auth.StreamTokens
	// unary holds the gRPC server's unary interceptors, which the gateway
	// also runs around REST unary calls.
	unary []grpc.UnaryServerInterceptor
}

// readFiles reads the files the configuration names (certificates, the
// cluster's CA, the auth file) before anything is opened or created, so
// that a bad one stops start-up with nothing to undo.
func (a *App) readFiles(_ context.Context, s *startup) (err error) {
	if s.grpcTLS, s.httpTLS, err = tlsConfigs(a.cfg.TLS); err != nil {
		return err
	}
	if s.cluster, err = clusterConfig(a.cfg, a.log); err != nil {
		return err
	}
	if err = a.loadAuth(); err != nil {
		return err
	}
	var tokenKey []byte
	if a.cfg.Auth.StreamTokenSecret != "" {
		tokenKey = []byte(a.cfg.Auth.StreamTokenSecret)
	}
	if s.tokens, err = auth.NewStreamTokens(tokenKey, a.cfg.Auth.StreamTokenTTL); err != nil {
		return fmt.Errorf("%w: --stream-token-secret: %w", config.ErrInvalid, err)
	}
	if a.auth != nil {
		a.authn = &authenticator{store: a.auth, tokens: s.tokens, log: a.log}
	}
	return nil
}

// loadAuth loads the auth file, if any, and warns of what an open API or
// bearer tokens in clear text expose.
func (a *App) loadAuth() (err error) {
	cfg := a.cfg
	if cfg.Auth.File == "" {
		a.log.Warn("no --auth-file: the API is open; anyone who can reach the gRPC or HTTP port can read every event")
		return nil
	}
	if a.auth, err = auth.Load(cfg.Auth.File, a.log); err != nil {
		return fmt.Errorf("%w: --auth-file: %w", config.ErrInvalid, err)
	}
	if !cfg.TLS.Enabled() {
		a.log.Warn("bearer tokens travel in clear text without --tls-cert and --tls-key: terminate TLS in front of eventsvc, or turn it on here")
	}
	if a.auth.UsesCertificates() && cfg.TLS.ClientCAFile == "" {
		a.log.Warn("clients of the auth file with a cert_subject cannot authenticate without --tls-client-ca")
	}
	return nil
}

// lockDataDir takes the data directory for this process, before anything
// in it is opened: a second process would write the same log and corrupt
// it.
func (a *App) lockDataDir(context.Context, *startup) error {
	if a.cfg.Log.DataDir == "" {
		return nil
	}
	lock, err := dirlock.Acquire(a.cfg.Log.DataDir)
	if errors.Is(err, dirlock.ErrLocked) {
		return fmt.Errorf("%w: --data-dir: %w", config.ErrInvalid, err)
	}
	if err != nil {
		return err
	}
	a.closers.push(lock.Release)
	return nil
}

// openLog opens the event log. Every goroutine of the app is started after
// it and may use it: they are waited for before it closes.
func (a *App) openLog(ctx context.Context, s *startup) (err error) {
	cfg := a.cfg
	a.evlog, err = natslog.Open(ctx, natslog.Config{
		URL:           cfg.Log.NATSURL,
		DataDir:       cfg.Log.DataDir,
		StreamName:    cfg.Log.StreamName,
		SubjectPrefix: cfg.Log.SubjectPrefix,
		MaxAge:        cfg.Log.MaxAge,
		MaxBytes:      cfg.Log.MaxBytes,
		DedupeWindow:  cfg.Log.DedupeWindow,
		Replicas:      cfg.Log.Replicas,
		SyncAlways:    cfg.Log.SyncAlways,
		SyncInterval:  cfg.Log.SyncInterval,
		MaxEventBytes: int(cfg.Webhook.MaxEventBytes()),
		StartWait:     cfg.Log.StartWait,
		Cluster:       s.cluster,
		Logger:        a.log,
	})
	if err != nil {
		return err
	}
	a.closers.push(a.evlog.Close)
	a.closers.push(func() error { a.wg.Wait(); return nil })
	return nil
}

// listen binds every listener before anything serves, so that an address
// in use stops start-up before a client could reach a part of the app.
func (a *App) listen(context.Context, *startup) (err error) {
	if a.grpcLn, err = a.bind("grpc", a.cfg.GRPCAddr); err != nil {
		return err
	}
	if a.httpLn, err = a.bind("http", a.cfg.HTTPAddr); err != nil {
		return err
	}
	if a.cfg.MetricsAddr != "" {
		a.metricsLn, err = a.bind("metrics", a.cfg.MetricsAddr)
	}
	return err
}

func (a *App) bind(name, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("app: %s listener: %w", name, err)
	}
	a.closers.push(func() error { return ignoreClosed(ln.Close()) })
	return ln, nil
}

// startStreams starts the stream service. Its Run lasts until stopStreams,
// which ends every stream with its resume position.
func (a *App) startStreams(ctx context.Context, s *startup) error {
	cfg := a.cfg
	a.svc = stream.New(a.evlog, stream.Options{
		BufferSize:          cfg.Stream.BufferSize,
		Heartbeat:           cfg.Stream.Heartbeat,
		WriteTimeout:        cfg.GRPC.WriteTimeout,
		MaxStreams:          cfg.Stream.MaxStreams,
		MaxStreamsPerClient: cfg.Stream.MaxStreamsPerClient,
		DefaultPageSize:     cfg.List.DefaultPageSize,
		MaxPageSize:         cfg.List.MaxPageSize,
		MaxPageBytes:        cfg.GRPC.MaxSendMsgSize,
		Logger:              a.log,
		Observer:            a.metrics,
		StreamTokens:        s.tokens,
	})
	svcCtx, stopStreams := context.WithCancel(context.WithoutCancel(ctx))
	a.stopStreams = stopStreams
	a.closers.push(func() error { stopStreams(); return nil })
	a.goServe("streams", func() error { return a.svc.Run(svcCtx) })
	return nil
}

// startGRPC serves the event service, health and (if configured)
// reflection on the gRPC listener.
func (a *App) startGRPC(_ context.Context, s *startup) error {
	a.health = health.NewServer()
	a.ready = newReadiness(a.health)
	watchesStopped := make(chan struct{})
	a.stopWatches = sync.OnceFunc(func() { close(watchesStopped) })
	a.closers.push(func() error { a.stopWatches(); return nil })

	unary, streaming := a.interceptors()
	s.unary = unary
	opts := append(grpcOptions(a.cfg.GRPC), grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(streaming...))
	if s.grpcTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.grpcTLS)))
	}
	a.grpcServer = grpc.NewServer(opts...)
	a.closers.push(func() error { a.grpcServer.Stop(); return nil })
	eventsv1.RegisterEventServiceServer(a.grpcServer, a.svc)
	healthpb.RegisterHealthServer(a.grpcServer, healthService{Server: a.health, stopped: watchesStopped})
	if a.cfg.GRPCReflection {
		reflection.Register(a.grpcServer)
	}
	a.metrics.InitializeGRPC(a.grpcServer)
	a.goServe("grpc", func() error { return a.grpcServer.Serve(a.grpcLn) })
	return nil
}

// interceptors are the gRPC server's: metrics, then authentication. The
// gateway runs the unary ones around REST unary calls too, so that those
// are counted and authenticated as the same calls over gRPC.
func (a *App) interceptors() ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	unary := []grpc.UnaryServerInterceptor{a.metrics.UnaryServerInterceptor()}
	streaming := []grpc.StreamServerInterceptor{a.metrics.StreamServerInterceptor()}
	if a.authn != nil {
		unary = append(unary, a.authn.unary)
		streaming = append(streaming, a.authn.stream)
	}
	return unary, streaming
}

// startHTTP serves webhooks, REST, the OpenAPI document, the probes and the
// web view on the HTTP listener, and /metrics there or on its own.
func (a *App) startHTTP(ctx context.Context, s *startup) error {
	gw, err := a.newGateway(ctx, s)
	if err != nil {
		return err
	}
	a.hook = a.newWebhook()
	mux := http.NewServeMux()
	a.hook.Register(mux)
	mux.Handle("/v1/", gw)
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(eventsvc.OpenAPIv2)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", a.serveReadyz)
	if a.metricsLn == nil {
		mux.Handle("GET /metrics", a.metrics.Handler(a.log))
	} else {
		// The TLS config is a copy: a server sets HTTP/2 up in its own.
		a.metricsServer = a.serveHTTP("metrics", a.metricsLn, a.metricsMux(), s.httpTLS.Clone())
	}
	if a.cfg.UI {
		ui.Register(mux)
	}
	a.httpServer = a.serveHTTP("http", a.httpLn, gateway.CheckParameters(gateway.CORS(a.cfg.Auth.CORSAllowedOrigins, isAPIPath, mux)), s.httpTLS)
	return nil
}

// newGateway serves REST unary calls from the service in process, with the
// gRPC server's interceptors and message bounds; no gRPC server, connection
// or codec stands between (each would encode and decode every event once
// more before it is turned into JSON).
func (a *App) newGateway(ctx context.Context, s *startup) (http.Handler, error) {
	opts := gateway.Options{
		Streams:        a.svc,
		Interceptors:   s.unary,
		MaxRecvMsgSize: a.cfg.GRPC.MaxRecvMsgSize,
		MaxSendMsgSize: a.cfg.GRPC.MaxSendMsgSize,
	}
	if a.authn != nil {
		opts.Authenticate = a.authn.authenticateHTTP
	}
	return gateway.New(ctx, a.svc, opts)
}

func (a *App) newWebhook() *webhook.Handler {
	secrets := make([][]byte, len(a.cfg.Webhook.Secrets))
	for i, s := range a.cfg.Webhook.Secrets {
		secrets[i] = []byte(s)
	}
	if len(secrets) == 0 {
		a.log.Warn("no --webhook-secret: unsigned webhooks are accepted; anyone who can reach the HTTP port can inject events")
	}
	return webhook.NewHandler(a.evlog, webhook.Options{
		Secrets:      secrets,
		MaxBodyBytes: a.cfg.Webhook.MaxBodyBytes,
		Logger:       a.log,
		Observer:     a.metrics,
	})
}

// metricsMux serves /metrics alone on a port of its own, which can stay
// internal (its series name the clients of the auth file), and the
// profiles if configured.
func (a *App) metricsMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler(a.log))
	if a.cfg.PProf {
		// Profiles show where time and memory go in production; they name
		// code, not data, but still only on the internal port.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// startReadiness makes the app ready once the first check passes; then it
// is checked again every ReadinessInterval, so that losing NATS shows and so
// does its return. Memory is handed back to the OS while webhooks are quiet.
func (a *App) startReadiness(ctx context.Context, _ *startup) error {
	a.checkReadiness(ctx)
	readyCtx, stopReadiness := context.WithCancel(context.WithoutCancel(ctx))
	a.stopReadiness = stopReadiness
	a.closers.push(func() error { stopReadiness(); return nil })
	a.goServe("readiness", func() error { a.watchReadiness(readyCtx); return nil })
	release := &idleRelease{every: memoryCheckEvery, quiet: quietBeforeRelease, served: a.hook.Served, release: a.releaseMemory}
	a.goServe("memory", func() error {
		t := time.NewTicker(memoryCheckEvery)
		defer t.Stop()
		release.run(readyCtx, t.C)
		return nil
	})
	return nil
}
