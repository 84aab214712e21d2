package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// messageWebhook is the message sample with its own message_id (so that it
// is not a duplicate) and text.
func messageWebhook(t *testing.T, messageID, text string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(sample(t, "message_twlo.json"), &m); err != nil {
		t.Fatal(err)
	}
	m["message_id"], m["text"] = messageID, text
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readUntilClosed reads conn until the server closes it and returns what it
// read; it fails if that takes longer than within.
func readUntilClosed(t *testing.T, conn net.Conn, within time.Duration) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s (read %q)", within, b)
	}
	return string(b)
}

func TestHTTPTimeouts(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTP.ReadHeaderTimeout = 200 * time.Millisecond
	cfg.HTTP.ReadTimeout = 400 * time.Millisecond
	cfg.HTTP.IdleTimeout = 300 * time.Millisecond
	cfg.HTTP.WriteTimeout = 300 * time.Millisecond
	cfg.Stream.Heartbeat = 100 * time.Millisecond
	s := start(t, cfg)
	addr := s.app.HTTPAddr()
	dial := func(t *testing.T) net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	body := sample(t, webhooks[0].file)

	t.Run("headers never finished", func(t *testing.T) {
		conn := dial(t)
		fmt.Fprintf(conn, "POST /webhooks/sociocs HTTP/1.1\r\nHost: x\r\n")
		if got := readUntilClosed(t, conn, 10*time.Second); strings.Contains(got, " 200 ") {
			t.Fatalf("answered %q", got)
		}
	})
	t.Run("body never finished", func(t *testing.T) {
		conn := dial(t)
		fmt.Fprintf(conn, "POST /webhooks/sociocs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
		if got := readUntilClosed(t, conn, 10*time.Second); strings.Contains(got, " 200 ") {
			t.Fatalf("answered %q", got)
		}
	})
	t.Run("idle keep-alive connection", func(t *testing.T) {
		conn := dial(t)
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("GET /healthz: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		// The connection is kept alive, then closed once idle too long.
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
			t.Fatalf("idle connection: read %q, %v; want it closed", b, err)
		}
	})
	t.Run("REST stream outlives the read and write timeouts", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r := s.restStream(t, ctx, "/v1/events:stream")
		// Heartbeats keep coming after several read and write timeouts.
		until := time.Now().Add(3 * cfg.HTTP.ReadTimeout)
		for time.Now().Before(until) {
			if !r.sc.Scan() {
				t.Fatalf("REST stream ended: %v", r.sc.Err())
			}
			if bytes.Contains(r.sc.Bytes(), []byte(`"error"`)) {
				t.Fatalf("REST stream ended with %s", r.sc.Bytes())
			}
		}
	})
}

