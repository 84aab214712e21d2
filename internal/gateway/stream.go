package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// Streamer serves one event stream over any transport: *stream.Service.
type Streamer interface {
	Subscribe(ctx context.Context, req *eventsv1.StreamEventsRequest, sink stream.Sink) error
}

// Authenticator establishes who an HTTP request comes from. It returns ctx
// carrying the client (stream.WithClient), ctx itself when the API is open,
// or a gRPC status error (UNAUTHENTICATED) naming what is wrong. streamToken
// is the request's access_token parameter (a short-lived stream token, for
// clients that cannot send an Authorization header), or "".
type Authenticator func(ctx context.Context, r *http.Request, streamToken string) (context.Context, error)

// Media types of the two stream formats.
const (
	ndjsonType = "application/x-ndjson"
	sseType    = "text/event-stream"
)

// sseRetry is how long a browser waits before it reconnects a Server-Sent
// Events stream that ended, in milliseconds.
const sseRetry = 2000

// streamHandler serves GET /v1/events:stream: newline-delimited JSON, or
// Server-Sent Events for a request that accepts text/event-stream.
type streamHandler struct {
	mux          *runtime.ServeMux
	streams      Streamer
	authenticate Authenticator
	// The wire formats of its streams, made with the handler for the one
	// Streamer it serves: an event's encoding in each is made once, however
	// many subscribers receive it (see stream.Format). ndjson is one
	// {"result": StreamEventsResponse} object per line, as grpc-gateway
	// writes a server stream; sse is Server-Sent Events (see encodeSSE).
	ndjson, sse *stream.Format[[]byte]
}

// newStreamHandler returns the handler of streams served by streams, with
// formats of its own.
func newStreamHandler(mux *runtime.ServeMux, streams Streamer, authenticate Authenticator) *streamHandler {
	return &streamHandler{
		mux: mux, streams: streams, authenticate: authenticate,
		ndjson: stream.NewFormat(encodeNDJSON), sse: stream.NewFormat(encodeSSE),
	}
}

// streamEventsParams is grpc-gateway's query filter of StreamEvents: no
// field is bound to the path.
var streamEventsParams = &utilities.DoubleArray{Encoding: map[string]int{}, Base: []int(nil), Check: []int(nil)}

func (h *streamHandler) serve(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	ctx := r.Context()
	sse := acceptsSSE(r)
	fail := func(err error) {
		h.fail(ctx, w, r, err)
	}
	if err := r.ParseForm(); err != nil {
		fail(status.Errorf(codes.InvalidArgument, "%v", err))
		return
	}
	token := r.Form.Get("access_token")
	lastEventID := r.Header.Get("Last-Event-ID")
	if id := r.Form.Get("last_event_id"); id != "" && lastEventID == "" {
		lastEventID = id // a reconnect made by hand, where EventSource cannot set the header
	}
	// Not fields of the request: kept out of grpc-gateway's parser.
	r.Form.Del("access_token")
	r.Form.Del("last_event_id")
	req := new(eventsv1.StreamEventsRequest)
	if err := runtime.PopulateQueryParameters(req, r.Form, streamEventsParams); err != nil {
		fail(status.Errorf(codes.InvalidArgument, "%v", err))
		return
	}
	if lastEventID != "" {
		// A reconnect resumes where the stream was, whatever start the URL
		// asked for the first time.
		after, epoch, err := parseEventID(lastEventID)
		if err != nil {
			fail(err)
			return
		}
		req.AfterSequence, req.Epoch, req.StartTime, req.FromEarliest = &after, epoch, nil, false
	}
	sink := &httpSink{w: w, rc: http.NewResponseController(w), format: h.ndjson, contentType: ndjsonType}
	if sse {
		sink.format, sink.contentType, sink.sse = h.sse, sseType, true
	}
	actx, err := h.authenticate(ctx, r, token)
	if err == nil {
		err = h.streams.Subscribe(actx, req, sink)
	}
	if !sink.started {
		if sse && transient(status.Code(err)) {
			sink.refuse(err)
			return
		}
		refuse(w, err)
		return
	}
	if ctx.Err() != nil {
		return // the client left: nobody reads an error
	}
	if b, merr := sink.encodeError(err); merr == nil {
		w.Write(b)
		sink.rc.Flush()
	}
}

