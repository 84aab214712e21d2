package natslog

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// Tail calls fn, from a single goroutine and in log order, for every event
// stored with a sequence greater than after, including those stored while it
// runs, until ctx ends; then it returns ctx's error. It survives reconnects
// and the loss of a cluster node. fn must not block: it holds up every later
// event.
//
// after is a sequence of the epoch current when Tail is called. When the log
// moves to a new epoch (its stream was created again) Tail returns an error
// wrapping eventlog.ErrEpochChanged, having passed nothing of the new epoch to fn: the
// caller starts over, from the new log's end.
func (l *Log) Tail(ctx context.Context, after uint64, fn func(*eventlog.Record)) error {
	g := l.gen.Load()
	restarted := l.jsRestarted.next()
	tctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	cons, err := l.js().OrderedConsumer(tctx, l.cfg.StreamName, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   after + 1,
	})
	if err != nil {
		return unavailable("tail", err)
	}
	// The ordered consumer makes a new server-side consumer whenever it
	// loses the last (a restarted server, a new stream leader, a deleted
	// stream). Before the first message of each is passed on, the stream
	// is checked to be this epoch's: were it created again, the new
	// consumer would read the new stream's events as if they came after
	// the old one's. mu keeps fn on one goroutine at a time: the ordered
	// consumer may deliver from its old and its new subscription at once.
	var (
		mu       sync.Mutex
		consumer string
	)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if tctx.Err() != nil {
			return
		}
		meta, err := m.Metadata()
		if err != nil {
			l.log.Error("skipping an event in the log without metadata", "subject", m.Subject(), "err", err)
			return
		}
		if meta.Consumer != consumer {
			if err := l.sameEpoch(tctx, g); err != nil {
				stop(err)
				return
			}
			consumer = meta.Consumer
		}
		if l.gen.Load() != g {
			stop(epochChanged(g))
			return
		}
		rec, err := l.record(m.Subject(), meta.Sequence.Stream, meta.Timestamp, m.Data())
		if err != nil {
			// A message we did not write under our prefix: skip it, loudly.
			l.log.Error("skipping unreadable event in the log", "subject", m.Subject(), "err", err)
			return
		}
		l.feedIndex(rec, g)
		fn(rec)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrNoHeartbeat) {
			l.log.Warn("tail of the event log interrupted; resuming", "err", err)
			return
		}
		l.log.Warn("tail of the event log", "err", err)
	}))
	if err != nil {
		return unavailable("tail", err)
	}
	defer cc.Stop()
	select {
	case <-tctx.Done():
		if cause := context.Cause(tctx); ctx.Err() == nil && cause != nil {
			return cause
		}
		return ctx.Err()
	case <-g.gone:
		return epochChanged(g)
	case <-cc.Closed():
		return fmt.Errorf("%w: tail of the event log closed", eventlog.ErrUnavailable)
	case <-restarted:
		return fmt.Errorf("%w: the embedded server's JetStream restarted", eventlog.ErrUnavailable)
	}
}
