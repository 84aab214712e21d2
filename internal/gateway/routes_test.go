package gateway

import (
	"slices"
	"testing"
)

func TestRoutesFromTheOpenAPIDocument(t *testing.T) {
	seg := func(s ...string) []string { return s }
	for _, tt := range []struct {
		segments []string
		allowed  []string
	}{
		{seg("v1", "events"), []string{"GET"}},
		{seg("v1", "events:stream"), []string{"GET"}},
		{seg("v1", "events", "42"), []string{"GET"}},
		{seg("v1", "events", "by-id", "ev_1"), []string{"GET"}},
		{seg("v1", "nothing"), nil},
		{seg("v1", "events", "1", "2"), nil},
	} {
		if got := allowedMethods(tt.segments); !slices.Equal(got, tt.allowed) {
			t.Errorf("allowedMethods(%q) = %q, want %q", tt.segments, got, tt.allowed)
		}
	}
	for _, tt := range []struct {
		segments []string
		i        int
		name     string
	}{
		{seg("v1", "events", "by-id", "\xff"), 3, "id"},
		{seg("v1", "events", "\xff"), 2, "sequence"},
		{seg("v1", "\xff"), 1, ""},
		{seg("v1", "events", "\xff", "x"), 2, ""},
	} {
		if got := paramName(tt.segments, tt.i); got != tt.name {
			t.Errorf("paramName(%q, %d) = %q, want %q", tt.segments, tt.i, got, tt.name)
		}
	}
}
