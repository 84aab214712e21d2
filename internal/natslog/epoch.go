package natslog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/natslog/idindex"
)

// A stream has an epoch, its creation time, and sequences mean something
// only within it. The stream can vanish under a running process: the store
// of an external nats-server is lost, and the server comes back empty. Then
// eventsvc would answer 503 for ever and its readers would wait for
// sequences that never come. Instead the Log notices, wherever it asks for
// the stream's state (readiness checks, Bounds, the id index's follower, a
// publish that finds no stream), and creates the stream again; a stream
// created later than the one it knew (by this process or another) is a new
// epoch. The Log then moves to it at once: Epoch returns the new one, Tail
// and Read end with eventlog.ErrEpochChanged, and the id index starts again, empty.

// generation is one epoch of the log.
type generation struct {
	epoch   string
	created time.Time
	// gone is closed once the Log has moved to a newer generation: the
	// stream of this one no longer exists.
	gone chan struct{}
}

func newGeneration(info *jetstream.StreamInfo) *generation {
	return &generation{epoch: info.Created.UTC().Format(time.RFC3339Nano), created: info.Created, gone: make(chan struct{})}
}

// info asks JetStream for the stream's state and returns it with the
// generation it belongs to. A stream that does not exist is created again
// (a new epoch); one created later than the current generation's is a new
// epoch too (another process created it again).
func (l *Log) info(ctx context.Context) (*jetstream.StreamInfo, *generation, error) {
	info, err := l.stream().Info(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return l.recreate(ctx)
	}
	if err != nil {
		return nil, nil, unavailable("stream info", err)
	}
	if info.Config.Replicas > 1 && info.Cluster != nil && info.Cluster.Leader == "" {
		// The stream has no leader, and a replica answered from what it
		// holds, which may be stale: nats-server does so once a replica
		// has been without a leader for a while (a node cut off).
		return nil, nil, fmt.Errorf("%w: stream %s has no leader (its replicas are electing one, or this server is cut off from them)", eventlog.ErrUnavailable, l.cfg.StreamName)
	}
	g, err := l.observe(info, false)
	if err != nil {
		return nil, nil, err
	}
	return info, g, nil
}

// recreate creates the stream that JetStream says does not exist, and moves
// to its epoch. Should the stream exist after all (the answer was stale), it
// is left as it is, and so is the epoch when it is the current one.
func (l *Log) recreate(ctx context.Context) (*jetstream.StreamInfo, *generation, error) {
	l.genMu.Lock()
	defer l.genMu.Unlock()
	stream, err := l.js().CreateOrUpdateStream(ctx, l.streamConfig())
	if err != nil {
		return nil, nil, unavailable(fmt.Sprintf("the stream %s is gone; creating it again", l.cfg.StreamName), err)
	}
	info := stream.CachedInfo()
	g, err := l.observe(info, true)
	if err != nil {
		return nil, nil, err
	}
	return info, g, nil
}

// observe compares the creation time of the stream described by info with
// the current generation's, and moves to a new generation when the stream
// is newer. locked says the caller holds genMu.
func (l *Log) observe(info *jetstream.StreamInfo, locked bool) (*generation, error) {
	l.replicas.Store(int32(info.Config.Replicas))
	g := l.gen.Load()
	switch {
	case info.Created.Equal(g.created):
		return g, nil
	case info.Created.Before(g.created):
		// An answer about the stream before it was created again, from a
		// server that has not caught up: the current stream is newer.
		return nil, fmt.Errorf("%w: a stale answer about stream %s (created %s, the current one %s)", eventlog.ErrUnavailable,
			l.cfg.StreamName, info.Created.UTC().Format(time.RFC3339Nano), g.epoch)
	}
	if !locked {
		l.genMu.Lock()
		defer l.genMu.Unlock()
		if g = l.gen.Load(); !info.Created.After(g.created) {
			return l.observe(info, true)
		}
	}
	return l.newEpoch(g, info), nil
}

// newEpoch moves the Log from old to the stream described by info: the
// readers of old end (its gone channel closes), and the id index, which
// belongs to old, starts again empty for the new epoch. The caller holds
// genMu.
func (l *Log) newEpoch(old *generation, info *jetstream.StreamInfo) *generation {
	g := newGeneration(info)
	l.fmu.Lock()
	l.gen.Store(g)
	l.legacyLast.Store(0)
	var err error
	if !l.idxClosed {
		err = l.idx.Reset(idindex.Identity{Stream: l.cfg.StreamName, Epoch: g.epoch})
	}
	l.fmu.Unlock()
	close(old.gone)
	l.indexed.signal()
	l.kickFollower()
	l.log.Warn("the event log's stream was created again: a new epoch begins, the events of the old one are gone; open streams end with FAILED_PRECONDITION and their old position, and the event id index is rebuilt",
		"stream", l.cfg.StreamName, "old_epoch", old.epoch, "epoch", g.epoch, "events", info.State.Msgs)
	if err != nil {
		l.log.Error("resetting the event id index for the new epoch", "err", err)
	}
	return g
}

// sameEpoch checks, with the stream's leader, that g is still the current
// generation; the error wraps eventlog.ErrEpochChanged when it is not, eventlog.ErrUnavailable
// when the stream cannot be asked.
func (l *Log) sameEpoch(ctx context.Context, g *generation) error {
	ctx, cancel := context.WithTimeout(ctx, epochCheckTimeout)
	defer cancel()
	_, cur, err := l.info(ctx)
	switch {
	case err != nil:
		return err
	case cur != g:
		return epochChanged(g)
	}
	return nil
}

// epochCheckTimeout bounds sameEpoch.
const epochCheckTimeout = 5 * time.Second

func epochChanged(g *generation) error {
	return fmt.Errorf("%w: the stream of epoch %s is gone", eventlog.ErrEpochChanged, g.epoch)
}
