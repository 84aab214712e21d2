package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/gateway"
)

// grpcGateway serves the REST API as grpc-gateway alone would, forwarding
// every call (streams included) to the app's gRPC port with the marshaler
// the app's gateway uses, behind the same check of parameters that stands
// in front of the whole API: the reference the app's own stream handler must
// match byte for byte.
func grpcGateway(t *testing.T, s *server) string {
	t.Helper()
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}))
	err := eventsv1.RegisterEventServiceHandlerFromEndpoint(context.Background(), mux, s.app.GRPCAddr(),
		[]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gateway.CheckParameters(mux))
	t.Cleanup(srv.Close)
	return srv.URL
}

// rawStream opens a REST stream and returns the response and a line reader.
func rawStream(t *testing.T, ctx context.Context, rawURL string, header http.Header) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
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
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewReaderSize(resp.Body, 1<<20)
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a stream line: %v (got %q)", err, line)
	}
	return line
}

// serverTime is the part of a heartbeat line that differs from one stream
// to another.
var serverTime = regexp.MustCompile(`"server_time":"[^"]*"`)

// TestRESTStreamMatchesGRPCGateway: the app's REST stream answers exactly
// what grpc-gateway forwarding the gRPC stream answers: the same bytes for
// every event and for the final error line, the same heartbeats but for
// their time, the same errors before the stream starts; only the media type
// differs (application/x-ndjson, not application/json) and no gRPC
// metadata leaks into the headers.
func TestRESTStreamMatchesGRPCGateway(t *testing.T) {
	s := start(t, testConfig(t))
	ref := grpcGateway(t, s)
	for _, w := range webhooks {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK {
			t.Fatalf("POST %s: %d %v", w.file, code, body)
		}
	}
	ctx := ctxT(t)
	queries := []struct {
		q      string
		events int
	}{
		{"from_earliest=true", 4},
		{"from_earliest=true&channel_keys=" + channel + "&types=EVENT_TYPE_STATUS_UPDATE", 3},
		{"after_sequence=1&epoch=" + url.QueryEscape(epochOf(t, s)), 3},
		{"", 0}, // from now: a heartbeat first
	}
	for _, qq := range queries {
		q := qq.q
		t.Run(q, func(t *testing.T) {
			ours, ourLines := rawStream(t, ctx, s.base+"/v1/events:stream?"+q, nil)
			theirs, theirLines := rawStream(t, ctx, ref+"/v1/events:stream?"+q, nil)
			if ours.StatusCode != http.StatusOK || theirs.StatusCode != http.StatusOK {
				t.Fatalf("status %d and %d", ours.StatusCode, theirs.StatusCode)
			}
			if ct := ours.Header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("Content-Type %q, want application/x-ndjson", ct)
			}
			for k := range ours.Header {
				if strings.HasPrefix(strings.ToLower(k), "grpc-") {
					t.Errorf("header %s leaks gRPC metadata", k)
				}
			}
			for n := 0; n < qq.events; n++ {
				a, b := readLine(t, ourLines), readLine(t, theirLines)
				if a != b || !strings.Contains(a, `"event"`) {
					t.Fatalf("line %d differs:\n ours:   %s\n theirs: %s", n, a, b)
				}
			}
			if qq.events == 0 {
				a, b := readLine(t, ourLines), readLine(t, theirLines)
				if serverTime.ReplaceAllString(a, "") != serverTime.ReplaceAllString(b, "") || !strings.Contains(a, `"heartbeat"`) {
					t.Fatalf("first line differs:\n ours:   %s\n theirs: %s", a, b)
				}
			}
		})
	}

	// Errors before the stream starts: the request cannot be parsed, or
	// the service refuses it.
	for _, q := range []string{"types=EVENT_TYPE_UNSPECIFIED", "after_sequence=99", "after_sequence=x", "from_earliest=true&after_sequence=1",
		"providers=PROVIDER_NOPE", "epoch=x", "after_sequence=1&epoch=1999-01-01T00:00:00Z"} {
		ours, _ := rawStream(t, ctx, s.base+"/v1/events:stream?"+q, nil)
		theirs, _ := rawStream(t, ctx, ref+"/v1/events:stream?"+q, nil)
		a, _ := io.ReadAll(ours.Body)
		b, _ := io.ReadAll(theirs.Body)
		if ours.StatusCode != theirs.StatusCode || !bytes.Equal(a, b) || ours.StatusCode != http.StatusBadRequest ||
			ours.Header.Get("Content-Type") != theirs.Header.Get("Content-Type") {
			t.Errorf("%s: ours %d %s %s, theirs %d %s %s", q, ours.StatusCode, ours.Header.Get("Content-Type"), a,
				theirs.StatusCode, theirs.Header.Get("Content-Type"), b)
		}
	}

	// The error that ends a stream: a shutdown, seen by both after the last
	// stored event.
	last := strconv.Itoa(len(webhooks))
	q := "after_sequence=" + last + "&epoch=" + url.QueryEscape(epochOf(t, s))
	_, ourLines := rawStream(t, ctx, s.base+"/v1/events:stream?"+q, nil)
	_, theirLines := rawStream(t, ctx, ref+"/v1/events:stream?"+q, nil)
	readLine(t, ourLines) // the heartbeats that say the streams are live
	readLine(t, theirLines)
	s.app.Shutdown(ctx)
	a, b := readLine(t, ourLines), readLine(t, theirLines)
	if a != b || !strings.Contains(a, `"error"`) || !strings.Contains(a, "after_sequence="+last) {
		t.Fatalf("final lines differ:\n ours:   %s\n theirs: %s", a, b)
	}
}

