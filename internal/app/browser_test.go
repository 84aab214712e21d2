package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// do sends one request and returns the response (body read).
func do(t *testing.T, method, rawURL string, header http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestCORS: browsers on the allowed origins may call the REST API and read
// its OpenAPI document, with a bearer token; other origins get no CORS
// headers (and a refused preflight); the webhooks never get CORS.
func TestCORS(t *testing.T) {
	const allowed, other = "https://dash.example.com", "https://evil.example.com"
	cfg := testConfig(t)
	cfg.Auth.CORSAllowedOrigins = []string{allowed}
	s := start(t, cfg)
	preflight := func(path, origin string) *http.Response {
		resp, _ := do(t, http.MethodOptions, s.base+path, http.Header{
			"Origin": {origin}, "Access-Control-Request-Method": {"GET"},
			"Access-Control-Request-Headers": {"authorization,last-event-id"},
		}, nil)
		return resp
	}
	for _, path := range []string{"/v1/events:stream", "/v1/events", "/v1/events/1", "/v1/stream-tokens", "/openapi.json"} {
		resp := preflight(path, allowed)
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != allowed ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Last-Event-ID") ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") || h.Get("Access-Control-Max-Age") == "" ||
			!strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") || h.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight of %s from an allowed origin: %d %v", path, resp.StatusCode, h)
		}
		if resp := preflight(path, other); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight of %s from another origin: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	for _, path := range []string{"/v1/events", "/openapi.json"} {
		resp, _ := do(t, http.MethodGet, s.base+path, http.Header{"Origin": {allowed}}, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != allowed {
			t.Errorf("GET %s from an allowed origin: %d %v", path, resp.StatusCode, resp.Header)
		}
		resp, _ = do(t, http.MethodGet, s.base+path, http.Header{"Origin": {other}}, nil)
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET %s from another origin has %q", path, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	resp, _ := do(t, http.MethodPost, s.base+"/webhooks/sociocs", http.Header{"Origin": {allowed}, "Content-Type": {"application/json"}},
		strings.NewReader(string(sample(t, "message_twlo.json"))))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a webhook got CORS: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := preflight("/webhooks/sociocs", allowed); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a webhook preflight got CORS: %v", resp.Header)
	}
}

// TestCORSAnyOrigin: "*" allows any origin, without credentials.
func TestCORSAnyOrigin(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.CORSAllowedOrigins = []string{"*"}
	s := start(t, cfg)
	resp, _ := do(t, http.MethodGet, s.base+"/v1/events", http.Header{"Origin": {"http://localhost:3000"}}, nil)
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("GET from any origin: %v", resp.Header)
	}
}

// TestStreamTokens: a client mints a stream token with its bearer token
// (REST or gRPC) and opens a Server-Sent Events stream with it in the URL,
// within its own rights; a token that is not one, or whose credential has
// since been revoked, is refused.
func TestStreamTokens(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.Auth.File = authFile(dir, "twlo", "admin")
	s := start(t, cfg)
	for _, w := range webhooks {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK {
			t.Fatalf("POST %s: %d %v", w.file, code, body)
		}
	}
	mint := func(token string) (int, string) {
		resp, body := do(t, http.MethodPost, s.base+"/v1/stream-tokens",
			http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}, strings.NewReader("{}"))
		var out struct {
			Token      string `json:"token"`
			ExpireTime string `json:"expire_time"`
		}
		json.Unmarshal(body, &out)
		if resp.StatusCode == http.StatusOK && (out.Token == "" || out.ExpireTime == "") {
			t.Fatalf("POST /v1/stream-tokens: %s", body)
		}
		return resp.StatusCode, out.Token
	}
	if code, _ := mint("nope"); code != http.StatusUnauthorized {
		t.Fatalf("minting with a bad token: %d", code)
	}
	code, tok := mint("tok-twlo")
	if code != http.StatusOK {
		t.Fatalf("minting: %d", code)
	}
	if strings.Contains(tok, "tok-twlo") {
		t.Fatal("the stream token contains the bearer token")
	}
	ctx := ctxT(t)
	sse := http.Header{"Accept": {"text/event-stream"}}
	resp, r := rawStream(t, ctx, s.base+"/v1/events:stream?from_earliest=true&access_token="+url.QueryEscape(tok), sse)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("SSE with a stream token: %d %s", resp.StatusCode, b)
	}
	readLine(t, r)
	// twlo may read messages only: the first event it gets is the message.
	if ev := (sseReader{r}).next(t); ev.id == "" || !strings.Contains(ev.data, `"type":"EVENT_TYPE_MESSAGE"`) {
		t.Fatalf("first event through the token: %+v", ev)
	}
	// Outside the client's rights: refused as for its bearer token.
	resp, _ = rawStream(t, ctx, s.base+"/v1/events:stream?types=EVENT_TYPE_STATUS_UPDATE&access_token="+url.QueryEscape(tok), sse)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a filter outside the rights: %d", resp.StatusCode)
	}
	for _, bad := range []string{"st1.garbage.x", tok + "x", "tok-twlo"} {
		resp, _ := rawStream(t, ctx, s.base+"/v1/events:stream?access_token="+url.QueryEscape(bad), sse)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("access_token %q: %d, want 401", bad, resp.StatusCode)
		}
	}
	// Over gRPC too.
	resp2, err := s.client.CreateStreamToken(withToken(ctx, "tok-admin"), &eventsv1.CreateStreamTokenRequest{})
	if err != nil || resp2.GetToken() == "" {
		t.Fatalf("CreateStreamToken: %v %v", resp2, err)
	}
	if _, err := s.client.CreateStreamToken(ctx, &eventsv1.CreateStreamTokenRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("CreateStreamToken without a credential: %v", err)
	}

	// twlo is revoked: its token opens nothing any more.
	authFile(dir, "admin")
	if err := s.app.ReloadAuth(); err != nil {
		t.Fatal(err)
	}
	resp, _ = rawStream(t, ctx, s.base+"/v1/events:stream?access_token="+url.QueryEscape(tok), sse)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the token of a revoked client: %d, want 401", resp.StatusCode)
	}
}
