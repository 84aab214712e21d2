package filter

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// ErrForbidden wraps the error of a request that asks for more than its
// client may read; the message names the field and the offending value.
var ErrForbidden = errors.New("permission denied")

// Scope is what a client may read: channel keys (exact, or every key that
// starts with a prefix), providers and event types. An empty dimension permits
// any value; the zero Scope permits everything. A Scope is immutable once
// built and safe for concurrent use.
type Scope struct {
	channels  map[string]struct{}
	prefixes  []string
	providers uint64
	types     uint64
}

// NewScope builds a Scope. A channel pattern ending in '*' permits every key
// that starts with what precedes the '*' ("*" alone permits every key); any
// other '*' is an error, as are UNSPECIFIED or unknown enum values. Errors
// wrap ErrInvalid and name the field.
func NewScope(channelPatterns []string, providers []eventsv1.Provider, types []eventsv1.EventType) (Scope, error) {
	var s Scope
	var err error
	if s.providers, err = mask("providers", providers, eventsv1.Provider_name); err != nil {
		return Scope{}, err
	}
	if s.types, err = mask("types", types, eventsv1.EventType_name); err != nil {
		return Scope{}, err
	}
	every := false
	for i, p := range channelPatterns {
		prefix, wildcard := strings.CutSuffix(p, "*")
		switch {
		case p == "":
			return Scope{}, fmt.Errorf("%w: channel_keys[%d]: empty pattern", ErrInvalid, i)
		case len(p) > MaxChannelKeyLen:
			return Scope{}, fmt.Errorf("%w: channel_keys[%d]: longer than %d bytes", ErrInvalid, i, MaxChannelKeyLen)
		case !utf8.ValidString(p):
			return Scope{}, fmt.Errorf("%w: channel_keys[%d]: not valid UTF-8", ErrInvalid, i)
		case strings.Contains(prefix, "*"):
			return Scope{}, fmt.Errorf("%w: channel_keys[%d]: %q: '*' is allowed only at the end", ErrInvalid, i, p)
		case wildcard && prefix == "":
			every = true
		case wildcard:
			s.prefixes = append(s.prefixes, prefix)
		default:
			if s.channels == nil {
				s.channels = make(map[string]struct{})
			}
			s.channels[p] = struct{}{}
		}
	}
	if every {
		// "*": every channel, whatever else is listed.
		s.channels, s.prefixes = nil, nil
	}
	return s, nil
}

// Unrestricted reports whether the scope permits every event.
func (s *Scope) Unrestricted() bool {
	return s.providers == 0 && s.types == 0 && !s.channelsRestricted()
}

func (s *Scope) channelsRestricted() bool { return s.channels != nil || s.prefixes != nil }

// permitsChannel does not allocate.
func (s *Scope) permitsChannel(c string) bool {
	if !s.channelsRestricted() {
		return true
	}
	if _, ok := s.channels[c]; ok {
		return true
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

// Permits reports whether an event with key k is within the scope. It does
// not allocate.
func (s *Scope) Permits(k *Key) bool {
	return (s.providers == 0 || inMask(s.providers, int32(k.Provider))) &&
		(s.types == 0 || inMask(s.types, int32(k.Type))) &&
		s.permitsChannel(k.Channel)
}

// Within returns f narrowed to the scope: a field f leaves empty ("any") is
// narrowed to what the scope permits, never widened; a value f names that the
// scope does not permit is an error wrapping ErrForbidden that names the field
// and the index. The result matches only events that both f and the scope
// accept.
func (f Filter) Within(s *Scope) (Filter, error) {
	if s == nil || s.Unrestricted() {
		return f, nil
	}
	for i, c := range f.channels {
		if !s.permitsChannel(c) {
			return Filter{}, fmt.Errorf("%w: channel_keys[%d]: channel %q is outside this client's rights", ErrForbidden, i, c)
		}
	}
	if err := within("providers", f.providers, s.providers, eventsv1.Provider_name); err != nil {
		return Filter{}, err
	}
	if err := within("types", f.types, s.types, eventsv1.EventType_name); err != nil {
		return Filter{}, err
	}
	statusUpdate := int32(eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE)
	if f.statuses != 0 && s.types != 0 && !inMask(s.types, statusUpdate) {
		return Filter{}, fmt.Errorf("%w: statuses: status updates are outside this client's rights", ErrForbidden)
	}
	if f.providers == 0 {
		f.providers = s.providers
	}
	if f.types == 0 {
		f.types = s.types
	}
	if len(f.channels) == 0 && s.channelsRestricted() {
		if len(s.prefixes) == 0 {
			// Exact keys only: the narrowed filter lists them, so that the
			// hub indexes it by channel and the log filters on the server.
			keys := make([]string, 0, len(s.channels))
			for c := range s.channels {
				keys = append(keys, c)
			}
			f.setChannels(keys)
		} else {
			f.scope = s
		}
	}
	return f, nil
}

// within checks that every value of the requested mask is in the permitted
// one (0: any).
func within(field string, requested, permitted uint64, names map[int32]string) error {
	if permitted == 0 || requested&^permitted == 0 {
		return nil
	}
	for v := int32(1); v < 64; v++ {
		if inMask(requested, v) && !inMask(permitted, v) {
			return fmt.Errorf("%w: %s: %s is outside this client's rights", ErrForbidden, field, names[v])
		}
	}
	return nil
}

// Covers reports whether s permits every event that o permits. A nil Scope
// permits everything.
func (s *Scope) Covers(o *Scope) bool {
	if s == nil || s.Unrestricted() {
		return true
	}
	if o == nil {
		return false
	}
	if s.providers != 0 && (o.providers == 0 || o.providers&^s.providers != 0) {
		return false
	}
	if s.types != 0 && (o.types == 0 || o.types&^s.types != 0) {
		return false
	}
	if !s.channelsRestricted() {
		return true
	}
	if !o.channelsRestricted() {
		return false
	}
	for c := range o.channels {
		if !s.permitsChannel(c) {
			return false
		}
	}
	for _, p := range o.prefixes {
		if !s.coversPrefix(p) {
			return false
		}
	}
	return true
}

// coversPrefix reports whether every key that starts with p is permitted by
// one of s's prefixes (exact keys never cover a prefix).
func (s *Scope) coversPrefix(p string) bool {
	for _, q := range s.prefixes {
		if strings.HasPrefix(p, q) {
			return true
		}
	}
	return false
}
