// Package send is `eventsvc send`: it posts a realistic Sociocs webhook (an
// incoming message or a status update, shaped as Sociocs documents them, or
// a body of one's own) to a running eventsvc, signed when given a secret,
// and prints the answer.
package send

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/eventsvc/eventsvc/internal/sociocs"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

// ErrConfig wraps the errors of a Config that cannot work.
var ErrConfig = errors.New("send: invalid setting")

// ErrRefused is returned when eventsvc answers with a status other than 2xx.
var ErrRefused = errors.New("send: webhook refused")

// Event types.
const (
	TypeMessage      = "message"
	TypeStatusUpdate = "status_update"
)

// Defaults of Config.
const (
	DefaultURL        = "http://127.0.0.1:8080/webhooks/sociocs"
	DefaultChannelKey = "twlo_16311113333"
	DefaultText       = "Hello World!"
	DefaultStatus     = "delivered"
	DefaultTimeout    = 10 * time.Second
	defaultNumber     = "16311113333"
)

// Config is what `eventsvc send` was asked to send. Empty fields take the
// defaults documented on each.
type Config struct {
	// URL is eventsvc's webhook URL. Status updates, which carry no channel,
	// go to URL/<channel key>. Default DefaultURL.
	URL string
	// Type is TypeMessage (default) or TypeStatusUpdate.
	Type string
	// Provider is a Sociocs provider code (twlo, twlowa, gswa, tlnx).
	// Default: the channel key's prefix.
	Provider string
	// ChannelKey is the channel (provider code, _, number). Default:
	// DefaultChannelKey, or the provider's code with the same number.
	ChannelKey string
	// Status is a status update's status (a Sociocs status string).
	// Default DefaultStatus. A failed one carries Sociocs's example error.
	Status string
	// Text is a message's text. Default DefaultText.
	Text string
	// MessageID is the body's message_id. Default: a new one each time,
	// so that each send is a new event rather than a retry.
	MessageID string
	// File is a file whose content is sent as the body, as it is ("-":
	// standard input). It excludes Type, Provider, Status, Text and
	// MessageID; with ChannelKey, the body goes to URL/<channel key>.
	File string
	// Secret signs the body (X-Sociocs-Signature, hex HMAC-SHA256). Empty:
	// unsigned.
	Secret string
	// Timeout bounds the request. Default DefaultTimeout.
	Timeout time.Duration
}

// Run sends the webhook cfg describes and prints eventsvc's answer to
// stdout. It returns an error wrapping ErrRefused for an answer other than
// 2xx (after printing it), ErrConfig for a bad cfg, or the transport error.
func Run(ctx context.Context, cfg Config, stdin io.Reader, stdout io.Writer) error {
	target, body, err := Build(cfg, stdin)
	if err != nil {
		return err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: url: %v", ErrConfig, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.Secret != "" {
		req.Header.Set("X-Sociocs-Signature", webhook.Sign(body, []byte(cfg.Secret)))
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("send: reading the answer: %w", err)
	}
	answer = bytes.TrimSpace(answer)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w: %s: %s", ErrRefused, resp.Status, answer)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", answer)
	return err
}

// Build returns the URL and the body that cfg describes, without sending
// anything.
func Build(cfg Config, stdin io.Reader) (target string, body []byte, err error) {
	base := cfg.URL
	if base == "" {
		base = DefaultURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", nil, fmt.Errorf("%w: url %q: want an http or https URL", ErrConfig, base)
	}
	if cfg.File != "" {
		if cfg.Type != "" || cfg.Provider != "" || cfg.Status != "" || cfg.Text != "" || cfg.MessageID != "" {
			return "", nil, fmt.Errorf("%w: a file is sent as it is: leave out type, provider, status, text and message id", ErrConfig)
		}
		if body, err = readFile(cfg.File, stdin); err != nil {
			return "", nil, err
		}
		if cfg.ChannelKey != "" {
			u = u.JoinPath(cfg.ChannelKey)
		}
		return u.String(), body, nil
	}
	key, provider, err := channel(cfg.ChannelKey, cfg.Provider)
	if err != nil {
		return "", nil, err
	}
	id := cfg.MessageID
	if id == "" {
		id = newMessageID()
	}
	switch cfg.Type {
	case "", TypeMessage:
		if cfg.Status != "" {
			return "", nil, fmt.Errorf("%w: a status goes with type status_update", ErrConfig)
		}
		text := cfg.Text
		if text == "" {
			text = DefaultText
		}
		body, err = json.MarshalIndent(newMessage(id, provider, key, text), "", "  ")
	case TypeStatusUpdate:
		if cfg.Text != "" {
			return "", nil, fmt.Errorf("%w: a text goes with type message", ErrConfig)
		}
		st := cfg.Status
		if st == "" {
			st = DefaultStatus
		}
		if _, ok := sociocs.Statuses.ByCode(st); !ok {
			return "", nil, fmt.Errorf("%w: status %q: want one of %s", ErrConfig, st, strings.Join(sociocs.Statuses.Codes(), ", "))
		}
		body, err = json.MarshalIndent(newStatusUpdate(id, st), "", "  ")
		u = u.JoinPath(key)
	default:
		return "", nil, fmt.Errorf("%w: type %q: want message or status_update", ErrConfig, cfg.Type)
	}
	if err != nil {
		return "", nil, fmt.Errorf("send: %w", err)
	}
	return u.String(), body, nil
}

