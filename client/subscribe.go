package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/backoff"
)

// Kind says what a Message carries.
type Kind int

const (
	// KindEvent is the next event that matches the request's filters.
	KindEvent Kind = iota + 1
	// KindHeartbeat says that an idle stream is alive; its Cursor has moved
	// to the log's last sequence, a safe place to resume from.
	KindHeartbeat
	// KindGap says that events were missed: the server could not resume at
	// the cursor (the log was recreated, or the events expired) and, as the
	// request allowed (allow_gap), starts later. Gap says what was missed.
	KindGap
	// KindEpochChange says that the log's epoch differs from the cursor's:
	// the log was recreated and sequences start again. PreviousEpoch is the
	// old one. It comes before the message of the new epoch (a KindGap).
	KindEpochChange
	// KindReconnect says that the stream ended with a retryable error (Err)
	// and that Subscribe reconnects after Delay, resuming at Cursor.
	KindReconnect
)

func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindHeartbeat:
		return "heartbeat"
	case KindGap:
		return "gap"
	case KindEpochChange:
		return "epoch_change"
	case KindReconnect:
		return "reconnect"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Cursor is a position in the log: after sequence After of log Epoch. The
// zero Cursor is no position.
type Cursor struct {
	After uint64
	Epoch string
}

// IsZero reports whether c is no position.
func (c Cursor) IsZero() bool { return c == Cursor{} }

// Message is what Subscribe hands its handler.
type Message struct {
	Kind Kind

	Event     *eventsv1.Event     // KindEvent
	Heartbeat *eventsv1.Heartbeat // KindHeartbeat
	Gap       *eventsv1.Gap       // KindGap

	PreviousEpoch string // KindEpochChange

	Err     error         // KindReconnect: why the stream ended
	Delay   time.Duration // KindReconnect: how long until the next attempt
	Attempt int           // KindReconnect: 1 for the first retry since a message arrived

	// Cursor is where the subscription resumes once the handler has
	// returned nil for this message: for an event, its own sequence. Save
	// it to resume in a later process (StreamEventsRequest.after_sequence
	// and epoch). For KindReconnect it is where the next attempt resumes.
	Cursor Cursor
}

// Handler processes the messages of a subscription. Returning nil marks
// the message processed, and the subscription's cursor moves to
// m.Cursor; returning an error stops Subscribe, which returns that error.
// The handler must not keep m after it returns.
type Handler func(ctx context.Context, m *Message) error

// handlerError marks an error that came from the handler.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }
func (e handlerError) Unwrap() error { return e.err }