// transient reports whether a stream refused with code may be opened again
// as it was, soon (a server shutting down, a limit on streams).
func transient(code codes.Code) bool {
	return code == codes.Unavailable || code == codes.ResourceExhausted
}

// refuse answers a Server-Sent Events request that the service refused for
// a while as a stream that ends at once with its error event: EventSource
// retries that (after retry:), whereas any answer but 200 text/event-stream
// makes it give up for good. The event's id is the request's own cursor,
// when it resumed, so that the retry resumes there too.
func (s *httpSink) refuse(err error) {
	b, merr := s.encodeError(err)
	if merr != nil {
		refuse(s.w, err)
		return
	}
	if _, err := s.Send(nil); err != nil {
		return
	}
	s.w.Write(b)
	s.rc.Flush()
}

// refuse answers a stream that the service refused before it started as
// grpc-gateway answers a gRPC stream that fails before its first message:
// the HTTP status of the code, and the one line {"error": Status}.
func refuse(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	b, merr := errorLine(st)
	if merr != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", marshaler.ContentType(nil))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(runtime.HTTPStatusFromCode(st.Code()))
	w.Write(b)
}

// errorLine is the line {"error": Status} with which grpc-gateway ends a
// stream that failed, before or after its first message.
func errorLine(st *status.Status) ([]byte, error) {
	b, err := marshaler.Marshal(map[string]proto.Message{"error": st.Proto()})
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// fail answers a request that cannot be parsed as grpc-gateway answers a
// failed call: the HTTP status of the gRPC code and a Status object.
func (h *streamHandler) fail(ctx context.Context, w http.ResponseWriter, r *http.Request, err error) {
	_, out := runtime.MarshalerForRequest(h.mux, r)
	runtime.HTTPError(ctx, h.mux, out, w, r, err)
}

// acceptsSSE reports whether r asks for Server-Sent Events.
func acceptsSSE(r *http.Request) bool {
	for _, a := range r.Header.Values("Accept") {
		for _, part := range strings.Split(a, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), sseType) {
				return true
			}
		}
	}
	return false
}

// httpSink writes a stream's messages to an HTTP response, one write and
// one flush per batch. A client that stops reading is cut by the server's
// per-write deadline; the write then fails.
type httpSink struct {
	w           http.ResponseWriter
	rc          *http.ResponseController
	format      *stream.Format[[]byte]
	contentType string
	sse         bool // format is Server-Sent Events
	started     bool
	buf         []byte
}

func (s *httpSink) Send(msgs []*stream.Message) (int, error) {
	if !s.started {
		h := s.w.Header()
		h.Set("Content-Type", s.contentType)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		// Proxies that buffer responses (nginx) must not hold events back.
		h.Set("X-Accel-Buffering", "no")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
		if s.sse {
			s.buf = fmt.Appendf(s.buf[:0], "retry: %d\n\n", sseRetry)
		}
	}
	// Small messages are gathered so that a batch is one write; a large one
	// is written from its shared encoding rather than copied, so that what a
	// stream holds of its own stays within maxBatch whatever it sends.
	for _, m := range msgs {
		b, err := s.format.Encode(m)
		if err != nil {
			return 0, err
		}
		if len(s.buf)+len(b) > maxBatch {
			if err := s.write(s.buf); err != nil {
				return 0, err
			}
			s.buf = s.buf[:0]
		}
		if len(b) > maxBatch {
			if err := s.write(b); err != nil {
				return 0, err
			}
			continue
		}
		s.buf = append(s.buf, b...)
	}
	if err := s.write(s.buf); err != nil {
		return 0, err
	}
	s.buf = s.buf[:0]
	if err := s.rc.Flush(); err != nil {
		return 0, writeErr(err)
	}
	return len(msgs), nil
}

func (s *httpSink) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := s.w.Write(b)
	return writeErr(err)
}

