package app_test

import (
	"crypto/x509/pkix"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/eventsvc/eventsvc/internal/testpki"
)

// TestMetricsOnTheirOwnPort: with MetricsAddr set, /metrics is served there
// and no longer on the HTTP port, which serves everything else as before;
// the metrics port closes with the rest at shutdown.
func TestMetricsOnTheirOwnPort(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsAddr = "127.0.0.1:0"
	s := start(t, cfg)
	if s.app.MetricsAddr() == s.app.HTTPAddr() {
		t.Fatalf("metrics on %s, the HTTP port", s.app.MetricsAddr())
	}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := s.post(t, webhooks[0].path, sample(t, webhooks[0].file)); code != http.StatusOK {
		t.Fatalf("webhook: %d", code)
	}
	metrics := "http://" + s.app.MetricsAddr()
	if code, body := get(metrics + "/metrics"); code != http.StatusOK || !strings.Contains(body, `eventsvc_webhooks_total{outcome="stored"`) {
		t.Fatalf("GET /metrics on the metrics port: %d %.300s", code, body)
	}
	if code, _ := get(s.base + "/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the HTTP port: %d, want 404", code)
	}
	for _, path := range []string{"/healthz", "/v1/events", "/webhooks/sociocs", "/debug/pprof/"} {
		if code, _ := get(metrics + path); code != http.StatusNotFound {
			t.Errorf("GET %s on the metrics port: %d, want 404", path, code)
		}
	}
	if code, _ := get(s.base + "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz on the HTTP port: %d", code)
	}

	shutdown(t, s.app)
	if conn, err := net.Dial("tcp", s.app.MetricsAddr()); err == nil {
		conn.Close()
		t.Fatal("the metrics port is still open after shutdown")
	}
}

// TestMetricsOnTheHTTPPortByDefault: without MetricsAddr, /metrics is on
// the HTTP port, and MetricsAddr says so.
func TestMetricsOnTheHTTPPortByDefault(t *testing.T) {
	s := start(t, testConfig(t))
	if s.app.MetricsAddr() != s.app.HTTPAddr() {
		t.Fatalf("MetricsAddr %s, want the HTTP address %s", s.app.MetricsAddr(), s.app.HTTPAddr())
	}
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
}

// TestMetricsPortSpeaksTLS: with TLS on, the metrics port speaks it too.
func TestMetricsPortSpeaksTLS(t *testing.T) {
	p := testpki.New(t)
	_, certPath, keyPath := p.Issue(t, "server", pkix.Name{CommonName: "eventsvc"}, testpki.Server)
	cfg := testConfig(t)
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certPath, keyPath
	cfg.MetricsAddr = "127.0.0.1:0"
	s := start(t, cfg)
	if code, body := restJSON(t, httpsClient(p.ClientTLS()), http.MethodGet, "https://"+s.app.MetricsAddr()+"/metrics", "", nil); code != http.StatusOK || !strings.Contains(string(body), "eventsvc_") {
		t.Fatalf("GET /metrics over HTTPS: %d %.200s", code, body)
	}
	if code, _ := restJSON(t, http.DefaultClient, http.MethodGet, "http://"+s.app.MetricsAddr()+"/metrics", "", nil); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the metrics port: %d, want 400", code)
	}
}

// TestPProfOnTheMetricsPortOnly: with PProf, Go's profiles are served on
// the metrics port, and never on the HTTP port, which faces webhooks.
func TestPProfOnTheMetricsPortOnly(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.PProf = true
	s := start(t, cfg)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	metrics := "http://" + s.app.MetricsAddr()
	if code, body := get(metrics + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("GET /debug/pprof/ on the metrics port: %d %.200s", code, body)
	}
	if code, body := get(metrics + "/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Fatalf("GET /debug/pprof/heap on the metrics port: %d %.200s", code, body)
	}
	if code, _ := get(metrics + "/debug/pprof/profile?seconds=1"); code != http.StatusOK {
		t.Fatalf("GET /debug/pprof/profile on the metrics port: %d", code)
	}
	if code, _ := get(s.base + "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ on the HTTP port: %d, want 404", code)
	}
}
