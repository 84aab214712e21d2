package natslog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// TestConnectionClosedByServerIsReopened: the server ends a connection whose
// protocol line is too long, and nats.go then closes it for good. The Log
// opens a new one: it becomes ready again, stores, reads, and its tail goes
// on where it was, without a restart.
func TestConnectionClosedByServerIsReopened(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := openTest(t, t.TempDir())
	if _, err := l.Publish(ctx, testEvent(1, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)); err != nil {
		t.Fatal(err)
	}
	tailed := make(chan uint64, 16)
	tailCtx, stopTail := context.WithCancel(ctx)
	defer stopTail()
	tailDone := make(chan error, 1)
	go func() {
		tailDone <- l.Tail(tailCtx, 0, func(r *eventlog.Record) { tailed <- r.Sequence })
	}()
	if got := <-tailed; got != 1 {
		t.Fatalf("tail gave %d first, want 1", got)
	}

	old := l.nc()
	// A subject past the server's max_control_line (4 KiB): the server
	// answers -ERR and closes the connection.
	old.Publish(strings.Repeat("x", 5000), nil)
	old.Flush()
	waitUntil(t, "the first connection to be closed", old.IsClosed)

	waitUntil(t, "the log to be ready again on a new connection", func() bool {
		return l.nc() != old && l.Ready(ctx) == nil
	})
	ack, err := l.Publish(ctx, testEvent(2, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE))
	if err != nil || ack.Sequence != 2 {
		t.Fatalf("Publish after the close = %+v, %v; want sequence 2", ack, err)
	}
	if rec, err := l.GetByID(ctx, "ev_0002"); err != nil || rec.Sequence != 2 {
		t.Fatalf("GetByID after the close = %v, %v", rec, err)
	}
	// The tail, on the closed connection, ended as unavailable: its owner
	// starts it again, where it stopped.
	select {
	case err := <-tailDone:
		if !errors.Is(err, eventlog.ErrUnavailable) {
			t.Fatalf("the tail ended with %v, want eventlog.ErrUnavailable", err)
		}
	case <-ctx.Done():
		t.Fatal("the tail on the closed connection did not end")
	}
	go func() {
		tailDone <- l.Tail(tailCtx, 1, func(r *eventlog.Record) { tailed <- r.Sequence })
	}()
	if got := <-tailed; got != 2 {
		t.Fatalf("the restarted tail gave %d, want 2", got)
	}
}

// TestPublishWaitsForTheNewConnection: a publish sent while the connection
// is being replaced waits for the new one instead of failing.
func TestPublishWaitsForTheNewConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := openTest(t, t.TempDir())
	old := l.conn.Load()
	old.nc.Publish(strings.Repeat("x", 5000), nil)
	old.nc.Flush()
	waitUntil(t, "the connection to be closed", old.nc.IsClosed)
	// The connection is closed; whether or not the new one is in place
	// yet, the publish stores the event.
	ack, err := l.Publish(ctx, testEvent(1, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE))
	if err != nil || ack.Sequence != 1 {
		t.Fatalf("Publish = %+v, %v; want sequence 1", ack, err)
	}
}

// TestPublishRefusesTooLongSubject: an event whose subject would pass
// MaxSubjectLen is refused before it reaches the connection.
func TestPublishRefusesTooLongSubject(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	old := l.nc()
	_, err := l.Publish(ctx, testEvent(1, "twlo_"+strings.Repeat("x", 3100), eventsv1.EventType_EVENT_TYPE_MESSAGE))
	if !errors.Is(err, eventlog.ErrInvalidEvent) {
		t.Fatalf("Publish = %v, want eventlog.ErrInvalidEvent", err)
	}
	if l.nc() != old || !old.IsConnected() {
		t.Fatal("the refused event cost the connection")
	}
}
