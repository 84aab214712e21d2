package sociocs_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/sociocs"
)

func TestTables(t *testing.T) {
	// What Sociocs documents (see shared/SOCIOCS.md): a schema change that
	// drops or renames one of these breaks webhooks already configured.
	if got, want := sociocs.Providers.Codes(), []string{"twlo", "twlowa", "gswa", "tlnx"}; !cmp.Equal(got, want) {
		t.Errorf("provider codes %v, want %v", got, want)
	}
	if got, want := sociocs.EventTypes.Codes(), []string{"message", "status_update"}; !cmp.Equal(got, want) {
		t.Errorf("event type codes %v, want %v", got, want)
	}
	wantStatuses := []string{"sent", "delivered", "read", "failed", "queued", "sending", "undelivered", "sending_failed", "delivery_failed", "enqueued"}
	if got := sociocs.Statuses.Codes(); !cmp.Equal(got, wantStatuses) {
		t.Errorf("status codes %v, want %v", got, wantStatuses)
	}
	if p, ok := sociocs.Providers.ByCode("gswa"); !ok || p != eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP {
		t.Errorf("ByCode(gswa) = %v, %v", p, ok)
	}
	for _, code := range []string{"", "TWLO", "unknown", "none"} {
		if p, ok := sociocs.Providers.ByCode(code); ok {
			t.Errorf("ByCode(%q) = %v, want no value", code, p)
		}
	}
	if c := sociocs.Statuses.Code(eventsv1.Status_STATUS_SENDING_FAILED); c != "sending_failed" {
		t.Errorf("Code(STATUS_SENDING_FAILED) = %q", c)
	}
	for _, v := range []eventsv1.Status{eventsv1.Status_STATUS_UNSPECIFIED, eventsv1.Status_STATUS_UNKNOWN, 99} {
		if c := sociocs.Statuses.Code(v); c != "" {
			t.Errorf("Code(%v) = %q, want none", v, c)
		}
	}
	for _, e := range sociocs.Providers.Entries() {
		if e.Name != e.Value.String() {
			t.Errorf("entry %+v: name is not the enum's", e)
		}
	}
}

// TestParse: one reader of the names people type, on the command line, in
// the auth file and in REST query parameters.
func TestParse(t *testing.T) {
	tests := []struct {
		name string
		got  func() (int32, error)
		want int32
	}{
		{"provider code", parse(sociocs.Providers, "twlo"), int32(eventsv1.Provider_PROVIDER_TWILIO_SMS)},
		{"provider code in upper case", parse(sociocs.Providers, "GSWA"), int32(eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP)},
		{"provider enum name", parse(sociocs.Providers, "PROVIDER_TELNYX_SMS"), int32(eventsv1.Provider_PROVIDER_TELNYX_SMS)},
		{"provider enum name in lower case", parse(sociocs.Providers, "provider_twilio_whatsapp"), int32(eventsv1.Provider_PROVIDER_TWILIO_WHATSAPP)},
		{"provider name without prefix", parse(sociocs.Providers, "Twilio_SMS"), int32(eventsv1.Provider_PROVIDER_TWILIO_SMS)},
		{"provider without a code", parse(sociocs.Providers, "unknown"), int32(eventsv1.Provider_PROVIDER_UNKNOWN)},
		{"event type code", parse(sociocs.EventTypes, "status_update"), int32(eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE)},
		{"event type enum name", parse(sociocs.EventTypes, "EVENT_TYPE_MESSAGE"), int32(eventsv1.EventType_EVENT_TYPE_MESSAGE)},
		{"event type without a code", parse(sociocs.EventTypes, "Unknown"), int32(eventsv1.EventType_EVENT_TYPE_UNKNOWN)},
		{"status code", parse(sociocs.Statuses, "delivery_failed"), int32(eventsv1.Status_STATUS_DELIVERY_FAILED)},
		{"status enum name", parse(sociocs.Statuses, "STATUS_READ"), int32(eventsv1.Status_STATUS_READ)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := tt.got(); err != nil || got != tt.want {
				t.Fatalf("Parse = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name string
		got  func() (int32, error)
		want string
	}{
		{"unknown provider", parse(sociocs.Providers, "sms"), `sociocs: unknown provider "sms": want a Sociocs code (twlo, twlowa, gswa, tlnx) or an enum name (PROVIDER_TWILIO_SMS, ` +
			`PROVIDER_TWILIO_WHATSAPP, PROVIDER_GUPSHUP_WHATSAPP, PROVIDER_TELNYX_SMS, PROVIDER_UNKNOWN), in any case, PROVIDER_ optional`},
		{"UNSPECIFIED is no value", parse(sociocs.Providers, "PROVIDER_UNSPECIFIED"), `unknown provider "PROVIDER_UNSPECIFIED"`},
		{"nor without prefix", parse(sociocs.Statuses, "unspecified"), `unknown status "unspecified"`},
		{"a number is no name", parse(sociocs.Providers, "1"), `unknown provider "1"`},
		{"empty", parse(sociocs.EventTypes, ""), `sociocs: unknown event type "": want a Sociocs code (message, status_update) or an enum name (EVENT_TYPE_MESSAGE, EVENT_TYPE_STATUS_UPDATE, EVENT_TYPE_UNKNOWN)`},
		{"another enum's name", parse(sociocs.Statuses, "PROVIDER_TWILIO_SMS"), `unknown status "PROVIDER_TWILIO_SMS"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.got()
			var nameErr *sociocs.NameError
			if !errors.Is(err, sociocs.ErrUnknownName) || !errors.As(err, &nameErr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a NameError containing %q", err, tt.want)
			}
		})
	}
}

func parse[E ~int32](t *sociocs.Table[E], s string) func() (int32, error) {
	return func() (int32, error) {
		e, err := t.Parse(s)
		return int32(e), err
	}
}
