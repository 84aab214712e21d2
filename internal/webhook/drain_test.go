package webhook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// bodyOf returns a JSON object of about n bytes.
func bodyOf(n int) []byte {
	return []byte(`{"message_id":"big","event":"message","text":"` + strings.Repeat("x", max(n-48, 0)) + `"}`)
}

// writeFirst sends one POST on conn the way a client that writes its whole
// request before reading the answer does (Python's urllib, for one), then
// reads the answer. Any failure to write or read is returned as it is.
func writeFirst(conn net.Conn, path string, header string, body []byte) (*http.Response, []byte, error) {
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n", path, len(body), header)
	if _, err := conn.Write(append([]byte(req), body...)); err != nil {
		return nil, nil, fmt.Errorf("writing the request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("answer %q is not a JSON error: %v", b, err)
	}
	return e.Error.Code
}

// TestRefusedBodyIsReadBeforeTheAnswer: a client that writes a body over
// the limit, or any body to a server shutting down, before reading gets its
// 413 or 503, not a reset connection; within MaxDiscardBytes the connection
// even serves the next request.
func TestRefusedBodyIsReadBeforeTheAnswer(t *testing.T) {
	pub := &memLog{}
	h := NewHandler(pub, Options{Logger: quiet()}) // the default 1 MiB limit
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	small := bodyOf(1 << 10)

	tests := []struct {
		name     string
		draining bool
		size     int
		status   int
		code     string
		reusable bool // the connection serves a next request
	}{
		{"2 MB over the limit", false, 2 << 20, http.StatusRequestEntityTooLarge, "body_too_large", true},
		{"8 MB over the limit", false, 8 << 20, http.StatusRequestEntityTooLarge, "body_too_large", true},
		{"900 kB while draining", true, 900 << 10, http.StatusServiceUnavailable, "unavailable", false},
		{"8 MB while draining", true, 8 << 20, http.StatusServiceUnavailable, "unavailable", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.draining {
				h.Drain()
			}
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			resp, b, err := writeFirst(conn, Path, "", bodyOf(tt.size))
			if err != nil {
				t.Fatalf("a %d-byte body: %v", tt.size, err)
			}
			if resp.StatusCode != tt.status || errorCode(t, b) != tt.code {
				t.Fatalf("a %d-byte body: %d %s, want %d %s", tt.size, resp.StatusCode, b, tt.status, tt.code)
			}
			if tt.draining && (resp.Header.Get("Retry-After") == "" || !resp.Close) {
				t.Errorf("503 while draining: Retry-After %q, close %v; want both", resp.Header.Get("Retry-After"), resp.Close)
			}
			if !tt.reusable {
				return
			}
			if resp.Close {
				t.Fatal("the connection is closed after a body within the discard bound")
			}
			resp, b, err = writeFirst(conn, Path, "", small)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("the next request on the connection: %v %v %s", err, resp, b)
			}
		})
	}
}

// TestRefusedBodyBeyondTheDiscardBound: a body that goes on past
// MaxDiscardBytes is not read to its end; a client that reads while it
// writes (curl, Go) gets the 413 and the connection is closed.
func TestRefusedBodyBeyondTheDiscardBound(t *testing.T) {
	srv, _, _ := newServer(t, Options{MaxBodyBytes: 1 << 10})
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", Path)
	// An endless chunked body, until the server stops reading it.
	go func() {
		chunk := fmt.Appendf(nil, "%x\r\n%s\r\n", 64<<10, bytes.Repeat([]byte("x"), 64<<10))
		for {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("%d %s (close %v), want 413 and the connection closed", resp.StatusCode, b, resp.Close)
	}
}

// TestExpectContinueAnsweredAtOnce: a client that announces a body over the
// limit with Expect: 100-continue gets the 413 without sending it.
func TestExpectContinueAnsweredAtOnce(t *testing.T) {
	srv, _, _ := newServer(t, Options{MaxBodyBytes: 1 << 10})
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", Path, 8<<20)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("%d %s (close %v), want 413 at once and the connection closed", resp.StatusCode, b, resp.Close)
	}
}
