// Package ui serves eventsvc's live web view: a page that streams events
// from the same origin over Server-Sent Events (GET /v1/events:stream),
// with filters, a bounded and virtualised list of rows, the full event of a
// row, pause and resume, and stream tokens for a server with an auth file.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary: nothing
// is fetched from elsewhere and nothing is built. Its files are answered
// with a Content-Security-Policy that allows only the page's own origin, and
// with an ETag so that browsers revalidate them (they change with the
// binary, not with their names).
//
// The handler is safe for concurrent use.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Path is where the page is served; Register redirects / there.
const Path = "/ui/"

// securityHeaders go with every file of the page. The policy allows the
// page's own scripts, styles, images and connections (the REST API on the
// same origin) and nothing else: no inline script, no other origin, no
// framing.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"X-Frame-Options":              "DENY",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	// Revalidated on each use (a 304 when unchanged): a new binary's page
	// is never mixed with an old one's script.
	"Cache-Control": "no-cache",
}

// contentTypes of the page's files, by extension: not from the system's
// MIME table, which varies.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// file is one embedded file, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the page's files under Path: the page itself at Path,
// its scripts and styles beside it; anything else under Path is 404. Only
// GET and HEAD are answered (others: 405).
func Handler() http.Handler {
	files := make(map[string]file)
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			ct = "application/octet-stream"
		}
		files[strings.TrimPrefix(name, "static/")] = file{
			body:        body,
			contentType: ct,
			etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})
	if err != nil {
		panic("ui: the embedded files cannot be read: " + err.Error()) // a build defect
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok || name == "index.html" && r.URL.Path != Path {
			http.NotFound(w, r) // the page has one address: Path
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		for k, v := range securityHeaders {
			h.Set(k, v)
		}
		h.Set("Content-Type", f.contentType)
		h.Set("ETag", f.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}

// Register serves the page on mux: Handler under Path, and a redirect from
// / (exactly) to Path that keeps the query, so that a shared view survives
// it.
func Register(mux *http.ServeMux) {
	mux.Handle(Path, Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		target := Path
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusFound)
	})
}
