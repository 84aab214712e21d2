// Command eventsvc receives Sociocs webhooks, stores each as a Protobuf event
// in NATS JetStream and streams them to subscribers over gRPC and REST.
//
// Every setting is a flag with an EVENTSVC_ environment twin; a flag given on
// the command line wins over the environment. `eventsvc --help` lists them.
//
// `eventsvc tail` and `eventsvc send` are clients of a running eventsvc:
// the first prints its events as they arrive, the second posts a webhook.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/grpclog"

	"github.com/eventsvc/eventsvc/internal/app"
	"github.com/eventsvc/eventsvc/internal/config"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// installGRPCLogger routes grpclog to logger. grpclog's logger is global and
// may be set only before gRPC runs, so the tests, which call run while other
// tests' connections may still log, replace this with a no-op.
var installGRPCLogger = func(logger *slog.Logger) { grpclog.SetLoggerV2(newGRPCLogger(logger)) }

// run is main without the process exit, so that it can be tested.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "eventsvc: %v\n", err)
		return 2
	}
	logger := newLogger(cfg, stderr)
	installGRPCLogger(logger)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful shutdown; a second one, with the
	// signal's default action restored, ends the process at once.
	context.AfterFunc(ctx, stop)
	err = app.Run(ctx, cfg, logger, reloadOnSIGHUP(ctx))
	switch {
	case errors.Is(err, config.ErrInvalid):
		// A file named by a setting (auth file, certificate) is invalid,
		// or the data directory is another process's: like a bad flag,
		// nothing was started.
		fmt.Fprintf(stderr, "eventsvc: %v\n", err)
		return 2
	case err != nil:
		logger.Error("eventsvc stopped", "err", err)
		return 1
	}
	return 0
}

// reloadOnSIGHUP turns each SIGHUP into a reload request until ctx ends. The
// signal is caught from the start to the exit, so that one sent during
// start-up or shutdown does not end the process (SIGHUP's default action).
func reloadOnSIGHUP(ctx context.Context) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-hup:
				select {
				case reload <- struct{}{}:
				default: // a reload is pending already
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return reload
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
