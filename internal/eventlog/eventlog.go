// Package eventlog is the event log as the rest of eventsvc sees it: the Log
// interface (Publisher and Reader), its Ack, its errors and the Record it
// hands out. The webhook adapter publishes through it, the stream service
// reads through it, and neither knows what stores the events.
//
// Two backends implement Log: package natslog (NATS JetStream, embedded or
// external; the one eventsvc runs) and package memlog (in memory, for tests
// of the packages above it). Both pass the conformance suite in package
// logtest, unchanged.
//
// The package holds types and declarations only; it is safe for concurrent
// use trivially, and so must every Log be.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/filter"
)

// Log is the event log: one stream of events in the order they were stored,
// each at a sequence (from 1, increasing) of the log's epoch.
type Log interface {
	Publisher
	Reader
}

// Publisher stores events.
type Publisher interface {
	// Publish stores ev, whose sequence must be 0, and returns once the log
	// has acknowledged it (see the README's Durability for what that
	// survives). ev.Id is the dedupe id: storing an id stored within the
	// log's dedupe window stores nothing and reports Duplicate. Errors wrap
	// ErrUnavailable (retry), ErrTooLarge or ErrInvalidEvent (do not).
	Publish(ctx context.Context, ev *eventsv1.Event) (Ack, error)
}

// Reader reads stored events. Errors wrap ErrNotFound or ErrUnavailable
// where those apply.
type Reader interface {
	// Epoch identifies the log; sequences are meaningful only within it. A
	// log created again (its store was lost) has another.
	Epoch() string
	// Bounds returns the oldest and newest sequences held (last = first-1
	// when empty).
	Bounds(ctx context.Context) (first, last uint64, err error)
	// Read calls fn in log order for each stored event with from <= sequence
	// <= to (to = 0: up to the end of the log at the time of reading) that f
	// matches (nil: every event), and only those; it returns fn's error if
	// fn fails, and one wrapping ErrEpochChanged if the log was created
	// again meanwhile.
	Read(ctx context.Context, f *filter.Filter, from, to uint64, fn func(*Record) error) error
	// Tail calls fn, from one goroutine and in log order, for every event
	// after `after`, live, until ctx ends (then it returns ctx's error). fn
	// must not block. after belongs to the epoch current when Tail is
	// called; when the log is created again Tail returns an error wrapping
	// ErrEpochChanged, having passed nothing of the new log to fn. It may
	// end with an error wrapping ErrUnavailable: the caller starts it again
	// from the last event it was given.
	Tail(ctx context.Context, after uint64, fn func(*Record)) error
	// SequenceAt returns the first sequence stored at or after t (last+1 if
	// none).
	SequenceAt(ctx context.Context, t time.Time) (uint64, error)
	// Get returns the event at seq.
	Get(ctx context.Context, seq uint64) (*Record, error)
	// GetByID returns the event with that id; when the same id was stored
	// more than once (a retry after the dedupe window), the newest. An event
	// acknowledged before the call, by any process, is found.
	GetByID(ctx context.Context, id string) (*Record, error)
}

// Ack is the outcome of a successful Publish.
type Ack struct {
	// Sequence is where the event is stored (for a duplicate, where the
	// first copy is).
	Sequence uint64
	// Duplicate reports that an event with the same id was already stored
	// within the dedupe window; nothing new was stored.
	Duplicate bool
}

// Record is one stored event. Data is the Event in protobuf binary form as
// stored, without its sequence (the log assigns that when storing); readers
// must not modify Data.
type Record struct {
	Sequence uint64
	// Key is what filters select on, as the log stored it.
	Key filter.Key
	// ID is the event id (Event.id).
	ID string
	// Stored is when the log stored the event.
	Stored time.Time
	Data   []byte
}

// Event decodes the stored event and sets its sequence.
func (r *Record) Event() (*eventsv1.Event, error) {
	ev := new(eventsv1.Event)
	if err := proto.Unmarshal(r.Data, ev); err != nil {
		return nil, fmt.Errorf("eventlog: event %d: %w", r.Sequence, err)
	}
	ev.Sequence = r.Sequence
	return ev, nil
}

// Errors of every Log, to be checked with errors.Is.
var (
	// ErrNotFound means no stored event has that sequence or id (it may have
	// expired).
	ErrNotFound = errors.New("event not found")
	// ErrUnavailable means the log could not be reached or did not answer in
	// time; the operation may succeed if retried.
	ErrUnavailable = errors.New("event log unavailable")
	// ErrCannotStore means the log is reachable but cannot store events (a
	// full disk, a quota, stores that time out); it wraps ErrUnavailable.
	ErrCannotStore = fmt.Errorf("%w: the log cannot store events", ErrUnavailable)
	// ErrEpochChanged means the log was recreated (its store was lost, and a
	// new log with another epoch took its place): sequences of the old epoch
	// mean nothing in the new one. A reader following the log must start
	// over from the new log's end, with the new epoch.
	ErrEpochChanged = errors.New("event log recreated: its epoch changed")
	// ErrTooLarge means an event is larger than the log accepts; retrying
	// will not help.
	ErrTooLarge = errors.New("eventlog: event too large")
	// ErrInvalidEvent means an event cannot be stored as it is (no id, or a
	// subject too long for the log); retrying will not help.
	ErrInvalidEvent = errors.New("eventlog: invalid event")
)
