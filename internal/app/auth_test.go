package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/app"
	"github.com/eventsvc/eventsvc/internal/auth"
	"github.com/eventsvc/eventsvc/internal/stream"
)

// The events of the authorization tests, by sequence:
//
//	1 message        twlo_16311113333
//	2 status update  twlo_16311113333
//	3 status update  gswa_91999        (provider from the key: gswa)
//	4 message        twlo_16311113333
//	5 status update  gswa_91999
const otherChannel = "gswa_91999"

// authClients: "twlo" may read messages of twlo_* channels; "gswa" the
// channel gswa_91999 exactly; "admin" everything.
func authFile(dir string, clients ...string) string {
	all := map[string]string{
		"twlo":  "  - name: twlo\n    token_sha256: " + auth.HashToken("tok-twlo") + "\n    channel_keys: [\"twlo_*\"]\n    types: [message]\n",
		"gswa":  "  - name: gswa\n    token_sha256: " + auth.HashToken("tok-gswa") + "\n    channel_keys: [" + otherChannel + "]\n",
		"admin": "  - name: admin\n    token_sha256: " + auth.HashToken("tok-admin") + "\n",
	}
	var b strings.Builder
	b.WriteString("clients:\n")
	for _, c := range clients {
		b.WriteString(all[c])
	}
	p := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		panic(err)
	}
	return p
}

func withToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// messageWithID is the message sample under another message id.
func messageWithID(t *testing.T, id string) []byte {
	var m map[string]any
	if err := json.Unmarshal(sample(t, "message_twlo.json"), &m); err != nil {
		t.Fatal(err)
	}
	m["message_id"] = id
	b, _ := json.Marshal(m)
	return b
}

func startWithAuth(t *testing.T) *server {
	cfg := testConfig(t)
	cfg.Auth.File = authFile(t.TempDir(), "twlo", "gswa", "admin")
	s := start(t, cfg)
	for _, w := range []struct{ file, path string }{
		{"message_twlo.json", "/webhooks/sociocs"},
		{"status_sent.json", "/webhooks/sociocs/" + channel},
		{"status_delivered.json", "/webhooks/sociocs/" + otherChannel},
	} {
		if code, body := s.post(t, w.path, sample(t, w.file)); code != http.StatusOK {
			t.Fatalf("POST %s: %d %v", w.file, code, body)
		}
	}
	return s
}

// outcome is what one call came to: the code, and the sequences of the
// events it returned.
type outcome struct {
	code codes.Code
	seqs []uint64
	msg  string
}

// caller makes one of the three calls over gRPC or REST.
type caller func(t *testing.T, s *server, token string, req any, until uint64) outcome

func grpcList(t *testing.T, s *server, token string, req any, _ uint64) outcome {
	resp, err := s.client.ListEvents(withToken(ctxT(t), token), req.(*eventsv1.ListEventsRequest))
	if err != nil {
		return outcome{code: status.Code(err), msg: status.Convert(err).Message()}
	}
	return outcome{seqs: seqsOf(resp.GetEvents())}
}

func grpcGet(t *testing.T, s *server, token string, req any, _ uint64) outcome {
	resp, err := s.client.GetEvent(withToken(ctxT(t), token), req.(*eventsv1.GetEventRequest))
	if err != nil {
		return outcome{code: status.Code(err), msg: status.Convert(err).Message()}
	}
	return outcome{seqs: []uint64{resp.GetEvent().GetSequence()}}
}

