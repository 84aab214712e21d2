package main

import (
	"fmt"
	"strings"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/sociocs"
)

// The names of providers, statuses and event types on the command line:
// Sociocs's codes (twlo, delivered, status_update), from the one table of
// them (internal/sociocs), or the enum names of the API
// (PROVIDER_TWILIO_SMS, STATUS_DELIVERED; without the prefix too, in any
// case).

// parseProvider returns the provider s names and its Sociocs code ("" for
// PROVIDER_UNKNOWN, which has none).
func parseProvider(s string) (eventsv1.Provider, string, error) {
	return parseCode(s, "provider", "PROVIDER_", "PROVIDER_TWILIO_SMS", sociocs.Providers, eventsv1.Provider_value)
}

// parseStatus returns the status s names and its Sociocs string ("" for
// STATUS_UNKNOWN).
func parseStatus(s string) (eventsv1.Status, string, error) {
	return parseCode(s, "status", "STATUS_", "STATUS_DELIVERED", sociocs.Statuses, eventsv1.Status_value)
}

// parseCode returns the value s names in table, by its Sociocs code or by
// its enum name (see enumValue), and that value's Sociocs code. kind and
// example name the field and one enum name in the error.
func parseCode[E ~int32](s, kind, prefix, example string, table *sociocs.Table[E], values map[string]int32) (E, string, error) {
	if e, ok := table.ByCode(strings.ToLower(s)); ok {
		return e, strings.ToLower(s), nil
	}
	v, ok := enumValue(s, prefix, values)
	if !ok {
		return 0, "", fmt.Errorf("unknown %s %q: want one of %s, or an enum name (%s)", kind, s, strings.Join(table.Codes(), ", "), example)
	}
	return E(v), table.Code(E(v)), nil
}

// parseType returns the event type s names (message, status_update,
// unknown, or EVENT_TYPE_…).
func parseType(s string) (eventsv1.EventType, error) {
	v, ok := enumValue(s, "EVENT_TYPE_", eventsv1.EventType_value)
	if !ok {
		return 0, fmt.Errorf("unknown event type %q: want message, status_update or unknown", s)
	}
	return eventsv1.EventType(v), nil
}

// enumValue looks s up as an enum name, with or without prefix, in any
// case. The UNSPECIFIED value is no answer.
func enumValue(s, prefix string, values map[string]int32) (int32, bool) {
	u := strings.ToUpper(s)
	v, ok := values[u]
	if !ok {
		v, ok = values[prefix+u]
	}
	return v, ok && v != 0
}