// channel settles the channel key and the provider code from what was
// given: each follows from the other, and they must agree.
func channel(key, provider string) (string, string, error) {
	if key == "" {
		if provider == "" {
			key = DefaultChannelKey
		} else {
			key = provider + "_" + defaultNumber
		}
	}
	prefix, number, ok := strings.Cut(key, "_")
	if !ok || number == "" {
		return "", "", fmt.Errorf("%w: channel key %q: want <provider code>_<number>, like %s", ErrConfig, key, DefaultChannelKey)
	}
	if provider == "" {
		provider = prefix
	}
	if _, known := sociocs.Providers.ByCode(provider); !known {
		return "", "", fmt.Errorf("%w: provider %q: want one of %s (a body of your own: --file)", ErrConfig, provider, strings.Join(sociocs.Providers.Codes(), ", "))
	}
	if prefix != provider {
		return "", "", fmt.Errorf("%w: channel key %q is not of provider %q (a body of your own: --file)", ErrConfig, key, provider)
	}
	return key, provider, nil
}

func readFile(name string, stdin io.Reader) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 64<<20))
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: file: %v", ErrConfig, err)
	}
	return b, nil
}

// newMessageID returns an id shaped like Twilio's message SIDs.
func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return "MM" + hex.EncodeToString(b[:])
}

// The bodies below follow Sociocs's webhook page (the samples are in
// internal/webhook/testdata), field for field and in its order.

type message struct {
	MessageID  string   `json:"message_id"`
	Event      string   `json:"event"`
	Provider   string   `json:"provider"`
	ChannelKey string   `json:"channel_key"`
	Direction  string   `json:"direction"`
	From       string   `json:"from"`
	To         string   `json:"to"`
	Text       string   `json:"text"`
	VideoURLs  []string `json:"video_urls"`
	ImageURLs  []string `json:"image_urls"`
	FileURLs   []string `json:"file_urls"`
	Contact    contact  `json:"contact"`
	Timestamp  int64    `json:"timestamp"`
}

type contact struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	PhoneNumber   string `json:"phone_number"`
	PhoneNumberCC string `json:"phone_number_cc"`
	ExtraFields   string `json:"extra_fields"`
	CreatedAt     string `json:"created_at"`
	UpdatedAt     string `json:"updated_at"`
	IsBlocked     int    `json:"is_blocked"`
}

func newMessage(id, provider, key, text string) message {
	_, number, _ := strings.Cut(key, "_")
	const from = "16311112222"
	return message{
		MessageID: id, Event: TypeMessage, Provider: provider, ChannelKey: key,
		Direction: "incoming", From: from, To: number, Text: text,
		VideoURLs: []string{}, ImageURLs: []string{}, FileURLs: []string{},
		Contact: contact{
			ID: 123, Name: "Emily Johnson", PhoneNumber: from,
			ExtraFields: `{"city": "Ahmedabad", "country": "India"}`,
			CreatedAt:   "2025-07-11T11:29:46.000Z", UpdatedAt: "2025-08-04T12:29:21.000Z",
		},
		Timestamp: time.Now().UnixMilli(),
	}
}

type statusUpdate struct {
	MessageID string    `json:"message_id"`
	Event     string    `json:"event"`
	EventData eventData `json:"event_data"`
}

type eventData struct {
	Status         string          `json:"status"`
	Error          json.RawMessage `json:"error,omitempty"`
	ProviderErrObj json.RawMessage `json:"provider_err_obj,omitempty"`
}

func newStatusUpdate(id, status string) statusUpdate {
	su := statusUpdate{MessageID: id, Event: TypeStatusUpdate, EventData: eventData{Status: status}}
	if status == "failed" {
		su.EventData.Error = json.RawMessage(`{"code": 21614, "message": "You have attempted to send a message to a number that is either a landline number or is an invalid number. (code: 21614)"}`)
		su.EventData.ProviderErrObj = json.RawMessage(`{"status": 400, "code": 21614, "moreInfo": "https://www.twilio.com/docs/errors/21614", "error": true}`)
	}
	return su
}
