package main

import (
	"fmt"
	"strings"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

// The names of providers, statuses and event types on the command line:
// Sociocs's codes (twlo, delivered, status_update) or the enum names of the
// API (PROVIDER_TWILIO_SMS, STATUS_DELIVERED; without the prefix too, in
// any case). This is the one place that knows them, so that it can read a
// shared table of providers and statuses once there is one.

// parseProvider returns the provider s names and its Sociocs code ("" for
// PROVIDER_UNKNOWN, which has none).
func parseProvider(s string) (eventsv1.Provider, string, error) {
	if p, ok := webhook.ProviderCode(strings.ToLower(s)); ok {
		return p, strings.ToLower(s), nil
	}
	v, ok := enumValue(s, "PROVIDER_", eventsv1.Provider_value)
	if !ok {
		return 0, "", fmt.Errorf("unknown provider %q: want one of %s, or an enum name (PROVIDER_TWILIO_SMS)", s, strings.Join(webhook.ProviderCodes(), ", "))
	}
	p := eventsv1.Provider(v)
	for _, c := range webhook.ProviderCodes() {
		if q, _ := webhook.ProviderCode(c); q == p {
			return p, c, nil
		}
	}
	return p, "", nil
}

// parseStatus returns the status s names and its Sociocs string ("" for
// STATUS_UNKNOWN).
func parseStatus(s string) (eventsv1.Status, string, error) {
	if st, ok := webhook.StatusCode(strings.ToLower(s)); ok {
		return st, strings.ToLower(s), nil
	}
	v, ok := enumValue(s, "STATUS_", eventsv1.Status_value)
	if !ok {
		return 0, "", fmt.Errorf("unknown status %q: want one of %s, or an enum name (STATUS_DELIVERED)", s, strings.Join(webhook.StatusCodes(), ", "))
	}
	st := eventsv1.Status(v)
	for _, c := range webhook.StatusCodes() {
		if q, _ := webhook.StatusCode(c); q == st {
			return st, c, nil
		}
	}
	return st, "", nil
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
