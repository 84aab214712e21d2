package tail

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/backoff"
)

// forwarder POSTs events to a URL until it answers 2xx.
type forwarder struct {
	url      *url.URL
	http     *http.Client
	stderr   io.Writer
	min, max time.Duration
}

// newForwardClient returns the client that forwards events: one that does
// not follow redirects. Go's client would follow a 301, 302 or 303 with a
// GET without the body, whose 2xx would then count as the event's delivery;
// and a 307 or 308 to a URL the user did not give. A redirect is an answer
// like any other that is not 2xx, and post says where it points.
func newForwardClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// forward POSTs ev as JSON (proto field names), with its sequence and epoch
// as headers so that the receiver can drop a repeat, and retries with a
// jittered backoff until a 2xx answer or the end of ctx.
func (f *forwarder) forward(ctx context.Context, ev *eventsv1.Event, epoch string) error {
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
	if err != nil {
		return fmt.Errorf("%w: forward: %v", errLocal, err)
	}
	pause := backoff.Backoff{Min: f.min, Max: f.max, Jitter: true}
	if pause.Min <= 0 {
		pause.Min = 250 * time.Millisecond
	}
	if pause.Max <= 0 {
		pause.Max = 30 * time.Second
	}
	for {
		problem := f.post(ctx, body, ev.GetSequence(), epoch)
		if problem == "" {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := pause.Next()
		fmt.Fprintf(f.stderr, "eventsvc tail: forwarding sequence %d to %s: %s; retrying in %s\n", ev.GetSequence(), f.url.Redacted(), problem, d.Round(time.Millisecond))
		if !backoff.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// post makes one attempt; it returns "" on a 2xx answer, else what went wrong.
func (f *forwarder) post(ctx context.Context, body []byte, seq uint64, epoch string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url.String(), bytes.NewReader(body))
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Eventsvc-Sequence", strconv.FormatUint(seq, 10))
	req.Header.Set("Eventsvc-Epoch", epoch)
	resp, err := f.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "interrupted"
		}
		return err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 3:
		return redirected(resp)
	case resp.StatusCode/100 != 2:
		return resp.Status
	}
	return ""
}

// redirected describes a redirect, which is not followed, so that the user
// can give --forward-to the URL it points to. A 3xx without a usable
// Location (304, say) points nowhere: its status says enough.
func redirected(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return resp.Status
	}
	return fmt.Sprintf("%s: the target redirects to %s; redirects are not followed: give --forward-to that URL", resp.Status, loc.Redacted())
}
