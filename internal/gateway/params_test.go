package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestEnumParameters: providers, types and statuses are read by
// sociocs.Table.Parse, as on the command line and in the auth file, and
// handed on by their enum names, which the gateway parses; numbers pass as
// they are. Other enums (order) take their enum names only.
func TestEnumParameters(t *testing.T) {
	tests := []struct {
		name, target string
		wantQuery    string // what the handler behind sees; "" when refused
		wantMsg      string
	}{
		{"provider code", "/v1/events?providers=twlo", "providers=PROVIDER_TWILIO_SMS", ""},
		{"names, codes and numbers, repeated", "/v1/events:stream?channel_keys=a&providers=Twilio_SMS&providers=2&types=status_update&statuses=FAILED&statuses=STATUS_READ",
			"channel_keys=a&providers=PROVIDER_TWILIO_SMS&providers=2&types=EVENT_TYPE_STATUS_UPDATE&statuses=STATUS_FAILED&statuses=STATUS_READ", ""},
		{"enum names untouched", "/v1/events?providers=PROVIDER_GUPSHUP_WHATSAPP&order=ORDER_NEWEST_FIRST&page_size=5",
			"providers=PROVIDER_GUPSHUP_WHATSAPP&order=ORDER_NEWEST_FIRST&page_size=5", ""},
		{"a value without a code", "/v1/events?types=unknown", "types=EVENT_TYPE_UNKNOWN", ""},
		{"unknown provider", "/v1/events?providers=sms", "",
			`query parameter "providers": "sms" is not a Sociocs code (twlo, twlowa, gswa, tlnx) or an enum name (PROVIDER_TWILIO_SMS, `},
		{"UNSPECIFIED is no value", "/v1/events:stream?types=EVENT_TYPE_UNSPECIFIED", "", `query parameter "types": "EVENT_TYPE_UNSPECIFIED" is not a Sociocs code`},
		{"order takes its enum names only", "/v1/events?order=newest_first", "", `query parameter "order": "newest_first" is not one of ORDER_UNSPECIFIED`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			h := CheckParameters(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.URL.RawQuery }))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.target, nil))
			if tt.wantQuery != "" {
				if w.Code != http.StatusOK || got != tt.wantQuery {
					t.Fatalf("%d %s; the handler saw %q, want %q", w.Code, w.Body, got, tt.wantQuery)
				}
				return
			}
			var st struct{ Message string }
			json.Unmarshal(w.Body.Bytes(), &st)
			if w.Code != http.StatusBadRequest || !strings.Contains(st.Message, tt.wantMsg) {
				t.Fatalf("%d %s, want 400 containing %q", w.Code, w.Body, tt.wantMsg)
			}
		})
	}
}
