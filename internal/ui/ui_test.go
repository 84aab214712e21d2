package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/eventsvc/eventsvc/internal/ui"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	ui.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// noRedirects answers redirects as they are.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, rawURL string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestFiles: the page and its files, each with its type, the security
// headers and an ETag that a browser revalidates with.
func TestFiles(t *testing.T) {
	srv := serve(t)
	for _, f := range []struct{ path, contentType, contains string }{
		{"/ui/", "text/html; charset=utf-8", `<script type="module" src="app.js"></script>`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "new EventSource("},
		{"/ui/style.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{"/ui/icon.svg", "image/svg+xml", "<svg"},
	} {
		resp, body := get(t, srv.URL+f.path, nil)
		h := resp.Header
		if resp.StatusCode != http.StatusOK || h.Get("Content-Type") != f.contentType || !strings.Contains(body, f.contains) {
			t.Errorf("GET %s: %d %q, body has %q: %v", f.path, resp.StatusCode, h.Get("Content-Type"), f.contains, strings.Contains(body, f.contains))
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", f.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") || strings.Contains(csp, "http") {
			t.Errorf("GET %s: Content-Security-Policy %q allows more than the page's origin", f.path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-cache" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", f.path, h)
		}
		etag := h.Get("ETag")
		if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(etag) {
			t.Fatalf("GET %s: ETag %q", f.path, etag)
		}
		again, body := get(t, srv.URL+f.path, http.Header{"If-None-Match": {etag}})
		if again.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("GET %s with its ETag: %d, %d bytes", f.path, again.StatusCode, len(body))
		}
	}
}

// TestPageUsesNothingElse: no inline script or style (the policy would
// block them) and nothing from another origin.
func TestPageUsesNothingElse(t *testing.T) {
	srv := serve(t)
	_, html := get(t, srv.URL+"/ui/", nil)
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=`).MatchString(html) {
		t.Error("the page has inline script or style")
	}
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/style.css"} {
		_, body := get(t, srv.URL+path, nil)
		if m := regexp.MustCompile(`(?:src|href)=["']?(?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//|import\s.*from\s+["']https?:`).FindString(body); m != "" {
			t.Errorf("%s loads from another origin: %q", path, m)
		}
	}
}

// TestRoutes: / leads to the page with its query; nothing else is served.
func TestRoutes(t *testing.T) {
	srv := serve(t)
	resp, _ := get(t, srv.URL+"/?from_earliest=true&statuses=STATUS_FAILED", nil)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/?from_earliest=true&statuses=STATUS_FAILED" {
		t.Errorf("GET /: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = get(t, srv.URL+"/ui", nil)
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/ui/index.html", "/ui/nope.js", "/ui/static/app.js", "/ui/app.js/", "/other"} {
		if resp, _ := get(t, srv.URL+path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	resp, err := http.Post(srv.URL+"/ui/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /ui/: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
