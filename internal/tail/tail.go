// Package tail is `eventsvc tail`: it subscribes to eventsvc over gRPC and
// prints each event as it arrives, optionally forwarding it to a local URL
// and saving a cursor file to resume from, across reconnects and restarts.
//
// Events go to stdout, one line each; what happens to the stream
// (reconnects, gaps, why it stopped) goes to stderr. Run is not meant to be
// called concurrently with itself on the same cursor file.
package tail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/eventsvc/eventsvc/client"
	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// ErrConfig wraps the errors of a Config that cannot work.
var ErrConfig = errors.New("tail: invalid setting")

// Output formats.
const (
	OutputText = "text"
	OutputJSON = "json"
)

// Config is what `eventsvc tail` was asked to do.
type Config struct {
	// Client says how to reach eventsvc.
	Client client.Options
	// Request selects the events and the start position. A cursor file, when
	// present, replaces the start position.
	Request *eventsv1.StreamEventsRequest
	// CursorFile is where the position after each processed event is saved
	// (atomically) and read from at start. Empty: none.
	CursorFile string
	// Output is OutputText (default: one readable line per event) or
	// OutputJSON (one protojson Event per line, proto field names).
	Output string
	// ForwardTo is a URL each event is POSTed to as JSON; the cursor moves
	// only after a 2xx answer, retried with backoff until then. A redirect
	// is not followed: it is an answer other than 2xx. Empty: none.
	ForwardTo string
	// ForwardTimeout bounds one POST. Default 10 s.
	ForwardTimeout time.Duration
}

// Run subscribes as cfg says and prints events until ctx ends (it then
// returns nil) or the subscription fails for good: a permanent error from
// the server (bad token, filter outside the client's rights, bad filter,
// a cursor that cannot be honoured), the cursor file cannot be written.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	if cfg.Output == "" {
		cfg.Output = OutputText
	}
	if cfg.Output != OutputText && cfg.Output != OutputJSON {
		return fmt.Errorf("%w: output %q: want text or json", ErrConfig, cfg.Output)
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = 10 * time.Second
	}
	req := proto.Clone(cfg.Request).(*eventsv1.StreamEventsRequest)
	if cfg.CursorFile != "" {
		cur, ok, err := readCursor(cfg.CursorFile)
		if err != nil {
			return err
		}
		if ok {
			req.AfterSequence, req.Epoch = &cur.After, cur.Epoch
			req.FromEarliest, req.StartTime = false, nil
			fmt.Fprintf(stderr, "eventsvc tail: resuming after sequence %d (epoch %s) from %s\n", cur.After, cur.Epoch, cfg.CursorFile)
		}
	}
	var fwd *forwarder
	if cfg.ForwardTo != "" {
		u, err := url.Parse(cfg.ForwardTo)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: forward-to %q: want an http or https URL", ErrConfig, u.Redacted())
		}
		fwd = &forwarder{url: u, http: newForwardClient(cfg.ForwardTimeout), stderr: stderr,
			min: cfg.Client.MinBackoff, max: cfg.Client.MaxBackoff}
	}
	c, err := client.Dial(cfg.Client)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	defer c.Close()

	p := &printer{cfg: cfg, stdout: stdout, stderr: stderr, fwd: fwd, saved: client.Cursor{After: req.GetAfterSequence(), Epoch: req.GetEpoch()}}
	err = c.Subscribe(ctx, req, p.handle)
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		fmt.Fprintln(stderr, "eventsvc tail: stopped: interrupted")
		return nil
	case err == nil:
		return nil
	}
	var withStatus interface{ GRPCStatus() *status.Status }
	if errors.As(err, &withStatus) {
		return fmt.Errorf("tail: the server refused the stream: %s", describe(err))
	}
	return err
}

// errLocal marks an error of tail itself (writing, forwarding), not of the
// server.
var errLocal = errors.New("tail")

// printer handles the messages of the subscription.
type printer struct {
	cfg            Config
	stdout, stderr io.Writer
	fwd            *forwarder
	saved          client.Cursor // last cursor written to the file
	reconnecting   bool
}

func (p *printer) handle(ctx context.Context, m *client.Message) error {
	if p.reconnecting && m.Kind != client.KindReconnect {
		p.reconnecting = false
		fmt.Fprintln(p.stderr, "eventsvc tail: reconnected")
	}
	switch m.Kind {
	case client.KindEvent:
		if p.fwd != nil {
			if err := p.fwd.forward(ctx, m.Event, m.Cursor.Epoch); err != nil {
				return err
			}
		}
		if err := p.print(m.Event); err != nil {
			return fmt.Errorf("%w: writing the output: %w", errLocal, err)
		}
	case client.KindGap:
		fmt.Fprintf(p.stderr, "eventsvc tail: gap: events after sequence %d are lost to this stream (%s); it goes on from sequence %d\n",
			m.Gap.GetRequestedAfterSequence(), m.Gap.GetReason(), m.Gap.GetFirstSequence())
	case client.KindEpochChange:
		fmt.Fprintf(p.stderr, "eventsvc tail: the event log was recreated: epoch %s, was %s; sequences start again\n", m.Cursor.Epoch, m.PreviousEpoch)
	case client.KindReconnect:
		p.reconnecting = true
		where := "as requested"
		if !m.Cursor.IsZero() {
			where = fmt.Sprintf("after sequence %d", m.Cursor.After)
		}
		fmt.Fprintf(p.stderr, "eventsvc tail: stream ended (%s); reconnecting in %s, %s\n", describe(m.Err), m.Delay.Round(time.Millisecond), where)
		return nil
	}
	return p.save(m.Cursor)
}

// save writes c to the cursor file when it moved.
func (p *printer) save(c client.Cursor) error {
	if p.cfg.CursorFile == "" || c == p.saved || c.IsZero() {
		return nil
	}
	if err := writeCursor(p.cfg.CursorFile, c); err != nil {
		return fmt.Errorf("%w: %w", errLocal, err)
	}
	p.saved = c
	return nil
}

func (p *printer) print(ev *eventsv1.Event) error {
	if p.cfg.Output == OutputJSON {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.stdout, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(p.stdout, Line(ev))
	return err
}

// Line is the readable line for ev: time received, sequence, channel,
// provider, event type, and the status or the start of the text.
func Line(ev *eventsv1.Event) string {
	var detail string
	switch {
	case ev.GetStatusUpdate() != nil:
		su := ev.GetStatusUpdate()
		detail = su.GetStatusCode()
		if e := su.GetError(); e.GetCode() != "" || e.GetMessage() != "" {
			detail += fmt.Sprintf(" (%s: %s)", e.GetCode(), e.GetMessage())
		}
	case ev.GetMessage() != nil:
		detail = fmt.Sprintf("%q", ev.GetMessage().GetText())
	}
	return fmt.Sprintf("%s  #%d  %s  %s  %s  %s",
		ev.GetReceivedAt().AsTime().UTC().Format(time.RFC3339), ev.GetSequence(),
		orDash(ev.GetChannelKey()), orDash(ev.GetProviderCode()), orDash(ev.GetEventCode()), clip(detail, 80))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return clip(s, 40)
}

// clip keeps the first n runes of s, without control characters (a line is
// one line).
func clip(s string, n int) string {
	var b strings.Builder
	for i, r := range []rune(s) {
		if i == n {
			b.WriteRune('…')
			break
		}
		if unicode.IsControl(r) {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}

// describe is a status error as CODE: message.
func describe(err error) string {
	if st, ok := status.FromError(err); ok {
		return code.Code(st.Code()).String() + ": " + st.Message()
	}
	return err.Error()
}
