package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// restStatus is a google.rpc.Status as the REST API writes it.
type restStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (s *server) do(t *testing.T, method, path string) (*http.Response, restStatus, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st restStatus
	json.Unmarshal(b, &st)
	return resp, st, b
}

// TestRESTParametersMustBeUTF8: a parameter that is not UTF-8 once
// percent-decoded, in the query or the path, is 400 INVALID_ARGUMENT
// naming it, on every REST path (it was a 500).
func TestRESTParametersMustBeUTF8(t *testing.T) {
	s := start(t, testConfig(t))
	tests := []struct{ path, name string }{
		{"/v1/events?channel_keys=%ff", "channel_keys"},
		{"/v1/events?channel_keys=twlo_1&channel_keys=tw%C3lo", "channel_keys"},
		{"/v1/events?page_token=%ff%fe", "page_token"},
		{"/v1/events:stream?after_sequence=1&epoch=%ff", "epoch"},
		{"/v1/events:stream?channel_keys=%80", "channel_keys"},
		{"/v1/events/by-id/%ff%fe", "id"},
		{"/v1/events/%ff", "sequence"},
		{"/v1/events?%ff=1", "query parameter name"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, st, b := s.do(t, http.MethodGet, tt.path)
			if resp.StatusCode != http.StatusBadRequest || st.Code != 3 || !strings.Contains(st.Message, tt.name) || !strings.Contains(st.Message, "UTF-8") {
				t.Fatalf("GET %s: %d %s; want 400 with code 3 naming %s", tt.path, resp.StatusCode, b, tt.name)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
		})
	}
	// UTF-8, percent-encoded, is a parameter like any other.
	for _, path := range []string{"/v1/events?channel_keys=tw%C3%A9lo_1", "/v1/events/by-id/%C3%A9"} {
		resp, _, b := s.do(t, http.MethodGet, path)
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// TestRESTWrongMethod: a method the API does not serve on one of its paths
// is 405 with an Allow header and a google.rpc.Status body (it was 501).
func TestRESTWrongMethod(t *testing.T) {
	s := start(t, testConfig(t))
	for _, tt := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/v1/events", "GET"},
		{http.MethodPost, "/v1/events", "GET"},
		{http.MethodPut, "/v1/events/1", "GET"},
		{http.MethodDelete, "/v1/events/by-id/ev_1", "GET"},
		{http.MethodPost, "/v1/events:stream", "GET"},
		{http.MethodGet, "/v1/stream-tokens", "POST"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, st, b := s.do(t, tt.method, tt.path)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tt.allow || st.Code == 0 || !strings.Contains(st.Message, tt.method) {
				t.Fatalf("%s %s: %d (Allow %q) %s; want 405, Allow: %s and a Status naming the method",
					tt.method, tt.path, resp.StatusCode, resp.Header.Get("Allow"), b, tt.allow)
			}
		})
	}
	// A path the API does not serve at all is still 404.
	if resp, st, b := s.do(t, http.MethodDelete, "/v1/nothing"); resp.StatusCode != http.StatusNotFound || st.Code != 5 {
		t.Fatalf("DELETE /v1/nothing: %d %s, want 404", resp.StatusCode, b)
	}
}

// TestRESTParametersAreChecked: a query parameter the route does not take
// is 400 naming it (a misspelt filter would otherwise be ignored and widen
// what is returned), and so is a value of the wrong kind, in words a client
// can act on rather than a parser's.
func TestRESTParametersAreChecked(t *testing.T) {
	s := start(t, testConfig(t))
	tests := []struct{ path, want string }{
		{"/v1/events:stream?channel_key=twlo_1", `unknown query parameter "channel_key" for GET /v1/events:stream: did you mean "channel_keys"?`},
		{"/v1/events?from_earliest=true", `unknown query parameter "from_earliest" for GET /v1/events: it takes channel_keys, end_time, order`},
		{"/v1/events:stream?after_sequence=-1", `query parameter "after_sequence": "-1" is not an unsigned integer`},
		{"/v1/events?page_size=ten", `query parameter "page_size": "ten" is not a 32-bit integer`},
		{"/v1/events?start_time=yesterday", `query parameter "start_time": "yesterday" is not an RFC 3339 time`},
		{"/v1/events:stream?from_earliest=yes", `query parameter "from_earliest": "yes" is not true or false`},
		{"/v1/events?providers=sms", `query parameter "providers": "sms" is not a Sociocs code (twlo, twlowa, gswa, tlnx) or an enum name (PROVIDER_TWILIO_SMS`},
		{"/v1/events?order=ORDER_NEWEST_FIRST&order=ORDER_OLDEST_FIRST", `query parameter "order" is given 2 times: it takes one value`},
		{"/v1/events/abc", `path parameter "sequence": "abc" is not an unsigned integer`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, st, b := s.do(t, http.MethodGet, tt.path)
			if resp.StatusCode != http.StatusBadRequest || st.Code != 3 || !strings.Contains(st.Message, tt.want) {
				t.Fatalf("GET %s: %d %s, want 400 INVALID_ARGUMENT containing %q", tt.path, resp.StatusCode, b, tt.want)
			}
		})
	}
	// What the routes take passes: enum names or numbers, repeated filters,
	// and the stream's own access_token and last_event_id.
	for _, path := range []string{
		"/v1/events?providers=PROVIDER_TWILIO_SMS&providers=2&channel_keys=a&channel_keys=b&order=ORDER_NEWEST_FIRST&page_size=5",
		"/v1/events?start_time=2026-11-30T10:00:00.5%2B01:00",
	} {
		if resp, _, b := s.do(t, http.MethodGet, path); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	ctx := ctxT(t)
	resp, _ := rawStream(t, ctx, s.base+"/v1/events:stream?access_token=&last_event_id=", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the stream's own parameters: %d", resp.StatusCode)
	}
	// ... and they take one value each, as the others: which of two tokens
	// authenticates must not depend on the order of the query. (Read as a
	// stream: a stream wrongly opened would never end.)
	for _, name := range []string{"access_token", "last_event_id"} {
		t.Run(name+" twice", func(t *testing.T) {
			resp, r := rawStream(t, ctx, s.base+"/v1/events:stream?"+name+"=1&"+name+"=2", nil)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%s given twice: %d, want 400", name, resp.StatusCode)
			}
			b, _ := io.ReadAll(r)
			var st restStatus
			json.Unmarshal(b, &st)
			if want := fmt.Sprintf("query parameter %q is given 2 times: it takes one value", name); st.Code != 3 || !strings.Contains(st.Message, want) {
				t.Fatalf("%s given twice: %s, want INVALID_ARGUMENT containing %q", name, b, want)
			}
		})
	}
}
