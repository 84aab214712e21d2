package natslog

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// TestFollowerStandsByWhileTailFeeds: with a Tail running (as the hub
// runs one), the follower stops reading and the index is kept from what
// Tail reads; when Tail stops, a lookup of a new event still finds it, the
// follower reading again.
func TestFollowerStandsByWhileTailFeeds(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	tailCtx, stopTail := context.WithCancel(ctx)
	tailDone := make(chan error, 1)
	go func() { tailDone <- l.Tail(tailCtx, 0, func(*eventlog.Record) {}) }()
	n := 0
	publish := func() string {
		n++
		ev := testEvent(n, "twlo_1", eventsv1.EventType_EVENT_TYPE_MESSAGE)
		if _, err := l.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		return ev.Id
	}
	waitUntil(t, "the follower to stand by", func() bool {
		publish()
		return l.standingBy.Load()
	})
	// Fed by Tail alone: the index keeps up, no lookup needed to wake the
	// follower, which still stands by.
	var ids []string
	for range 20 {
		ids = append(ids, publish())
	}
	waitUntil(t, "Tail to bring the index to the end of the log", func() bool { return l.IndexedTo() == uint64(n) })
	if !l.standingBy.Load() {
		t.Fatal("the follower reads again although Tail keeps the index current")
	}
	for _, id := range ids {
		if rec, err := l.GetByID(ctx, id); err != nil || rec.ID != id {
			t.Fatalf("GetByID(%s) while Tail feeds the index: %v, %v", id, rec, err)
		}
	}
	stopTail()
	if err := <-tailDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("Tail: %v", err)
	}
	// Nobody feeds the index now: lookups of new events wake the follower.
	for i := range 5 {
		id := publish()
		rec, err := l.GetByID(ctx, id)
		if err != nil || rec.ID != id {
			t.Fatalf("GetByID(%s) %d after Tail stopped: %v, %v", id, i, rec, err)
		}
	}
	if _, err := l.GetByID(ctx, fmt.Sprintf("ev_%04d", n+1)); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("GetByID(not yet stored) = %v, want eventlog.ErrNotFound", err)
	}
}
