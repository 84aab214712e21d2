// Package record defines Record, one stored event as the event log hands it
// out, shared by the log (which produces records) and its readers (which
// consume them) without either importing the other.
package record

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/filter"
)

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
		return nil, fmt.Errorf("record: event %d: %w", r.Sequence, err)
	}
	ev.Sequence = r.Sequence
	return ev, nil
}

// Errors that a source of records reports, shared so that readers can
// translate them without importing the log's implementation.
var (
	// ErrNotFound means no stored event has that sequence or id.
	ErrNotFound = errors.New("event not found")
	// ErrUnavailable means the log could not be reached or did not answer in
	// time; the operation may succeed if retried.
	ErrUnavailable = errors.New("event log unavailable")
	// ErrEpochChanged means the log was recreated (its store was lost, and a
	// new log with another epoch took its place): sequences of the old epoch
	// mean nothing in the new one. A reader following the log must start
	// over from the new log's end, with the new epoch.
	ErrEpochChanged = errors.New("event log recreated: its epoch changed")
)
