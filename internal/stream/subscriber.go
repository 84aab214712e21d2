package stream

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/eventsvc/eventsvc/internal/eventlog"
	"github.com/eventsvc/eventsvc/internal/filter"
)

// subscriber is one stream's state: its filter, its bounded queue, and why it
// must end. Three parties touch it: the hub's goroutine (live events, under
// the hub's read lock), the stream's replay goroutine while it replays, and
// the stream's writer, the one goroutine that sends (see deliver). Anyone may
// end it.
type subscriber struct {
	filter filter.Filter
	client Client
	// epoch is the log's epoch the stream's positions belong to; set
	// before the stream starts, never changed.
	epoch string
	// after: the hub offers only events with a greater sequence. Written by
	// register under the hub's write lock, read by dispatch under its read
	// lock.
	after uint64
	// max is how many events may wait in the queue; one more ends the stream
	// (a live subscriber that falls this far behind is evicted).
	max int

	mu     sync.Mutex // protects queue, queued and end
	queue  []*Message
	queued bool    // a message was ever queued (the live heartbeat is then not needed)
	end    *ending // why the stream must end; nil while it may go on

	// wake (capacity 1) tells the writer to look at the queue: it grew, or
	// the stream must end.
	wake chan struct{}
	// room (capacity 1) tells a waiting replay that the writer took from the
	// queue.
	room chan struct{}
	// done is closed when end is set.
	done chan struct{}
	// interrupt cuts short a send in progress: the sink's (see
	// Interrupter); nil when the sink cannot.
	interrupt func()

	// live is set once the hub delivers to the subscriber; before, a replay
	// feeds it.
	live atomic.Bool
	// scanned is how far the replay has read the log: every matching event
	// up to it is queued.
	scanned atomic.Uint64
}

func newSubscriber(f filter.Filter, c Client, epoch string, max int) *subscriber {
	return &subscriber{
		filter: f, client: c, epoch: epoch, max: max,
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// ending is why a stream ends while its client is still there: the status
// it gets, which names the position to resume from.
type ending struct {
	code   codes.Code
	reason string // of the ErrorInfo detail
	msg    string
	// stall: the client read nothing for the write timeout (see
	// Stream.Stall and Service.sendFailed).
	stall bool
}

// The ways the server ends a stream.
var (
	endShutdown = &ending{code: codes.Unavailable, reason: "shutting_down", msg: "the server is shutting down"}
	endRevoked  = &ending{code: codes.Unauthenticated, reason: "credential_revoked", msg: "the credential this stream was opened with is no longer valid"}
	// endClosed marks a stream whose writer has returned for any other
	// reason (the client left, the transport failed).
	endClosed   = &ending{code: codes.Canceled, reason: "closed", msg: "the stream was closed"}
	endNarrowed = &ending{code: codes.PermissionDenied, reason: "rights_narrowed", msg: "this client's rights were narrowed; open the stream again to have them applied"}
	// endEpochChanged: the log was created again, and the stream's
	// position belongs to the old one, as a cursor of a recreated log does.
	endEpochChanged = &ending{code: codes.FailedPrecondition, reason: "epoch_changed",
		msg: "the event log was created again (its store was lost) and this stream's position belongs to the old log: " +
			"open a stream with from_earliest, or resume with allow_gap to be told what was missed"}
)

// overflowed ends a subscriber that fell more than max events behind.
func overflowed(max int) *ending {
	return &ending{code: codes.ResourceExhausted, reason: "slow_consumer",
		msg: "the stream fell more than " + strconv.Itoa(max) + " events behind the log and was ended"}
}

// stalled ends a subscriber whose client read nothing for timeout.
func stalled(timeout time.Duration) *ending {
	return &ending{code: codes.ResourceExhausted, reason: "slow_consumer",
		msg: "the client read nothing for " + timeout.String() + " and the stream was ended", stall: true}
}

// stop ends the stream for e, unless it has ended already: what is queued is
// dropped (the client resumes after what it was actually sent) and the
// writer is woken. A send in progress is left to finish (or to time out), so
// that a client that is reading gets the status. It reports whether it ended
// the stream; it never blocks.
func (s *subscriber) stop(e *ending) bool {
	s.mu.Lock()
	if s.end != nil {
		s.mu.Unlock()
		return false
	}
	s.end = e
	clear(s.queue)
	s.queue = nil
	s.mu.Unlock()
	close(s.done)
	s.signal()
	return true
}

// ended returns why the stream must end, or nil.
func (s *subscriber) ended() *ending {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end
}

// signal wakes the writer; it never blocks.
func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// offer queues the live event rec if it matches, encoding it first if m is
// nil, and returns the encoding for the next subscriber to reuse. A
// subscriber whose queue is full is ended (evicted reports it). It never
// blocks.
func (s *subscriber) offer(rec *eventlog.Record, m *Message, epoch string) (_ *Message, evicted bool) {
	if rec.Sequence <= s.after || !s.filter.Match(&rec.Key) {
		return m, false
	}
	if m == nil {
		m = eventMessage(rec, epoch)
	}
	s.mu.Lock()
	switch {
	case s.end != nil:
		s.mu.Unlock()
		return m, false
	case len(s.queue) >= s.max:
		s.mu.Unlock()
		return m, s.stop(overflowed(s.max))
	}
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	s.signal()
	return m, false
}

// push queues m (a replayed event, a gap or a heartbeat), which does not
// count against max: what pushes waits for room instead (see waitRoom).
func (s *subscriber) push(m *Message) {
	s.mu.Lock()
	if s.end == nil {
		s.queue = append(s.queue, m)
		s.queued = true
	}
	s.mu.Unlock()
	s.signal()
}

// pushLive queues the heartbeat that tells a client whose stream has sent
// nothing yet that it is live; the hub calls it as it registers the
// subscriber, before it can queue any event.
func (s *subscriber) pushLive(m *Message) {
	s.mu.Lock()
	if s.end == nil && !s.queued {
		// Nothing was ever queued, so the queue is empty: m is first.
		s.queue = append(s.queue, m)
		s.queued = true
	}
	s.mu.Unlock()
	s.signal()
}

// waitRoom blocks while the queue holds limit messages or more; it reports
// false when the stream has ended meanwhile.
func (s *subscriber) waitRoom(limit int) bool {
	for {
		s.mu.Lock()
		n, end := len(s.queue), s.end
		s.mu.Unlock()
		switch {
		case end != nil:
			return false
		case n < limit:
			return true
		}
		select {
		case <-s.room:
		case <-s.done:
			return false
		}
	}
}

// pending is how many messages wait in the queue.
func (s *subscriber) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// take moves the queued messages into buf, which it returns (reused).
func (s *subscriber) take(buf []*Message) []*Message {
	s.mu.Lock()
	buf = append(buf[:0], s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	s.mu.Unlock()
	if len(buf) > 0 {
		select {
		case s.room <- struct{}{}:
		default:
		}
	}
	return buf
}