// Interrupt cuts short a write in progress: a shutdown whose grace period is
// over does not wait for a client that does not read (the write would
// otherwise last until its deadline). What was being written is lost with
// the connection; the client resumes after the last event it received.
func (s *httpSink) Interrupt() {
	s.rc.SetWriteDeadline(time.Now())
}

// maxBatch bounds the bytes a stream gathers for one write.
const maxBatch = 64 << 10

// writeErr tells a client that stopped reading (the write deadline passed)
// from other failures.
func writeErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %w", stream.ErrStalled, err)
	}
	return err
}

// encodeError renders the status that ends a started stream in the sink's
// format.
func (s *httpSink) encodeError(err error) ([]byte, error) {
	st := status.Convert(err)
	if s.sse {
		return sseError(st)
	}
	return errorLine(st)
}

// encodeNDJSON writes a message as grpc-gateway's stream forwarding does.
func encodeNDJSON(m *stream.Message) ([]byte, error) {
	resp, err := m.Response()
	if err != nil {
		return nil, err
	}
	b, err := marshaler.Marshal(map[string]any{"result": resp})
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// encodeSSE writes a message as a Server-Sent Event: its id is the resume
// cursor ("<sequence>@<epoch>", see parseEventID), so that a browser that
// reconnects resumes right after it; an event has the default type
// ("message") and the Event as data; heartbeats and gaps are named events
// with the Heartbeat or Gap as data.
func encodeSSE(m *stream.Message) ([]byte, error) {
	resp, err := m.Response()
	if err != nil {
		return nil, err
	}
	var name string
	var data proto.Message
	switch k := resp.GetKind().(type) {
	case *eventsv1.StreamEventsResponse_Event:
		data = k.Event
	case *eventsv1.StreamEventsResponse_Heartbeat:
		name, data = "heartbeat", k.Heartbeat
	case *eventsv1.StreamEventsResponse_Gap:
		name, data = "gap", k.Gap
	default:
		return nil, fmt.Errorf("gateway: a stream message of no known kind")
	}
	js, err := marshaler.Marshal(data)
	if err != nil {
		return nil, err
	}
	return appendSSE(nil, eventID(m.Cursor(), resp.GetEpoch()), name, js), nil
}

// appendSSE appends one Server-Sent Event. data is JSON, which holds no
// line break but inside strings, where it is escaped.
func appendSSE(b []byte, id, name string, data []byte) []byte {
	if id != "" {
		b = append(append(append(b, "id: "...), id...), '\n')
	}
	if name != "" {
		b = append(append(append(b, "event: "...), name...), '\n')
	}
	for line := range bytes.Lines(data) {
		b = append(append(b, "data: "...), bytes.TrimRight(line, "\r\n")...)
		b = append(b, '\n')
	}
	return append(b, '\n')
}

// sseError is the named "error" event that ends a Server-Sent Events
// stream: the Status (code, message, details) with the code's name and,
// when the status names one, the resume position, also as the event's id so
// that the browser's automatic reconnect resumes there.
func sseError(st *status.Status) ([]byte, error) {
	js, err := marshaler.Marshal(st.Proto())
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(js, &fields); err != nil {
		return nil, err
	}
	str := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
	fields["status"] = str(st.Code().String())
	fields["http_status"] = json.RawMessage(strconv.Itoa(runtime.HTTPStatusFromCode(st.Code())))
	id := ""
	if after, epoch, ok := stream.ResumeCursor(st.Err()); ok {
		fields["resume_after_sequence"] = str(strconv.FormatUint(after, 10))
		fields["epoch"] = str(epoch)
		id = eventID(after, epoch)
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	return appendSSE(nil, id, "error", data), nil
}

// eventID is a Server-Sent Event id: the resume cursor.
func eventID(after uint64, epoch string) string {
	return strconv.FormatUint(after, 10) + "@" + epoch
}

// parseEventID reads an id that eventID made (from Last-Event-ID).
func parseEventID(id string) (uint64, string, error) {
	seq, epoch, ok := strings.Cut(id, "@")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil || epoch == "" {
		return 0, "", status.Errorf(codes.InvalidArgument,
			"Last-Event-ID %q is not an event id of this service (<sequence>@<epoch>)", truncate(id, 100))
	}
	return n, epoch, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