func epochOf(t *testing.T, s *server) string {
	t.Helper()
	resp, err := s.client.ListEvents(ctxT(t), &eventsv1.ListEventsRequest{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetEpoch()
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, name, data string
	retry          string
}

// sseReader reads Server-Sent Events as a browser's EventSource parses them.
type sseReader struct{ r *bufio.Reader }

func (s sseReader) next(t *testing.T) sseEvent {
	t.Helper()
	var ev sseEvent
	var data []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("SSE stream: %v (line %q)", err, line)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if data == nil && ev.retry == "" && ev.id == "" {
				continue
			}
			if data == nil {
				ev = sseEvent{}
				continue // a block without data (retry:) dispatches nothing
			}
			ev.data = strings.Join(data, "\n")
			return ev
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.name = value
		case "data":
			data = append(data, value)
		case "retry":
			ev.retry = value
		}
	}
}

// TestSSEStreamResumesWithLastEventID: with Accept: text/event-stream the
// stream answers Server-Sent Events whose ids are resume cursors; a
// reconnect with Last-Event-ID (as EventSource sends) or with the
// last_event_id parameter (for a reconnect by hand) resumes with no gap and
// no duplicate, whatever start the URL asked for; the status that ends the
// stream is a named error event with the resume position as its id.
func TestSSEStreamResumesWithLastEventID(t *testing.T) {
	s := start(t, testConfig(t))
	ctx := ctxT(t)
	sse := http.Header{"Accept": {"text/event-stream"}}
	post := func(i int) {
		if code, body := s.post(t, "/webhooks/sociocs", messageWithID(t, fmt.Sprintf("SMsse%d", i))); code != http.StatusOK {
			t.Fatalf("POST: %d %v", code, body)
		}
	}
	for i := 1; i <= 3; i++ {
		post(i)
	}
	epoch := epochOf(t, s)
	sctx, cancel := context.WithCancel(ctx)
	resp, r := rawStream(t, sctx, s.base+"/v1/events:stream?from_earliest=true", sse)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, ct)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	if !strings.HasPrefix(readLine(t, r), "retry: ") {
		t.Fatal("the stream does not start with retry:")
	}
	in := sseReader{r}
	var lastID string
	for i := 1; i <= 2; i++ {
		ev := in.next(t)
		var e eventsv1.Event
		if err := protojson.Unmarshal([]byte(ev.data), &e); err != nil {
			t.Fatalf("event data %q: %v", ev.data, err)
		}
		if ev.name != "" || e.GetSequence() != uint64(i) || ev.id != fmt.Sprintf("%d@%s", i, epoch) || e.GetChannelKey() != channel {
			t.Fatalf("event %d: %+v", i, ev)
		}
		if !strings.Contains(ev.data, `"channel_key"`) {
			t.Errorf("the event's JSON does not use proto field names: %s", ev.data)
		}
		lastID = ev.id
	}
	cancel() // the connection drops after event 2
	post(4)

	// The browser reconnects to the same URL, with the last id it saw.
	_, r = rawStream(t, ctx, s.base+"/v1/events:stream?from_earliest=true", http.Header{"Accept": {"text/event-stream"}, "Last-Event-Id": {lastID}})
	readLine(t, r)
	in = sseReader{r}
	for _, want := range []uint64{3, 4} {
		ev := in.next(t)
		if ev.id != fmt.Sprintf("%d@%s", want, epoch) {
			t.Fatalf("after the reconnect: event %+v, want %d", ev, want)
		}
	}
	// A reconnect by hand, with the parameter; idle, so a live heartbeat.
	_, r2 := rawStream(t, ctx, s.base+"/v1/events:stream?last_event_id="+url.QueryEscape("4@"+epoch), sse)
	readLine(t, r2)
	hb := sseReader{r2}.next(t)
	if hb.name != "heartbeat" || hb.id != "4@"+epoch || !strings.Contains(hb.data, `"last_sequence":"4"`) {
		t.Fatalf("first message of an idle resumed stream: %+v", hb)
	}
	// A bad id is refused before the stream starts.
	bad, _ := rawStream(t, ctx, s.base+"/v1/events:stream", http.Header{"Accept": {"text/event-stream"}, "Last-Event-Id": {"nonsense"}})
	if body, _ := io.ReadAll(bad.Body); bad.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Last-Event-ID") {
		t.Fatalf("a bad Last-Event-ID: %d %s", bad.StatusCode, body)
	}

	s.app.Shutdown(ctx)
	end := in.next(t)
	var st struct {
		Code        int    `json:"code"`
		Status      string `json:"status"`
		HTTPStatus  int    `json:"http_status"`
		ResumeAfter string `json:"resume_after_sequence"`
		Epoch       string `json:"epoch"`
	}
	if err := json.Unmarshal([]byte(end.data), &st); err != nil {
		t.Fatalf("error event %q: %v", end.data, err)
	}
	if end.name != "error" || end.id != "4@"+epoch || st.Code != int(codes.Unavailable) || st.Status != "Unavailable" ||
		st.HTTPStatus != http.StatusServiceUnavailable || st.ResumeAfter != "4" || st.Epoch != epoch {
		t.Fatalf("the stream ended with %+v %+v", end, st)
	}
}
