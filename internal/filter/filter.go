// Package filter validates subscription filters, matches them against events,
// and narrows them to what a client may read. It knows nothing of how the log
// stores events: a log that filters on its side reads the accepted values
// through the accessors (Types, Providers, Statuses, ChannelKeys) and still
// applies Match, which is the definition.
//
// Semantics (the contract of the API): an empty field matches any event; a
// non-empty field matches an event whose value is one of those listed (OR
// within a field); an event must match every non-empty field (AND across
// fields). Statuses match only status updates.
//
// Everything here is pure and safe for concurrent use; a Filter is immutable
// once built.
package filter

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// ErrInvalid wraps every validation error; the message names the field and
// the index of the offending value.
var ErrInvalid = errors.New("invalid filter")

// Limits on a filter, so that a request cannot make matching or the log's
// server-side filter arbitrarily expensive.
const (
	MaxChannelKeys   = 1000
	MaxChannelKeyLen = 256
)

// Filter selects events. The zero value matches every event.
type Filter struct {
	// Bit sets of the accepted enum values; 0 accepts any. Enum values are
	// small (< 64), which Validate checks, so a mask makes Match branch-free
	// and allocation-free.
	types, providers, statuses uint64
	channels                   []string
	channelSet                 map[string]struct{} // built when channels is long
	// scope, when set, also restricts channels (by prefix); see Within.
	scope *Scope
}

// channelSetAt is the number of channel keys from which lookups use a map.
const channelSetAt = 8

// New validates the four filter fields and builds a Filter. It fails with an
// error wrapping ErrInvalid that names the field, for an UNSPECIFIED or
// unknown enum value, an empty, over-long or non-UTF-8 channel key, or too many
// channel keys. Duplicates are allowed.
func New(channelKeys []string, providers []eventsv1.Provider, types []eventsv1.EventType, statuses []eventsv1.Status) (Filter, error) {
	var f Filter
	var err error
	if f.types, err = mask("types", types, eventsv1.EventType_name); err != nil {
		return Filter{}, err
	}
	if f.providers, err = mask("providers", providers, eventsv1.Provider_name); err != nil {
		return Filter{}, err
	}
	if f.statuses, err = mask("statuses", statuses, eventsv1.Status_name); err != nil {
		return Filter{}, err
	}
	if len(channelKeys) > MaxChannelKeys {
		return Filter{}, fmt.Errorf("%w: channel_keys: %d keys, at most %d allowed", ErrInvalid, len(channelKeys), MaxChannelKeys)
	}
	for i, c := range channelKeys {
		switch {
		case c == "":
			return Filter{}, fmt.Errorf("%w: channel_keys[%d]: empty channel key", ErrInvalid, i)
		case len(c) > MaxChannelKeyLen:
			return Filter{}, fmt.Errorf("%w: channel_keys[%d]: longer than %d bytes", ErrInvalid, i, MaxChannelKeyLen)
		case !utf8.ValidString(c):
			return Filter{}, fmt.Errorf("%w: channel_keys[%d]: not valid UTF-8", ErrInvalid, i)
		}
	}
	f.setChannels(append([]string(nil), channelKeys...))
	return f, nil
}

// setChannels makes f accept the given channel keys only (any when empty),
// taking ownership of the slice.
func (f *Filter) setChannels(keys []string) {
	f.channels, f.channelSet = nil, nil
	if len(keys) == 0 {
		return
	}
	slices.Sort(keys)
	f.channels = keys
	if len(keys) >= channelSetAt {
		f.channelSet = make(map[string]struct{}, len(keys))
		for _, c := range keys {
			f.channelSet[c] = struct{}{}
		}
	}
}

func mask[E ~int32](field string, values []E, names map[int32]string) (uint64, error) {
	var m uint64
	for i, v := range values {
		if v == 0 {
			return 0, fmt.Errorf("%w: %s[%d]: %s is not a value to filter on", ErrInvalid, field, i, names[0])
		}
		if _, known := names[int32(v)]; !known || v < 0 || v >= 64 {
			return 0, fmt.Errorf("%w: %s[%d]: unknown value %d", ErrInvalid, field, i, int32(v))
		}
		m |= 1 << uint(v)
	}
	return m, nil
}

// Match reports whether an event with key k passes the filter. It does not
// allocate.
func (f *Filter) Match(k *Key) bool {
	if f.types != 0 && !inMask(f.types, int32(k.Type)) {
		return false
	}
	if f.providers != 0 && !inMask(f.providers, int32(k.Provider)) {
		return false
	}
	if f.statuses != 0 && !inMask(f.statuses, int32(k.Status)) {
		return false
	}
	if len(f.channels) == 0 {
		return f.scope == nil || f.scope.permitsChannel(k.Channel)
	}
	if f.channelSet != nil {
		_, ok := f.channelSet[k.Channel]
		return ok
	}
	for _, c := range f.channels {
		if c == k.Channel {
			return true
		}
	}
	return false
}

func inMask(m uint64, v int32) bool { return v >= 0 && v < 64 && m&(1<<uint(v)) != 0 }

// MatchAll reports whether the filter accepts every event.
func (f *Filter) MatchAll() bool {
	return f.types == 0 && f.providers == 0 && f.statuses == 0 && len(f.channels) == 0 && f.scope == nil
}

// ChannelKeys returns the channel keys the filter accepts; nil means any.
// The caller must not modify the slice.
func (f *Filter) ChannelKeys() []string { return f.channels }

// Types returns the event types the filter accepts, in ascending order; nil
// means any.
func (f *Filter) Types() []eventsv1.EventType { return values[eventsv1.EventType](f.types) }

// Providers returns the providers the filter accepts, in ascending order;
// nil means any.
func (f *Filter) Providers() []eventsv1.Provider { return values[eventsv1.Provider](f.providers) }

// Statuses returns the statuses the filter accepts, in ascending order; nil
// means any. A filter with statuses accepts status updates only, whatever
// Types says.
func (f *Filter) Statuses() []eventsv1.Status { return values[eventsv1.Status](f.statuses) }

// ChannelsExact reports whether ChannelKeys says all there is to say about
// channels: false when the filter was narrowed to channel prefixes by Within,
// which only Match applies.
func (f *Filter) ChannelsExact() bool { return f.scope == nil }

func values[E ~int32](m uint64) []E {
	if m == 0 {
		return nil
	}
	var out []E
	for v := int32(1); v < 64; v++ {
		if inMask(m, v) {
			out = append(out, E(v))
		}
	}
	return out
}