// Subscribe streams the events that req selects to h, and keeps streaming
// across disconnects until ctx ends, h returns an error, or the server
// refuses the request for good.
//
// After a disconnect it waits (a jittered backoff between the Options'
// MinBackoff and MaxBackoff, reset once a stream delivers again) and
// resumes after the last message h processed, with that message's epoch:
// no gap and no duplicate. When the server ended the stream with a resume
// position (google.rpc.ErrorInfo of domain "eventsvc") of the same epoch,
// Subscribe resumes from there. h sees each retry as a KindReconnect
// message first. Until the first message arrives there is no position, and
// a retry repeats req as it was.
//
// These errors are permanent and end Subscribe: UNAUTHENTICATED,
// PERMISSION_DENIED without a resume position, INVALID_ARGUMENT, and,
// unless req sets allow_gap, FAILED_PRECONDITION and OUT_OF_RANGE (a cursor
// from a recreated log, or whose events expired); also RESOURCE_EXHAUSTED
// without a resume position (a limit on streams, or a message too large for
// MaxRecvMsgSize) and any code not listed as retryable. UNAVAILABLE,
// RESOURCE_EXHAUSTED with a resume position (the subscriber fell behind),
// PERMISSION_DENIED with a resume position (the client's rights narrowed:
// the retry is checked under the new ones), ABORTED, INTERNAL, UNKNOWN,
// DEADLINE_EXCEEDED, a CANCELED that is not ctx's, transport errors and a
// stream that simply ends are retried.
//
// Subscribe returns ctx.Err() once ctx ends, h's error as it was returned,
// or the permanent error (status.Code gives its code). It does not modify
// req.
func (c *Client) Subscribe(ctx context.Context, req *eventsv1.StreamEventsRequest, h Handler) error {
	if h == nil {
		return fmt.Errorf("%w: Subscribe needs a handler", ErrOptions)
	}
	r := proto.Clone(req).(*eventsv1.StreamEventsRequest)
	var cur Cursor
	if r.AfterSequence != nil {
		cur = Cursor{After: r.GetAfterSequence(), Epoch: r.GetEpoch()}
	}
	// Clients cut off together must not come back together: jitter.
	b := backoff.Backoff{Min: c.opts.MinBackoff, Max: c.opts.MaxBackoff, Jitter: true}
	for {
		received, err := c.stream(ctx, r, &cur, h)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var herr handlerError
		if errors.As(err, &herr) {
			return herr.err
		}
		if !retryable(err, r.GetAllowGap()) {
			return fmt.Errorf("client: stream events: %w", err)
		}
		if received {
			b.Reset()
		}
		if after, epoch, ok := ResumePosition(err); ok && (cur.Epoch == "" || cur.Epoch == epoch) && (cur.IsZero() || after >= cur.After) {
			cur = Cursor{After: after, Epoch: epoch}
		}
		delay := b.Next()
		attempt := b.Attempt()
		if err := h(ctx, &Message{Kind: KindReconnect, Err: err, Delay: delay, Attempt: attempt, Cursor: cur}); err != nil {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		// The channel may be waiting out its own backoff while the server
		// is back: try now rather than fail at once.
		c.conn.ResetConnectBackoff()
		if !cur.IsZero() {
			after := cur.After
			r.AfterSequence, r.Epoch = &after, cur.Epoch
			r.FromEarliest, r.StartTime = false, nil
		}
	}
}

// stream runs one StreamEvents call until it fails, moving cur past each
// message h processed. received reports whether any message arrived.
func (c *Client) stream(ctx context.Context, r *eventsv1.StreamEventsRequest, cur *Cursor, h Handler) (received bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.svc.StreamEvents(ctx, r)
	if err != nil {
		return false, err
	}
	for {
		resp, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return received, status.Error(codes.Unavailable, "the server ended the stream")
		}
		if err != nil {
			return received, err
		}
		received = true
		epoch := resp.GetEpoch()
		if cur.Epoch != "" && epoch != "" && epoch != cur.Epoch {
			next := Cursor{After: before(resp), Epoch: epoch}
			if err := h(ctx, &Message{Kind: KindEpochChange, PreviousEpoch: cur.Epoch, Cursor: next}); err != nil {
				return received, handlerError{err}
			}
			*cur = next
		}
		m := Message{Cursor: Cursor{After: cur.After, Epoch: epoch}}
		switch k := resp.GetKind().(type) {
		case *eventsv1.StreamEventsResponse_Event:
			m.Kind, m.Event = KindEvent, k.Event
			m.Cursor.After = k.Event.GetSequence()
		case *eventsv1.StreamEventsResponse_Heartbeat:
			m.Kind, m.Heartbeat = KindHeartbeat, k.Heartbeat
			// Never backwards: a heartbeat's sequence is a floor.
			m.Cursor.After = max(m.Cursor.After, k.Heartbeat.GetLastSequence())
		case *eventsv1.StreamEventsResponse_Gap:
			m.Kind, m.Gap = KindGap, k.Gap
			if f := k.Gap.GetFirstSequence(); f > 0 {
				m.Cursor.After = f - 1
			}
		default:
			continue // a kind newer than this client: nothing to do
		}
		if err := h(ctx, &m); err != nil {
			return received, handlerError{err}
		}
		*cur = m.Cursor
	}
}

// before is the position just before resp, in resp's epoch.
func before(resp *eventsv1.StreamEventsResponse) uint64 {
	switch {
	case resp.GetEvent() != nil:
		return resp.GetEvent().GetSequence() - 1
	case resp.GetGap() != nil && resp.GetGap().GetFirstSequence() > 0:
		return resp.GetGap().GetFirstSequence() - 1
	case resp.GetHeartbeat() != nil:
		return resp.GetHeartbeat().GetLastSequence()
	}
	return 0
}

// retryable reports whether a stream that ended with err is worth
// resuming; see Subscribe.
func retryable(err error, allowGap bool) bool {
	st, ok := status.FromError(err)
	if !ok {
		return true // not a status: a transport error
	}
	switch st.Code() {
	case codes.Unavailable, codes.Aborted, codes.Internal, codes.Unknown, codes.DeadlineExceeded, codes.Canceled:
		return true
	case codes.ResourceExhausted, codes.PermissionDenied:
		// With a resume position the server ended a stream that had been
		// fine: the subscriber fell behind, or its client's rights
		// narrowed (the request is then checked again, under them).
		_, _, ok := ResumePosition(err)
		return ok
	case codes.FailedPrecondition, codes.OutOfRange:
		return allowGap
	}
	return false
}

// ErrorDomain is the domain of the google.rpc.ErrorInfo with which
// eventsvc ends a stream that the client should resume.
const ErrorDomain = "eventsvc"

// ResumePosition returns the position a status from eventsvc tells the
// client to resume from (ErrorInfo metadata resume_after_sequence and
// epoch); ok is false when err carries none.
func ResumePosition(err error) (after uint64, epoch string, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus {
		return 0, "", false
	}
	for _, d := range st.Details() {
		info, isInfo := d.(*errdetails.ErrorInfo)
		if !isInfo || info.GetDomain() != ErrorDomain {
			continue
		}
		n, perr := strconv.ParseUint(info.GetMetadata()["resume_after_sequence"], 10, 64)
		if perr == nil {
			return n, info.GetMetadata()["epoch"], true
		}
	}
	return 0, "", false
}
