package natslog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestJetStreamStarting checks which answers make start-up wait (up to
// Config.StartWait) rather than fail at once. A cluster's meta leader
// answers "no suitable peers for placement" to a replicated stream until
// enough servers have reported to it: a new cluster does for a moment
// after it elects its meta leader, which is when several eventsvc
// processes started with it ask for the stream.
func TestJetStreamStarting(t *testing.T) {
	apiErr := func(code int, errCode jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("create stream: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: desc})
	}
	for _, tt := range []struct {
		name     string
		err      error
		starting bool
		hint     string // in startHint's text for --replicas 3
	}{
		{"no meta leader", apiErr(503, 10008, "JetStream system temporarily unavailable"), true, "majority"},
		{"fewer servers up than replicas", apiErr(503, 10023, "insufficient resources"), true, "--replicas 3 needs"},
		{"servers not reported yet", apiErr(400, 10005, "no suitable peers for placement"), true, "--replicas 3 needs"},
		{"request timed out", apiErr(408, 0, "request timeout"), true, "majority"},
		{"no answer", context.DeadlineExceeded, true, "majority"},
		{"no responders", nats.ErrNoResponders, true, "majority"},
		{"no leader yet", errNoLeaderYet, true, "majority"},
		{"a stream of another configuration", apiErr(400, 10058, "stream name already in use with a different configuration"), false, ""},
		{"not permitted", apiErr(403, 0, "permissions violation"), false, ""},
		{"something else", errors.New("boom"), false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := jetStreamStarting(tt.err); got != tt.starting {
				t.Errorf("jetStreamStarting(%v) = %v, want %v", tt.err, got, tt.starting)
			}
			hint := startHint(tt.err, 3)
			if tt.hint == "" && hint != "" || !strings.Contains(hint, tt.hint) {
				t.Errorf("startHint(%v) = %q, want it to say %q", tt.err, hint, tt.hint)
			}
		})
	}
}