// grpcStream reads events from the earliest until it has seen sequence
// until and returns what it got.
func grpcStream(t *testing.T, s *server, token string, req any, until uint64) outcome {
	ctx, cancel := context.WithCancel(withToken(ctxT(t), token))
	defer cancel()
	r := req.(*eventsv1.StreamEventsRequest)
	r.FromEarliest = true
	st, err := s.client.StreamEvents(ctx, r)
	if err == nil {
		_, err = st.Header() // the call's outcome before any event
	}
	var seqs []uint64
	for err == nil {
		var m *eventsv1.StreamEventsResponse
		if m, err = st.Recv(); err != nil {
			break
		}
		if ev := m.GetEvent(); ev != nil {
			seqs = append(seqs, ev.GetSequence())
			if ev.GetSequence() == until {
				return outcome{seqs: seqs}
			}
		}
	}
	return outcome{code: status.Code(err), msg: status.Convert(err).Message(), seqs: seqs}
}

func restCall(t *testing.T, s *server, token, path string) (int, []byte) {
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, s.base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// restOutcome turns an HTTP answer into an outcome, the code from the
// google.rpc.Status body of an error.
func restOutcome(t *testing.T, httpCode int, body []byte, events func([]byte) []uint64) outcome {
	if httpCode != http.StatusOK {
		type rpcStatus struct {
			Code    codes.Code `json:"code"`
			Message string     `json:"message"`
		}
		// A unary error is a google.rpc.Status; a stream's is wrapped in
		// {"error": ...}, as its error lines are.
		var st struct {
			rpcStatus
			Error *rpcStatus `json:"error"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("error body %q: %v", body, err)
		}
		if st.Error != nil {
			st.rpcStatus = *st.Error
		}
		want := map[codes.Code]int{codes.Unauthenticated: 401, codes.PermissionDenied: 403}[st.Code]
		if want != 0 && want != httpCode {
			t.Errorf("HTTP %d for %s, want %d", httpCode, st.Code, want)
		}
		return outcome{code: st.Code, msg: st.Message}
	}
	return outcome{seqs: events(body)}
}

func restList(t *testing.T, s *server, token string, req any, _ uint64) outcome {
	r := req.(*eventsv1.ListEventsRequest)
	q := query(r.GetChannelKeys(), r.GetTypes(), r.GetStatuses())
	code, body := restCall(t, s, token, "/v1/events?"+q)
	return restOutcome(t, code, body, func(b []byte) []uint64 {
		var resp eventsv1.ListEventsResponse
		if err := protojson.Unmarshal(b, &resp); err != nil {
			t.Fatal(err)
		}
		return seqsOf(resp.GetEvents())
	})
}

func restGet(t *testing.T, s *server, token string, req any, _ uint64) outcome {
	r := req.(*eventsv1.GetEventRequest)
	path := fmt.Sprintf("/v1/events/%d", r.GetSequence())
	if r.GetId() != "" {
		path = "/v1/events/by-id/" + r.GetId()
	}
	code, body := restCall(t, s, token, path)
	return restOutcome(t, code, body, func(b []byte) []uint64 {
		var resp eventsv1.GetEventResponse
		if err := protojson.Unmarshal(b, &resp); err != nil {
			t.Fatal(err)
		}
		return []uint64{resp.GetEvent().GetSequence()}
	})
}

// restStreamCall reads NDJSON lines until sequence until or an error line.
func restStreamCall(t *testing.T, s *server, token string, req any, until uint64) outcome {
	r := req.(*eventsv1.StreamEventsRequest)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	hreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/v1/events:stream?from_earliest=true&"+query(r.GetChannelKeys(), r.GetTypes(), r.GetStatuses()), nil)
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return restOutcome(t, resp.StatusCode, b, nil)
	}
	dec := json.NewDecoder(resp.Body)
	var seqs []uint64
	for {
		var line struct {
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code    codes.Code `json:"code"`
				Message string     `json:"message"`
			} `json:"error"`
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("REST stream: %v", err)
		}
		if line.Error != nil {
			return outcome{code: line.Error.Code, msg: line.Error.Message, seqs: seqs}
		}
		var m eventsv1.StreamEventsResponse
		if err := protojson.Unmarshal(line.Result, &m); err != nil {
			t.Fatal(err)
		}
		if ev := m.GetEvent(); ev != nil {
			seqs = append(seqs, ev.GetSequence())
			if ev.GetSequence() == until {
				return outcome{seqs: seqs}
			}
		}
	}
}

func query(channels []string, types []eventsv1.EventType, statuses []eventsv1.Status) string {
	var q []string
	for _, c := range channels {
		q = append(q, "channel_keys="+c)
	}
	for _, ty := range types {
		q = append(q, "types="+ty.String())
	}
	for _, st := range statuses {
		q = append(q, "statuses="+st.String())
	}
	return strings.Join(q, "&")
}

func seqsOf(evs []*eventsv1.Event) []uint64 {
	out := []uint64{}
	for _, ev := range evs {
		out = append(out, ev.GetSequence())
	}
	return out
}

// TestAuthorizationMatrix runs every call over gRPC and REST with no token,
// a bad token, an allowed filter, a forbidden filter, and an empty filter
// that must be narrowed to the client's rights.
func TestAuthorizationMatrix(t *testing.T) {
	s := startWithAuth(t)
	msgOnly := []eventsv1.EventType{eventsv1.EventType_EVENT_TYPE_MESSAGE}
	type row struct {
		name     string
		token    string
		req      func() any
		wantCode codes.Code
		wantMsg  string   // substring of the error message
		wantSeqs []uint64 // for OK
	}
	list := func(ch []string, ty []eventsv1.EventType, st ...eventsv1.Status) func() any {
		return func() any { return &eventsv1.ListEventsRequest{ChannelKeys: ch, Types: ty, Statuses: st} }
	}
	strm := func(ch []string, ty []eventsv1.EventType, st ...eventsv1.Status) func() any {
		return func() any { return &eventsv1.StreamEventsRequest{ChannelKeys: ch, Types: ty, Statuses: st} }
	}
	get := func(seq uint64) func() any { return func() any { return &eventsv1.GetEventRequest{Sequence: seq} } }
	ids := expected(t) // the events of the samples, in webhooks' order
	getID := func(id string) func() any { return func() any { return &eventsv1.GetEventRequest{Id: id} } }
	rows := func(mk func([]string, []eventsv1.EventType, ...eventsv1.Status) func() any, all []uint64) []row {
		return []row{
			{"no token", "", mk(nil, nil), codes.Unauthenticated, "Bearer", nil},
			{"bad token", "tok-nope", mk(nil, nil), codes.Unauthenticated, "unknown credential", nil},
			{"allowed filter", "tok-twlo", mk([]string{channel}, msgOnly), codes.OK, "", []uint64{1, 4}},
			{"forbidden channel", "tok-twlo", mk([]string{otherChannel}, nil), codes.PermissionDenied, `channel_keys[0]: channel "gswa_91999" is outside`, nil},
			{"forbidden type", "tok-twlo", mk(nil, []eventsv1.EventType{eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE}), codes.PermissionDenied, "types: EVENT_TYPE_STATUS_UPDATE is outside", nil},
			{"empty filter narrowed to messages of twlo_*", "tok-twlo", mk(nil, nil), codes.OK, "", []uint64{1, 4}},
			{"empty filter narrowed to one channel", "tok-gswa", mk(nil, nil), codes.OK, "", []uint64{3, 5}},
			{"statuses within the narrowed channel", "tok-gswa", mk(nil, nil, eventsv1.Status_STATUS_FAILED), codes.OK, "", []uint64{5}},
			{"statuses without the right to status updates", "tok-twlo", mk(nil, nil, eventsv1.Status_STATUS_FAILED), codes.PermissionDenied, "statuses: status updates are outside", nil},
			{"unrestricted client", "tok-admin", mk(nil, nil), codes.OK, "", all},
		}
	}
	getRows := []row{
		{"no token", "", get(1), codes.Unauthenticated, "Bearer", nil},
		{"bad token", "tok-nope", get(1), codes.Unauthenticated, "unknown credential", nil},
		{"allowed event", "tok-twlo", get(1), codes.OK, "", []uint64{1}},
		{"event of a forbidden type", "tok-twlo", get(2), codes.PermissionDenied, "sequence: the event's channel", nil},
		{"event of a forbidden channel", "tok-gswa", get(1), codes.PermissionDenied, "outside this client's rights", nil},
		{"unrestricted client", "tok-admin", get(3), codes.OK, "", []uint64{3}},
		{"allowed event by id", "tok-twlo", getID(ids[0].GetId()), codes.OK, "", []uint64{1}},
		{"event of a forbidden type by id", "tok-twlo", getID(ids[1].GetId()), codes.PermissionDenied, "id: the event's channel", nil},
	}
	if code, body := s.post(t, "/webhooks/sociocs", messageWithID(t, "SM-auth-4")); code != http.StatusOK {
		t.Fatalf("POST: %d %v", code, body)
	}
	if code, body := s.post(t, "/webhooks/sociocs/"+otherChannel, sample(t, "status_failed.json")); code != http.StatusOK {
		t.Fatalf("POST: %d %v", code, body)
	}
	for _, rpc := range []struct {
		name  string
		calls map[string]caller
		rows  []row
	}{
		{"ListEvents", map[string]caller{"grpc": grpcList, "rest": restList}, rows(list, []uint64{1, 2, 3, 4, 5})},
		{"StreamEvents", map[string]caller{"grpc": grpcStream, "rest": restStreamCall}, rows(strm, []uint64{1, 2, 3, 4, 5})},
		{"GetEvent", map[string]caller{"grpc": grpcGet, "rest": restGet}, getRows},
	} {
		for transport, call := range rpc.calls {
			for _, r := range rpc.rows {
				t.Run(rpc.name+"/"+transport+"/"+r.name, func(t *testing.T) {
					var until uint64
					if len(r.wantSeqs) > 0 {
						until = r.wantSeqs[len(r.wantSeqs)-1]
					}
					got := call(t, s, r.token, r.req(), until)
					if got.code != r.wantCode {
						t.Fatalf("code %s (%q), want %s", got.code, got.msg, r.wantCode)
					}
					if r.wantMsg != "" && !strings.Contains(got.msg, r.wantMsg) {
						t.Errorf("message %q does not contain %q", got.msg, r.wantMsg)
					}
					if r.wantCode == codes.OK && fmt.Sprint(got.seqs) != fmt.Sprint(r.wantSeqs) {
						t.Errorf("sequences %v, want %v", got.seqs, r.wantSeqs)
					}
				})
			}
		}
	}
}

// TestAuthReloadRevokesToken: after the auth file drops a client and is
// reloaded, that client's new requests fail, other clients are unaffected,
// and streams opened before the reload go on.
// TestAuthReloadRevokesToken: after a reload, a removed client's token is
// refused and its open streams, gRPC and REST, end with UNAUTHENTICATED; a
// client whose rights narrowed has its streams ended with PERMISSION_DENIED;
// the streams of an unchanged client go on.
func TestAuthReloadRevokesToken(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.Auth.File = authFile(dir, "twlo", "gswa", "admin")
	s := start(t, cfg)

	ctx := ctxT(t)
	open := func(token string) grpc.ServerStreamingClient[eventsv1.StreamEventsResponse] {
		st, err := s.client.StreamEvents(withToken(ctx, token), &eventsv1.StreamEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Header(); err != nil {
			t.Fatal(err)
		}
		return st
	}
	twloStream, gswaStream, adminStream := open("tok-twlo"), open("tok-gswa"), open("tok-admin")
	twloREST := s.restStreamAs(t, ctx, "/v1/events:stream", "tok-twlo")
	waitFor(t, "the streams to register", func() bool { return s.app.Subscribers() == 4 })
	if code, body := s.post(t, "/webhooks/sociocs", sample(t, "message_twlo.json")); code != http.StatusOK {
		t.Fatalf("POST: %d %v", code, body)
	}
	for name, st := range map[string]grpc.ServerStreamingClient[eventsv1.StreamEventsResponse]{"twlo": twloStream, "admin": adminStream} {
		if evs := recvN(t, st, 1); evs[0].GetSequence() != 1 {
			t.Errorf("%s stream got sequence %d", name, evs[0].GetSequence())
		}
	}
	twloREST.events(t, 1)

	// twlo is removed; gswa may now read only messages.
	authFile(dir, "admin")
	os.WriteFile(cfg.Auth.File, []byte(strings.Replace(readFile(t, authFile(dir, "gswa", "admin")), "channel_keys:", "types: [message]\n    channel_keys:", 1)), 0o600)
	if err := s.app.ReloadAuth(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.ListEvents(withToken(ctx, "tok-twlo"), &eventsv1.ListEventsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked token: %v, want Unauthenticated", err)
	}
	if code, _ := restCall(t, s, "tok-twlo", "/v1/events"); code != http.StatusUnauthorized {
		t.Fatalf("revoked token over REST: %d, want 401", code)
	}
	if _, err := s.client.ListEvents(withToken(ctx, "tok-admin"), &eventsv1.ListEventsRequest{}); err != nil {
		t.Fatalf("kept token: %v", err)
	}
	for name, tt := range map[string]struct {
		st    grpc.ServerStreamingClient[eventsv1.StreamEventsResponse]
		code  codes.Code
		after uint64
	}{
		"twlo": {twloStream, codes.Unauthenticated, 1},
		"gswa": {gswaStream, codes.PermissionDenied, 0},
	} {
		_, err := tt.st.Recv()
		for err == nil {
			_, err = tt.st.Recv()
		}
		after, _, ok := stream.ResumeCursor(err)
		if status.Code(err) != tt.code || !ok || after != tt.after {
			t.Errorf("%s's stream ended with %v (resume %d %v), want %v after %d", name, err, after, ok, tt.code, tt.after)
		}
	}
	if st := twloREST.end(t); st.GetCode() != int32(codes.Unauthenticated) {
		t.Errorf("twlo's REST stream ended with %v, want UNAUTHENTICATED", st)
	}
	// The admin stream goes on.
	if code, body := s.post(t, "/webhooks/sociocs", messageWithID(t, "SMafter")); code != http.StatusOK {
		t.Fatalf("POST: %d %v", code, body)
	}
	if evs := recvN(t, adminStream, 1); evs[0].GetSequence() != 2 {
		t.Errorf("admin stream got sequence %d after the reload", evs[0].GetSequence())
	}

	// A broken file keeps the clients in force.
	if err := os.WriteFile(cfg.Auth.File, []byte("clients: ["), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.app.ReloadAuth(); err == nil {
		t.Fatal("reloading a broken file succeeded")
	}
	if _, err := s.client.ListEvents(withToken(ctx, "tok-admin"), &eventsv1.ListEventsRequest{}); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
}

// TestAuthEmptyRestrictionIsRefused: an auth file in which a client's
// restriction list is present but empty or null stops start-up; reloaded
// (what SIGHUP does), it is refused and the client may still read only what
// it could before. Read as absent, it would give the client every channel.
func TestAuthEmptyRestrictionIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.Auth.File = authFile(dir, "twlo", "gswa", "admin")
	good := readFile(t, cfg.Auth.File)

	bad := testConfig(t)
	bad.Auth.File = filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(bad.Auth.File, []byte(strings.Replace(good, `channel_keys: ["twlo_*"]`, "channel_keys: []", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, err := app.Start(ctxT(t), bad, testLogger()); !errors.Is(err, auth.ErrInvalidFile) {
		if err == nil {
			a.Shutdown(ctxT(t))
		}
		t.Fatalf("Start with channel_keys: []: %v, want ErrInvalidFile", err)
	}

	s := start(t, cfg)
	ctx := ctxT(t)
	for _, empty := range []string{"channel_keys: []", "channel_keys: ~", "channel_keys:"} {
		t.Run(empty, func(t *testing.T) {
			bad := strings.Replace(good, `channel_keys: ["twlo_*"]`, empty, 1)
			if bad == good {
				t.Fatal("the auth file of the test changed: twlo's channel_keys not found")
			}
			if err := os.WriteFile(cfg.Auth.File, []byte(bad), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := s.app.ReloadAuth(); !errors.Is(err, auth.ErrInvalidFile) || !strings.Contains(err.Error(), `client "twlo": channel_keys is present but empty`) {
				t.Fatalf("ReloadAuth: %v, want ErrInvalidFile naming twlo's channel_keys", err)
			}
			_, err := s.client.ListEvents(withToken(ctx, "tok-twlo"), &eventsv1.ListEventsRequest{ChannelKeys: []string{otherChannel}})
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("twlo lists %s after the refused reload: %v, want PermissionDenied", otherChannel, err)
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStreamLimits: past the per-client limit a client's new stream is
// RESOURCE_EXHAUSTED while other clients still get theirs; past the overall
// limit everyone's is.
func TestStreamLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.File = authFile(t.TempDir(), "twlo", "admin")
	cfg.Stream.MaxStreamsPerClient = 2
	cfg.Stream.MaxStreams = 3
	s := start(t, cfg)
	ctx := ctxT(t)
	open := func(ctx context.Context, token string) error {
		st, err := s.client.StreamEvents(withToken(ctx, token), &eventsv1.StreamEventsRequest{})
		if err == nil {
			_, err = st.Recv() // the first heartbeat, or the refusal
		}
		return err
	}
	first, closeFirst := context.WithCancel(ctx)
	if err := open(first, "tok-twlo"); err != nil {
		t.Fatal(err)
	}
	if err := open(ctx, "tok-twlo"); err != nil {
		t.Fatal(err)
	}
	// Refused requests take no slot: a forbidden filter, then one too many.
	if st, err := s.client.StreamEvents(withToken(ctx, "tok-twlo"), &eventsv1.StreamEventsRequest{ChannelKeys: []string{otherChannel}}); err != nil {
		t.Fatal(err)
	} else if _, err := st.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a forbidden stream: %v", err)
	}
	third, cancelThird := context.WithCancel(ctx)
	err := open(third, "tok-twlo")
	cancelThird()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), `client "twlo" has 2 streams open`) {
		t.Fatalf("third stream of one client: %v", err)
	}

	if err := open(ctx, "tok-admin"); err != nil {
		t.Fatalf("another client: %v", err)
	}
	if err := open(ctx, "tok-admin"); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "the server's limit of concurrent streams is reached") {
		t.Fatalf("past the overall limit: %v", err)
	}
	// A stream that ends gives its slot back.
	closeFirst()
	waitFor(t, "the closed stream's slot", func() bool {
		c, cancel := context.WithCancel(ctx)
		defer cancel()
		return open(c, "tok-twlo") == nil
	})
}

// restJSON is a helper for tests that only need a status code and a body.
func restJSON(t *testing.T, c *http.Client, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctxT(t), method, url, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestOpenServicesWithAuth: with an auth file, health and reflection still
// answer without a credential, as probes and tools expect.
func TestOpenServicesWithAuth(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.File = authFile(t.TempDir(), "admin")
	s := start(t, cfg)
	conn := s.dial(t)
	resp, err := healthpb.NewHealthClient(conn).Check(ctxT(t), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health without a token: %v, %v", resp, err)
	}
	rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if r, err := rc.Recv(); err != nil || len(r.GetListServicesResponse().GetService()) == 0 {
		t.Fatalf("reflection without a token: %v, %v", r, err)
	}
}
