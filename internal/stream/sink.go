package stream

import (
	"errors"
	"time"
)

// Sink is a stream's transport. The stream's writer, one goroutine for the
// stream's whole life, calls it; never concurrently.
//
// A Sink may declare more of what it can do by implementing the optional
// interfaces below, which Subscribe looks for: Interrupter (a send in
// progress can be cut short) and Watcher (the sink watches its own sends
// for a client that stopped reading). A sink that sends messages in a wire
// format of its own encodes them with a Format, which makes each message's
// encoding once for all the streams that send it.
type Sink interface {
	// Send writes msgs, in order, and returns how many it handed to the
	// transport. An error ends the stream; it wraps ErrStalled when the
	// client read nothing for the transport's write timeout.
	Send(msgs []*Message) (int, error)
}

// Interrupter is a Sink whose send in progress can be cut short from
// another goroutine: Interrupt makes it fail soon, and any later send too.
// Service.Interrupt calls it, once it has ended the stream, for the streams
// of clients that do not read when a shutdown's grace period is over. It
// may be called from any goroutine, more than once, before or during a
// send. A sink that can tell its client why it was cut says so with the
// stream's status (see Stream.Status).
type Interrupter interface {
	Sink
	Interrupt()
}

// Watcher is a Sink whose transport has no write deadline of its own, so
// that the sink watches its sends itself. Watch hands it the stream it
// serves, once, before the first Send. When a send has made no progress for
// the write timeout (Options.WriteTimeout), the sink ends the stream with
// Stream.Stall, then cuts the send short and fails it with ErrStalled: the
// stream ending first makes Subscribe return its status, which names
// exactly the last message sent, however the send turns out.
type Watcher interface {
	Sink
	Watch(st Stream)
}

// Stream is what a Watcher may do to the stream it serves. It is valid for
// the stream's whole life and safe for concurrent use.
type Stream struct {
	sub *subscriber
	// start is the stream's resume position before anything is sent.
	start   uint64
	timeout time.Duration
}

// Stall ends the stream as one whose client read nothing for the write
// timeout (RESOURCE_EXHAUSTED, slow_consumer), unless it has ended already.
// It does not cut the send in progress: the sink does. It never blocks.
func (st Stream) Stall() { st.sub.stop(stalled(st.timeout)) }

// Status returns the status the stream ends with, naming as the resume
// position the cursor of the last message the sink handed to its transport
// (sent; 0 when none); nil while the stream goes on.
func (st Stream) Status(sent uint64) error {
	e := st.sub.ended()
	if e == nil {
		return nil
	}
	return resumeStatus(e.code, e.reason, e.msg, max(st.start, sent), st.sub.epoch)
}

// ErrStalled is what a Sink's error wraps when the client read nothing for
// the transport's write timeout.
var ErrStalled = errors.New("stream: the client stopped reading")