// TestRESTClientThatStopsReadingIsDisconnected fills the connection of a
// REST subscriber that reads nothing: its stream is evicted, the write of its
// last line is bounded by --http-write-timeout, and the shutdown is not held
// up (without the bound it waits for that client until its deadline).
func TestRESTClientThatStopsReadingIsDisconnected(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stream.BufferSize = 16
	cfg.HTTP.WriteTimeout = 300 * time.Millisecond
	s := start(t, cfg)
	conn, err := net.Dial("tcp", s.app.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET /v1/events:stream HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "the REST subscriber to register", func() bool { return s.app.Subscribers() == 1 })
	text := strings.Repeat("y", 200<<10)
	for i := 0; s.app.Subscribers() > 0; i++ {
		if i == 1000 {
			t.Fatal("a subscriber that reads nothing was not evicted after 1000 large events")
		}
		if code, resp := s.post(t, "/webhooks/sociocs", messageWebhook(t, fmt.Sprint("MMstuck", i), text)); code != http.StatusOK {
			t.Fatalf("POST: %d %v", code, resp)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.app.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a REST client that reads nothing: %v", err)
	}
}

func TestGRPCMessageSizeLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.Webhook.MaxBodyBytes = 8 << 10
	cfg.GRPC.MaxRecvMsgSize = 1 << 10
	cfg.GRPC.MaxSendMsgSize = 48 << 10 // the least an 8 KiB body allows
	s := start(t, cfg)
	ctx := ctxT(t)

	var keys []string
	for i := range 8 {
		keys = append(keys, fmt.Sprintf("twlo_%0200d", i))
	}
	_, err := s.client.ListEvents(ctx, &eventsv1.ListEventsRequest{ChannelKeys: keys})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a request over --grpc-max-recv-msg-size: %v, want RESOURCE_EXHAUSTED", err)
	}
	// The same request over REST is held to the same bound, in the words
	// REST clients got from the gateway's gRPC client.
	resp, st, b := s.do(t, http.MethodGet, "/v1/events?channel_keys="+strings.Join(keys, "&channel_keys="))
	wantMsg := fmt.Sprintf("trying to send message larger than max (%d vs. %d)", proto.Size(&eventsv1.ListEventsRequest{ChannelKeys: keys}), cfg.GRPC.MaxRecvMsgSize)
	if resp.StatusCode != http.StatusTooManyRequests || st.Code != int(codes.ResourceExhausted) || st.Message != wantMsg {
		t.Fatalf("a REST request over --grpc-max-recv-msg-size: %d %s, want 429 RESOURCE_EXHAUSTED %q", resp.StatusCode, b, wantMsg)
	}

	// Events of about 12 KiB (the body and its text): three fit a page.
	const n = 5
	for i := range n {
		body := messageWebhook(t, fmt.Sprintf("MMlimit%d", i), strings.Repeat("x", 6<<10))
		if code, resp := s.post(t, "/webhooks/sociocs", body); code != http.StatusOK {
			t.Fatalf("POST: %d %v", code, resp)
		}
	}
	// Every page fits the limit, over gRPC and through the gateway.
	var grpcSeqs, restSeqs []uint64
	req := &eventsv1.ListEventsRequest{PageSize: n}
	for {
		page, err := s.client.ListEvents(ctx, req)
		if err != nil {
			t.Fatalf("ListEvents: %v", err)
		}
		if len(page.GetEvents()) == n {
			t.Fatalf("a page of %d large events: the byte bound did not apply", n)
		}
		for _, ev := range page.GetEvents() {
			grpcSeqs = append(grpcSeqs, ev.GetSequence())
		}
		if req.PageToken = page.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	token := ""
	for {
		resp, err := http.Get(s.base + "/v1/events?page_size=" + fmt.Sprint(n) + "&page_token=" + token)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var page eventsv1.ListEventsResponse
		if err := protojson.Unmarshal(b, &page); resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("GET /v1/events: %d %.200s", resp.StatusCode, b)
		}
		for _, ev := range page.GetEvents() {
			restSeqs = append(restSeqs, ev.GetSequence())
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	want := fmt.Sprint([]uint64{1, 2, 3, 4, 5})
	if fmt.Sprint(grpcSeqs) != want || fmt.Sprint(restSeqs) != want {
		t.Fatalf("listed %v over gRPC and %v over REST, want %s", grpcSeqs, restSeqs, want)
	}
}

// TestResponsesOverTheSendLimit: an event stored under a larger
// --grpc-max-send-msg-size than the server now has cannot be sent: GetEvent
// and a ListEvents page (which always holds one event) are
// RESOURCE_EXHAUSTED over gRPC, and 429 with the same status over REST.
func TestResponsesOverTheSendLimit(t *testing.T) {
	cfg := testConfig(t)
	s := start(t, cfg)
	if code, resp := s.post(t, "/webhooks/sociocs", messageWebhook(t, "MMlarge", strings.Repeat("x", 64<<10))); code != http.StatusOK {
		t.Fatalf("POST: %d %v", code, resp)
	}
	shutdown(t, s.app)

	cfg.Webhook.MaxBodyBytes = 8 << 10
	cfg.GRPC.MaxSendMsgSize = 48 << 10 // the least an 8 KiB body allows
	s = start(t, cfg)
	ctx := ctxT(t)
	for _, tt := range []struct {
		path string
		call func() error
	}{
		{"/v1/events/1", func() error {
			_, err := s.client.GetEvent(ctx, &eventsv1.GetEventRequest{Sequence: 1})
			return err
		}},
		{"/v1/events", func() error {
			_, err := s.client.ListEvents(ctx, &eventsv1.ListEventsRequest{})
			return err
		}},
	} {
		t.Run(tt.path, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("over gRPC: %v, want RESOURCE_EXHAUSTED", err)
			}
			resp, st, b := s.do(t, http.MethodGet, tt.path)
			if resp.StatusCode != http.StatusTooManyRequests || st.Code != int(codes.ResourceExhausted) || st.Message != status.Convert(err).Message() {
				t.Errorf("GET %s: %d %s, want 429 and the status of gRPC (%q)", tt.path, resp.StatusCode, b, status.Convert(err).Message())
			}
		})
	}
}
