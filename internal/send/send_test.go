package send

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventsvc/eventsvc/internal/webhook"
)

func TestBuild(t *testing.T) {
	file := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(file, []byte(`{"own": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		url     string
		checks  map[string]any // top-level or event_data fields
		wantErr bool
	}{
		{"message by default", Config{}, DefaultURL,
			map[string]any{"event": "message", "provider": "twlo", "channel_key": DefaultChannelKey, "to": "16311113333", "text": DefaultText}, false},
		{"provider sets the channel", Config{Provider: "gswa", Text: "hola"}, DefaultURL,
			map[string]any{"provider": "gswa", "channel_key": "gswa_16311113333", "text": "hola"}, false},
		{"channel sets the provider", Config{ChannelKey: "tlnx_15550001111", MessageID: "MM1"}, DefaultURL,
			map[string]any{"provider": "tlnx", "to": "15550001111", "message_id": "MM1"}, false},
		{"status update goes to the channel's URL", Config{Type: TypeStatusUpdate, ChannelKey: "twlowa_1", URL: "http://h:1/webhooks/sociocs"},
			"http://h:1/webhooks/sociocs/twlowa_1", map[string]any{"event": "status_update", "status": DefaultStatus}, false},
		{"failed carries Sociocs's error", Config{Type: TypeStatusUpdate, Status: "failed"}, DefaultURL + "/" + DefaultChannelKey,
			map[string]any{"status": "failed", "error": map[string]any{"code": 21614.0}}, false},
		{"file as it is", Config{File: file}, DefaultURL, map[string]any{"own": true}, false},
		{"file to a channel's URL", Config{File: file, ChannelKey: "twlo_1"}, DefaultURL + "/twlo_1", map[string]any{"own": true}, false},
		{"file with text", Config{File: file, Text: "x"}, "", nil, true},
		{"provider and channel disagree", Config{Provider: "gswa", ChannelKey: "twlo_1"}, "", nil, true},
		{"unknown provider", Config{ChannelKey: "xyz_1"}, "", nil, true},
		{"channel without number", Config{ChannelKey: "twlo"}, "", nil, true},
		{"status with a message", Config{Status: "sent"}, "", nil, true},
		{"text with a status update", Config{Type: TypeStatusUpdate, Text: "x"}, "", nil, true},
		{"unknown status", Config{Type: TypeStatusUpdate, Status: "lost"}, "", nil, true},
		{"unknown type", Config{Type: "reaction"}, "", nil, true},
		{"not an http URL", Config{URL: "ftp://h/x"}, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, body, err := Build(tt.cfg, strings.NewReader(""))
			if tt.wantErr {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("Build: %v, want ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if url != tt.url {
				t.Errorf("url %s, want %s", url, tt.url)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if data, ok := got["event_data"].(map[string]any); ok {
				for k, v := range data {
					got[k] = v
				}
			}
			for k, want := range tt.checks {
				if m, ok := want.(map[string]any); ok {
					for mk, mv := range m {
						if got[k].(map[string]any)[mk] != mv {
							t.Errorf("%s.%s = %v, want %v", k, mk, got[k], mv)
						}
					}
					continue
				}
				if got[k] != want {
					t.Errorf("%s = %v, want %v", k, got[k], want)
				}
			}
		})
	}
}

// A sent body is what eventsvc converts without a warning, and each send
// without a message id is a new event.
func TestBuiltBodiesConvertCleanly(t *testing.T) {
	seen := map[string]bool{}
	for _, cfg := range []Config{{}, {}, {Type: TypeStatusUpdate, Status: "failed"}, {Type: TypeStatusUpdate, Status: "read", ChannelKey: "gswa_1"}} {
		_, body, err := Build(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := webhook.Convert(body, DefaultChannelKey, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.GetConversionWarnings()) > 0 {
			t.Errorf("%s: warnings %v", body, ev.GetConversionWarnings())
		}
		if seen[ev.GetId()] {
			t.Errorf("event id %s twice: the message id was not fresh", ev.GetId())
		}
		seen[ev.GetId()] = true
	}
}
