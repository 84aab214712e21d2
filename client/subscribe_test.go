package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventsvc/eventsvc/client"
	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/app"
	"github.com/eventsvc/eventsvc/internal/config"
)

const (
	channel      = "twlo_16311113333"
	otherChannel = "gswa_919999999999"
	fullToken    = "full-token"
	narrowToken  = "narrow-token"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// server is an eventsvc on free ports (gRPC on a port of its own choosing
// the first time, the same one after a restart).
type server struct {
	t   *testing.T
	cfg config.Config
	app *app.App
	web *http.Client // for webhooks; nil: plain HTTP
}

func newServer(t *testing.T) *server {
	t.Helper()
	auth := fmt.Sprintf("clients:\n  - name: full\n    token_sha256: %s\n  - name: narrow\n    token_sha256: %s\n    channel_keys: [\"twlo_*\"]\n",
		sha(fullToken), sha(narrowToken))
	s := &server{t: t, cfg: newConfig(t, auth)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// newConfig is a config on free ports with auth as its auth file.
func newConfig(t *testing.T, auth string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Log.DataDir = t.TempDir()
	cfg.Auth.File = filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(cfg.Auth.File, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (s *server) start() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.Start(ctx, s.cfg, logger)
	if err != nil {
		s.t.Fatal(err)
	}
	s.app = a
	s.cfg.GRPCAddr = a.GRPCAddr() // the same port after a restart
}

func (s *server) stop() {
	if s.app == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.app.Shutdown(ctx); err != nil {
		s.t.Errorf("shutdown: %v", err)
	}
	s.app = nil
}

// post stores a message webhook for channel key ch and returns its message id.
func (s *server) post(ch, messageID string) {
	s.t.Helper()
	body := fmt.Sprintf(`{"message_id":%q,"event":"message","provider":%q,"channel_key":%q,"direction":"incoming","from":"1","to":"2","text":"hi"}`,
		messageID, ch[:4], ch)
	web, scheme := s.web, "https://"
	if web == nil {
		web, scheme = http.DefaultClient, "http://"
	}
	resp, err := web.Post(scheme+s.app.HTTPAddr()+"/webhooks/sociocs", "application/json", bytes.NewBufferString(body))
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("webhook: %s", resp.Status)
	}
}

func (s *server) dial(token string) *client.Client {
	s.t.Helper()
	c, err := client.Dial(client.Options{Address: s.cfg.GRPCAddr, Insecure: true, Token: token,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// recorder is a Handler that keeps what it was handed, for tests to poll.
type recorder struct {
	mu   sync.Mutex
	msgs []client.Message
	fail func(*client.Message) error
}

func (r *recorder) handle(_ context.Context, m *client.Message) error {
	if r.fail != nil {
		if err := r.fail(m); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, *m)
	return nil
}

func (r *recorder) of(kinds ...client.Kind) []client.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []client.Message
	for _, m := range r.msgs {
		for _, k := range kinds {
			if m.Kind == k {
				out = append(out, m)
			}
		}
	}
	return out
}

func (r *recorder) messageIDs() []string {
	var ids []string
	for _, m := range r.of(client.KindEvent) {
		ids = append(ids, m.Event.GetMessageId())
	}
	return ids
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func equal(a, b []string) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// subscribe runs Subscribe on a goroutine; the returned func cancels it and
// returns its error.
func subscribe(t *testing.T, c *client.Client, req *eventsv1.StreamEventsRequest, h client.Handler) (stop func() error, done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Subscribe(ctx, req, h) }()
	stopped := false
	var err error
	stop = func() error {
		if !stopped {
			cancel()
			err = <-errc
			stopped = true
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop, errc
}

func TestSubscribeResumesAcrossARestart(t *testing.T) {
	s := newServer(t)
	c := s.dial(fullToken)
	s.post(channel, "m1")
	s.post(otherChannel, "x1")
	s.post(channel, "m2")

	rec := &recorder{}
	stop, _ := subscribe(t, c, &eventsv1.StreamEventsRequest{ChannelKeys: []string{channel}, FromEarliest: true}, rec.handle)
	waitFor(t, "m1, m2", func() bool { return equal(rec.messageIDs(), []string{"m1", "m2"}) })

	// The shutdown ends the stream with UNAVAILABLE and a resume position.
	s.stop()
	waitFor(t, "a reconnect", func() bool { return len(rec.of(client.KindReconnect)) > 0 })
	r := rec.of(client.KindReconnect)[0]
	if status.Code(r.Err) != codes.Unavailable || r.Attempt != 1 || r.Cursor.After != 3 || r.Cursor.Epoch == "" {
		t.Fatalf("reconnect message: %+v (err %v)", r, r.Err)
	}
	s.start()
	s.post(otherChannel, "x2")
	s.post(channel, "m3")
	s.post(channel, "m4")
	waitFor(t, "m1 to m4", func() bool { return len(rec.messageIDs()) >= 4 })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe after cancel: %v, want context.Canceled", err)
	}
	if ids := rec.messageIDs(); !equal(ids, []string{"m1", "m2", "m3", "m4"}) {
		t.Fatalf("events %v, want m1 to m4 once each, in order", ids)
	}
	last := rec.of(client.KindEvent)[3]
	if last.Cursor.After != last.Event.GetSequence() || last.Cursor.Epoch != r.Cursor.Epoch {
		t.Fatalf("cursor of the last event %+v, sequence %d, epoch %s", last.Cursor, last.Event.GetSequence(), r.Cursor.Epoch)
	}
	if gaps := rec.of(client.KindGap, client.KindEpochChange); len(gaps) > 0 {
		t.Fatalf("unexpected %v", gaps)
	}

	// A later subscription from the saved cursor gets what came after, only.
	s.post(channel, "m5")
	rec2 := &recorder{}
	after := last.Cursor.After
	stop2, _ := subscribe(t, c, &eventsv1.StreamEventsRequest{ChannelKeys: []string{channel}, AfterSequence: &after, Epoch: last.Cursor.Epoch}, rec2.handle)
	waitFor(t, "m5", func() bool { return len(rec2.messageIDs()) >= 1 })
	stop2()
	if ids := rec2.messageIDs(); !equal(ids, []string{"m5"}) {
		t.Fatalf("resumed events %v, want [m5]", ids)
	}
}

func TestSubscribeHeartbeatMovesTheCursor(t *testing.T) {
	s := newServer(t)
	s.post(otherChannel, "x1")
	s.post(otherChannel, "x2")
	rec := &recorder{}
	subscribe(t, s.dial(fullToken), &eventsv1.StreamEventsRequest{ChannelKeys: []string{channel}}, rec.handle)
	// A stream from now starts with a heartbeat that names the log's end.
	waitFor(t, "a heartbeat", func() bool { return len(rec.of(client.KindHeartbeat)) > 0 })
	if hb := rec.of(client.KindHeartbeat)[0]; hb.Cursor.After != 2 || hb.Cursor.Epoch == "" {
		t.Fatalf("heartbeat cursor %+v, want after 2", hb.Cursor)
	}
}

func TestSubscribePermanentErrors(t *testing.T) {
	s := newServer(t)
	s.post(channel, "m1")
	unspecified := eventsv1.Provider_PROVIDER_UNSPECIFIED
	tests := []struct {
		name  string
		token string
		req   *eventsv1.StreamEventsRequest
		code  codes.Code
	}{
		{"bad token", "wrong", &eventsv1.StreamEventsRequest{}, codes.Unauthenticated},
		{"no token", "", &eventsv1.StreamEventsRequest{}, codes.Unauthenticated},
		{"outside the client's rights", narrowToken, &eventsv1.StreamEventsRequest{ChannelKeys: []string{otherChannel}}, codes.PermissionDenied},
		{"bad filter", fullToken, &eventsv1.StreamEventsRequest{Providers: []eventsv1.Provider{unspecified}}, codes.InvalidArgument},
		{"cursor of another epoch", fullToken, &eventsv1.StreamEventsRequest{AfterSequence: new(uint64), Epoch: "another"}, codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := s.dial(tt.token).Subscribe(ctx, tt.req, rec.handle)
			if status.Code(err) != tt.code {
				t.Fatalf("Subscribe: %v, want %v", err, tt.code)
			}
			if len(rec.msgs) != 0 {
				t.Fatalf("the handler was called: %+v", rec.msgs)
			}
		})
	}
}

func TestSubscribeReportsAnEpochChangeAndTheGap(t *testing.T) {
	s := newServer(t)
	s.post(channel, "m1")
	s.post(channel, "m2")
	rec := &recorder{}
	old := uint64(7)
	req := &eventsv1.StreamEventsRequest{AfterSequence: &old, Epoch: "recreated", AllowGap: true}
	stop, _ := subscribe(t, s.dial(fullToken), req, rec.handle)
	waitFor(t, "m1, m2", func() bool { return len(rec.messageIDs()) >= 2 })
	stop()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.msgs) < 4 {
		t.Fatalf("messages %+v", rec.msgs)
	}
	ch, gap := rec.msgs[0], rec.msgs[1]
	if ch.Kind != client.KindEpochChange || ch.PreviousEpoch != "recreated" || ch.Cursor.Epoch == "recreated" || ch.Cursor.After != 0 {
		t.Fatalf("first message %+v, want the epoch change", ch)
	}
	if gap.Kind != client.KindGap || gap.Gap.GetReason() != "epoch_mismatch" || gap.Gap.GetRequestedAfterSequence() != 7 || gap.Cursor != ch.Cursor {
		t.Fatalf("second message %+v, want the gap", gap)
	}
	if ev := rec.msgs[2]; ev.Kind != client.KindEvent || ev.Event.GetMessageId() != "m1" || ev.Cursor.Epoch != ch.Cursor.Epoch {
		t.Fatalf("third message %+v, want m1", ev)
	}
}

func TestSubscribeHandlerErrorStops(t *testing.T) {
	s := newServer(t)
	s.post(channel, "m1")
	s.post(channel, "m2")
	boom := errors.New("boom")
	rec := &recorder{fail: func(m *client.Message) error {
		if m.Kind == client.KindEvent && m.Event.GetMessageId() == "m2" {
			return boom
		}
		return nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := s.dial(fullToken).Subscribe(ctx, &eventsv1.StreamEventsRequest{FromEarliest: true}, rec.handle)
	if !errors.Is(err, boom) {
		t.Fatalf("Subscribe: %v, want the handler's error", err)
	}
	if ids := rec.messageIDs(); !equal(ids, []string{"m1"}) {
		t.Fatalf("processed %v, want [m1]", ids)
	}
}

func TestSubscribeRetriesWhileTheServerIsDown(t *testing.T) {
	s := newServer(t)
	addr := s.cfg.GRPCAddr
	c := s.dial(fullToken)
	s.stop()
	rec := &recorder{}
	stop, _ := subscribe(t, c, &eventsv1.StreamEventsRequest{ChannelKeys: []string{channel}, FromEarliest: true}, rec.handle)
	waitFor(t, "two failed attempts", func() bool { return len(rec.of(client.KindReconnect)) >= 2 })
	rs := rec.of(client.KindReconnect)
	if rs[1].Attempt != 2 || status.Code(rs[0].Err) != codes.Unavailable || !rs[0].Cursor.IsZero() {
		t.Fatalf("reconnect messages %+v", rs)
	}
	s.cfg.GRPCAddr = addr
	s.start()
	s.post(channel, "m1")
	waitFor(t, "m1 once the server is back", func() bool { return len(rec.messageIDs()) >= 1 })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe: %v", err)
	}
}

func TestDialRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts client.Options
	}{
		{"no address", client.Options{Insecure: true}},
		{"token with a newline", client.Options{Address: "x:1", Insecure: true, Token: "a\nb"}},
		{"CA with insecure", client.Options{Address: "x:1", Insecure: true, CAFile: "ca.pem"}},
		{"missing CA file", client.Options{Address: "x:1", CAFile: filepath.Join(t.TempDir(), "none.pem")}},
		{"certificate without key", client.Options{Address: "x:1", CertFile: "c.pem"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Dial(tt.opts)
			if !errors.Is(err, client.ErrOptions) {
				t.Fatalf("Dial: %v, want ErrOptions", err)
			}
			if tt.opts.Token != "" && bytes.Contains([]byte(err.Error()), []byte(tt.opts.Token)) {
				t.Fatalf("the error repeats the token: %v", err)
			}
		})
	}
}

func TestTokenNeedsTLSUnlessInsecure(t *testing.T) {
	s := newServer(t)
	// TLS towards a plaintext server fails the handshake: retryable, and
	// reported, never silent. The token is never sent in the clear.
	c, err := client.Dial(client.Options{Address: s.cfg.GRPCAddr, Token: fullToken, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = c.Subscribe(ctx, &eventsv1.StreamEventsRequest{}, func(_ context.Context, m *client.Message) error {
		if m.Kind != client.KindReconnect {
			return fmt.Errorf("unexpected %v", m.Kind)
		}
		return m.Err // stop at the first failure
	})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Subscribe over TLS to a plaintext server: %v", err)
	}
}

// TestSubscribeAcrossAnAuthReload: when the server's clients are reloaded,
// a subscription whose token was revoked stops with UNAUTHENTICATED; one
// whose rights narrowed resumes under the new rights with no gap and no
// duplicate; a request the new rights refuse stops with PERMISSION_DENIED.
func TestSubscribeAcrossAnAuthReload(t *testing.T) {
	s := newServer(t)
	s.post(channel, "m1")
	wide, narrow := &recorder{}, &recorder{}
	wideDone := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		wideDone <- s.dial(narrowToken).Subscribe(ctx, &eventsv1.StreamEventsRequest{FromEarliest: true}, wide.handle)
	}()
	_, narrowedDone := subscribe(t, s.dial(fullToken), &eventsv1.StreamEventsRequest{FromEarliest: true}, narrow.handle)
	waitFor(t, "m1 on both", func() bool { return len(wide.messageIDs()) == 1 && len(narrow.messageIDs()) == 1 })

	// The narrow token is removed; the full one may now read twlo_* only.
	auth := fmt.Sprintf("clients:\n  - name: full\n    token_sha256: %s\n    channel_keys: [\"twlo_*\"]\n", sha(fullToken))
	if err := os.WriteFile(s.cfg.Auth.File, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.app.ReloadAuth(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-wideDone:
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("the revoked token's subscription ended with %v, want UNAUTHENTICATED", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the revoked token's subscription goes on")
	}
	waitFor(t, "the narrowed subscription to reconnect", func() bool { return len(narrow.of(client.KindReconnect)) > 0 })
	s.post(otherChannel, "x1") // outside the new rights
	s.post(channel, "m2")
	waitFor(t, "m2", func() bool { return len(narrow.messageIDs()) >= 2 })
	if ids := narrow.messageIDs(); !equal(ids, []string{"m1", "m2"}) {
		t.Fatalf("the narrowed subscription got %v, want m1 and m2 once each", ids)
	}
	select {
	case err := <-narrowedDone:
		t.Fatalf("the narrowed subscription stopped: %v", err)
	default:
	}
	// Asking for what is now outside the rights is refused for good.
	err := s.dial(fullToken).Subscribe(ctx, &eventsv1.StreamEventsRequest{ChannelKeys: []string{otherChannel}}, (&recorder{}).handle)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a filter outside the new rights: %v, want PERMISSION_DENIED", err)
	}
}
