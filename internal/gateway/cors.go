package gateway

import (
	"net/http"
	"strings"
)

// CORS lets pages served from other origins call what next serves under the
// paths applies accepts (the REST API and its OpenAPI document; never the
// webhooks). allowed lists origins ("https://dash.example.com"), or is
// ["*"] for any; empty turns CORS off (next is returned as is).
//
// A preflight (OPTIONS with Access-Control-Request-Method) from an allowed
// origin is answered 204 with the methods and headers the API takes
// (Authorization for bearer tokens, Content-Type, Last-Event-ID for
// Server-Sent Events), how long the answer may be cached, and Vary: Origin;
// one from another origin is refused with 403. Other responses carry
// Access-Control-Allow-Origin for allowed origins only. Credentials (cookies,
// client certificates) are never allowed across origins: the API takes
// bearer tokens, which a page sends in the Authorization header.
func CORS(allowed []string, applies func(path string) bool, next http.Handler) http.Handler {
	if len(allowed) == 0 {
		return next
	}
	any := false
	set := make(map[string]bool, len(allowed))
	for _, o := range allowed {
		if o == "*" {
			any = true
		}
		set[strings.ToLower(o)] = true
	}
	allow := func(origin string) (string, bool) {
		switch {
		case any:
			return "*", true
		case set[strings.ToLower(origin)]:
			return origin, true
		}
		return "", false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !applies(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		value, ok := allow(origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !ok {
				h.Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				w.Write([]byte(`{"code":7,"message":"origin ` + jsonString(origin) + ` is not allowed: see --cors-allowed-origins"}` + "\n"))
				return
			}
			h.Set("Access-Control-Allow-Origin", value)
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", value)
		}
		next.ServeHTTP(w, r)
	})
}

// What a preflight allows, and for how long (seconds) a browser may keep
// the answer.
const (
	corsMethods = "GET, POST"
	corsHeaders = "Authorization, Content-Type, Last-Event-ID"
	corsMaxAge  = "600"
)

// jsonString escapes s for the inside of a JSON string, dropping what is
// not printable ASCII (an Origin header is ASCII).
func jsonString(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		}
	}
	return b.String()
}
