package app_test

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// mintedToken is the part of a CreateStreamToken answer that differs from
// one call to the next.
var mintedToken = regexp.MustCompile(`"token":"[^"]*","expire_time":"[^"]*"`)

// TestRESTUnaryMatchesGRPCGateway: every unary REST call answers exactly
// what grpc-gateway answers when it forwards the call to the gRPC port: the
// same status, the same body byte for byte, the same headers but for gRPC
// metadata (which the app's answers do not carry: no gRPC server stands
// behind them). The cases cover what the
// gRPC server decided for the gateway when it stood behind it: answers,
// the service's refusals, authentication (a token, a bad one, none, another
// scheme), rights, and a request that cannot be parsed, which is refused
// before its credential is looked at.
func TestRESTUnaryMatchesGRPCGateway(t *testing.T) {
	s := startWithAuth(t)
	ref := grpcGateway(t, s)
	ids := expected(t)
	const bearer = "Bearer "
	tests := []struct {
		name, method, path, auth, body string
		code                           int
	}{
		{"list", "GET", "/v1/events", bearer + "tok-admin", "", 200},
		{"list a page, newest first", "GET", "/v1/events?page_size=2&order=ORDER_NEWEST_FIRST", bearer + "tok-admin", "", 200},
		{"list narrowed to the client's rights", "GET", "/v1/events", bearer + "tok-twlo", "", 200},
		{"list a time range", "GET", "/v1/events?start_time=2000-01-01T00:00:00Z&end_time=2000-01-02T00:00:00Z", bearer + "tok-admin", "", 200},
		{"list with a page token of nobody", "GET", "/v1/events?page_token=nope", bearer + "tok-admin", "", 400},
		{"list a page too large", "GET", "/v1/events?page_size=5000", bearer + "tok-admin", "", 400},
		{"list outside the client's rights", "GET", "/v1/events?channel_keys=" + otherChannel, bearer + "tok-twlo", "", 403},
		{"list without a credential", "GET", "/v1/events", "", "", 401},
		{"list with an unknown token", "GET", "/v1/events", bearer + "tok-nope", "", 401},
		{"list with another scheme", "GET", "/v1/events", "Basic dG9rLWFkbWlu", "", 401},
		{"list with an empty authorization header", "GET", "/v1/events", " ", "", 401},
		{"a query that does not parse, without a credential", "GET", "/v1/events?channel_keys=%zz", "", "", 400},
		{"get", "GET", "/v1/events/1", bearer + "tok-admin", "", 200},
		{"get by id", "GET", "/v1/events/by-id/" + ids[0].GetId(), bearer + "tok-twlo", "", 200},
		{"get outside the client's rights", "GET", "/v1/events/2", bearer + "tok-twlo", "", 403},
		{"get by id outside the client's rights", "GET", "/v1/events/by-id/" + ids[0].GetId(), bearer + "tok-gswa", "", 403},
		{"get what is not there", "GET", "/v1/events/99", bearer + "tok-admin", "", 404},
		{"get by an id that is not there", "GET", "/v1/events/by-id/ev_nope", bearer + "tok-admin", "", 404},
		{"get sequence 0", "GET", "/v1/events/0", bearer + "tok-admin", "", 400},
		{"get without a credential", "GET", "/v1/events/1", "", "", 401},
		{"mint a stream token", "POST", "/v1/stream-tokens", bearer + "tok-twlo", "{}", 200},
		{"mint with no body", "POST", "/v1/stream-tokens", bearer + "tok-twlo", "", 200},
		{"mint without a credential", "POST", "/v1/stream-tokens", "", "{}", 401},
		{"mint with a body that does not parse, without a credential", "POST", "/v1/stream-tokens", "", "{", 400},
	}
	call := func(t *testing.T, base, method, path, auth, body string) (*http.Response, []byte) {
		h := http.Header{"Content-Type": {"application/json"}}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		resp, b := do(t, method, base+path, h, strings.NewReader(body))
		return resp, mintedToken.ReplaceAll(b, []byte(`"token":"…","expire_time":"…"`))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ours, a := call(t, s.base, tt.method, tt.path, tt.auth, tt.body)
			theirs, b := call(t, ref, tt.method, tt.path, tt.auth, tt.body)
			if ours.StatusCode != tt.code || theirs.StatusCode != tt.code {
				t.Fatalf("status %d (ours) and %d (grpc-gateway), want %d\n ours:   %s\n theirs: %s", ours.StatusCode, theirs.StatusCode, tt.code, a, b)
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("bodies differ:\n ours:   %s\n theirs: %s", a, b)
			}
			if got, want := headers(ours.Header), headers(theirs.Header); got != want {
				t.Errorf("headers differ:\n ours:   %s\n theirs: %s", got, want)
			}
			// The loopback leaked Grpc-Metadata-Content-Type: application/grpc
			// into every answer that succeeded; nothing of gRPC's is sent now.
			for k := range ours.Header {
				if strings.HasPrefix(k, "Grpc-") {
					t.Errorf("header %s: %q", k, ours.Header[k])
				}
			}
		})
	}
}

// headers lists h but for what differs between two answers to the same
// request (Date) and gRPC metadata, sorted.
func headers(h http.Header) string {
	var out []string
	for k, v := range h {
		if k == "Date" || strings.HasPrefix(k, "Grpc-Metadata-") {
			continue
		}
		out = append(out, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}
