package natslog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/backoff"
	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
)

// Publish stores ev (whose sequence must be 0) and returns once the log has
// acknowledged it. ev.Id is the dedupe id. Errors wrap eventlog.ErrUnavailable (retry),
// eventlog.ErrTooLarge or eventlog.ErrInvalidEvent.
func (l *Log) Publish(ctx context.Context, ev *eventsv1.Event) (eventlog.Ack, error) {
	if ev.GetId() == "" {
		return eventlog.Ack{}, fmt.Errorf("%w: no id", eventlog.ErrInvalidEvent)
	}
	bp := marshalBufs.Get().(*[]byte)
	defer marshalBufs.Put(bp)
	data, err := proto.MarshalOptions{}.MarshalAppend((*bp)[:0], ev)
	if err != nil {
		return eventlog.Ack{}, fmt.Errorf("%w: %v", eventlog.ErrInvalidEvent, err)
	}
	if cap(data) <= maxPooledBuf {
		*bp = data // nats.go copies what it sends: the buffer is free again on return
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.PublishTimeout)
		defer cancel()
	}
	key := filter.KeyOf(ev)
	subj := subject(l.cfg.SubjectPrefix, &key)
	if len(subj) > MaxSubjectLen {
		// NATS ends a connection whose protocol line is too long; the
		// webhook adapter's bounds keep every subject far shorter.
		return eventlog.Ack{}, fmt.Errorf("%w: its subject would be %d bytes, over %d (channel key of %d bytes)", eventlog.ErrInvalidEvent, len(subj), MaxSubjectLen, len(key.Channel))
	}
	msg := &nats.Msg{Subject: subj, Data: data}
	opts := []jetstream.PublishOpt{
		jetstream.WithMsgID(ev.GetId()),
		jetstream.WithExpectStream(l.cfg.StreamName),
		// A stream that does not answer may be gone: the loop below asks,
		// before it sends again.
		jetstream.WithRetryAttempts(0),
	}
	g := l.gen.Load()
	checked := false
	for {
		// An attempt that gets no answer, or finds no stream, is sent again
		// with the same id until ctx ends: on a cluster the stream has no
		// leader for a few seconds after losing one, and then neither takes
		// a publish nor keeps one sent meanwhile, while the new leader
		// takes the next at once. The stream stores the event once whatever
		// the attempts (a copy still being stored answers
		// duplicateInProcess, one stored before answers as a duplicate,
		// with its sequence).
		actx, cancel := ctx, context.CancelFunc(nil)
		if l.replicas.Load() > 1 {
			// Only a replicated stream elects leaders; one server's stream
			// answers, or its connection fails.
			actx, cancel = context.WithTimeout(ctx, publishAttempt)
		}
		c := l.conn.Load()
		pa, err := c.js.PublishMsg(actx, msg, opts...)
		if cancel != nil {
			cancel()
		}
		if err == nil {
			l.health.stored()
			return eventlog.Ack{Sequence: pa.Sequence, Duplicate: pa.Duplicate}, nil
		}
		if errors.Is(err, nats.ErrConnectionClosed) && awaitConn(ctx, c) {
			// Closed under the attempt: the same id again on the new
			// connection stores the event once, whether or not the
			// attempt reached the stream.
			continue
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) && !checked {
			// Is the stream gone? Then it is created again (a new epoch),
			// and the event stored in it.
			checked = true
			ictx, cancel := context.WithTimeout(ctx, publishAttempt)
			_, cur, ierr := l.info(ictx)
			cancel()
			if ierr == nil && cur != g {
				continue
			}
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return eventlog.Ack{}, fmt.Errorf("%w: %d bytes, over the NATS server's max_payload of %d", eventlog.ErrTooLarge, len(data), l.nc().MaxPayload())
		}
		var apiErr *jetstream.APIError
		lost := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
		retry := lost || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeDuplicateInProcess
		if !retry || ctx.Err() != nil {
			if !errors.Is(err, context.Canceled) {
				// The sender hanging up says nothing of the log; the
				// rest does.
				l.health.failed(err)
			}
			return eventlog.Ack{}, unavailable("store event", err)
		}
		if !lost {
			backoff.Sleep(ctx, publishRetryWait) // an ended ctx ends the loop above
		}
	}
}

// publishAttempt bounds one attempt of a publish: far above the time the
// stream takes to acknowledge an event, short enough that an attempt lost
// in a cluster's election is soon sent again.
const publishAttempt = time.Second

// errCodeDuplicateInProcess is JetStream's answer to a publish whose id is
// that of an event the stream is storing at that moment.
const errCodeDuplicateInProcess jetstream.ErrorCode = 10158

// publishRetryWait is the pause before a publish that found no stream, or
// its copy still being stored, is sent again (jetstream.Publish waits as
// long).
const publishRetryWait = 250 * time.Millisecond

// marshalBufs holds encoding buffers of events, so that an event's bytes are
// not garbage once published; buffers over maxPooledBuf are not kept.
var marshalBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledBuf = 64 << 10
