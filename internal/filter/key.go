package filter

import (
	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// Key is what filters select on: the four attributes of an event that the
// log hands out with each stored event (see record.Record), so that the log
// can filter without decoding events and readers can match without decoding
// them either.
type Key struct {
	Type     eventsv1.EventType
	Provider eventsv1.Provider
	// Status is STATUS_UNSPECIFIED for events that are not status updates.
	Status  eventsv1.Status
	Channel string
}

// KeyOf returns the key of ev.
func KeyOf(ev *eventsv1.Event) Key {
	return Key{
		Type:     ev.GetType(),
		Provider: ev.GetProvider(),
		Status:   ev.GetStatusUpdate().GetStatus(),
		Channel:  ev.GetChannelKey(),
	}
}
