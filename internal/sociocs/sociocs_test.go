package sociocs_test

import (
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
