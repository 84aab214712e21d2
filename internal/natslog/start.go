package natslog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsvc/eventsvc/internal/backoff"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// createStream creates or updates the stream. While JetStream cannot take
// it yet (a cluster without a meta leader, or with fewer servers up than
// the stream's replicas) it tries again, saying so in the log every few
// seconds, for at most Config.StartWait from began.
//
// It goes in three steps, each tried again with a short timeout: JetStream
// answers at all (a cluster has elected its meta leader: a request sent
// before is lost, and would be waited for in full); the stream is created or
// updated (on a cluster, of several processes that create it at once only
// one may be answered: the others find it made when they try again); and
// the stream's leader answers (a replicated stream elects one once made).
func (l *Log) createStream(ctx context.Context, began time.Time) (jetstream.Stream, error) {
	var stream jetstream.Stream
	steps := []func(context.Context) error{
		func(ctx context.Context) error {
			_, err := l.js().AccountInfo(ctx)
			return err
		},
		func(ctx context.Context) (err error) {
			stream, err = l.js().CreateOrUpdateStream(ctx, l.streamConfig())
			return err
		},
		func(ctx context.Context) error {
			info, err := stream.Info(ctx)
			if err == nil && info.Config.Replicas > 1 && (info.Cluster == nil || info.Cluster.Leader == "") {
				return errNoLeaderYet
			}
			return err
		},
	}
	for _, step := range steps {
		if err := l.startStep(ctx, began, step); err != nil {
			return nil, fmt.Errorf("%w: create or update stream %s (after %s): %v%s", eventlog.ErrUnavailable, l.cfg.StreamName,
				time.Since(began).Round(time.Second), err, startHint(err, l.cfg.Replicas))
		}
	}
	if waited := time.Since(began); waited > time.Second {
		l.log.Info("JetStream took the stream", "waited", waited.Round(time.Millisecond))
	}
	return stream, nil
}

// errNoLeaderYet: a replicated stream was made, its leader not elected yet.
var errNoLeaderYet = errors.New("eventlog: the stream has no leader yet")

// startStep runs one request of the start-up until it succeeds, again while
// JetStream answers that it is starting, until Config.StartWait from began.
func (l *Log) startStep(ctx context.Context, began time.Time, step func(context.Context) error) error {
	logged := time.Now()
	for {
		actx, cancel := context.WithTimeout(ctx, startAttemptTimeout)
		err := step(actx)
		cancel()
		if err == nil {
			return nil
		}
		waited := time.Since(began)
		if ctx.Err() != nil || !jetStreamStarting(err) || waited >= l.cfg.StartWait {
			return err
		}
		if time.Since(logged) >= startLogEvery {
			logged = time.Now()
			l.log.Warn("waiting for JetStream to take the stream: a cluster elects its meta leader once a majority of its servers are up, and places the stream once as many as --replicas are",
				"replicas", l.cfg.Replicas, "waited", waited.Round(time.Second), "up_to", l.cfg.StartWait, "err", err)
		}
		backoff.Sleep(ctx, startRetryWait) // an ended ctx ends the loop above
	}
}

// Pacing of createStream.
const (
	startAttemptTimeout = 2 * time.Second
	startRetryWait      = 100 * time.Millisecond
	startLogEvery       = 5 * time.Second
)

// jetStreamStarting reports whether err means JetStream cannot take the
// stream yet but may soon: no answer, or an answer that it is unavailable
// (no meta leader, not enough servers for the replicas) or that it knows no
// servers enough to place the stream on (the meta leader places a stream
// only on servers that have reported to it, which each does a moment after
// it starts: a new cluster elects its meta leader sooner).
func jetStreamStarting(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 || apiErr.Code == 408 || apiErr.ErrorCode == errCodeNoPeers
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, errNoLeaderYet)
}

// JetStream's answers to a stream that needs more servers than are up,
// than have reported, or than exist.
const (
	errCodeInsufficientResources jetstream.ErrorCode = 10023
	errCodeNoPeers               jetstream.ErrorCode = 10005 // "no suitable peers for placement"
)

// startHint says what to check when the stream could not be created.
func startHint(err error, replicas int) string {
	var apiErr *jetstream.APIError
	if replicas > 1 && errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeInsufficientResources || apiErr.ErrorCode == errCodeNoPeers) {
		return fmt.Sprintf(" (--replicas %d needs that many JetStream servers up in the cluster, and must not exceed its size)", replicas)
	}
	if jetStreamStarting(err) {
		return " (is a majority of the cluster's servers up and routed to one another?)"
	}
	return ""
}
