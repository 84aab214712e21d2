package webhook

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/filter"
)

// The bounds of a webhook. Whatever a webhook gets a 2xx for is stored and
// must then be readable by every reader: Go, Python and TypeScript protobuf
// runtimes, protojson, the web view, and a consumer that parses raw_json
// itself. So a body is refused at the edge (400, naming the field or the
// place) unless it keeps within these bounds, and what the converter makes
// of it is bounded too. The README's "Limits" section lists them.
const (
	// MaxDepth bounds the nesting of objects and arrays in a body: the
	// top-level object is depth 1. A deeper body is refused (too_deep): no
	// payload Sociocs documents nests more than 4, and a consumer's own
	// parser of raw_json (Python's json module recurses) must not be
	// handed a body that exhausts its stack.
	MaxDepth = 64
	// MaxTypedDepth bounds the nesting of a value the converter copies
	// into a typed google.protobuf.Struct or Value (contact.extra_fields,
	// event_data.provider_err_obj, event_data.error): a deeper value is
	// kept only in raw_json, with a conversion warning. Each level of JSON
	// is two or three levels of protobuf messages, and Python's protobuf
	// refuses messages nested more than 100 deep: 16 levels keep a stored
	// event well within that, inside any response that carries it.
	MaxTypedDepth = 16
	// MaxChannelKeyLen bounds a channel key, in the URL or in the body:
	// 1 to 256 bytes of printable ASCII other than '/' (a key becomes a
	// token of the event's NATS subject and a path segment of the
	// per-channel URL).
	MaxChannelKeyLen = filter.MaxChannelKeyLen
	// MaxMessageIDLen bounds a message_id: at most 256 bytes of UTF-8
	// without control characters (it identifies the message, and with the
	// event type and status makes the event's id). Providers' ids are 32
	// to 40 characters.
	MaxMessageIDLen = 256
	// MaxWarnings bounds the conversion warnings kept in an event; past
	// it one more warning says how many were left out. Each warning is at
	// most maxWarningLen bytes.
	MaxWarnings = 20
	// maxWarningLen bounds one warning, and maxQuoted a value of the body
	// quoted in a warning or an error.
	maxWarningLen = 256
	maxQuoted     = 64
)

// MaxEventBytes is the largest encoded event a body of bodyLen bytes makes:
// raw_json itself, the typed fields sliced from it (at most as much again,
// the body being UTF-8), typed copies of objects (dropped, with a warning,
// when they would pass this bound), and a bounded envelope. The server's
// --grpc-max-send-msg-size must hold MaxEventBytes(--webhook-max-body).
func MaxEventBytes(bodyLen int) int { return 3*bodyLen + 16<<10 }

// ErrNotUTF8, ErrTooDeep and ErrInvalidField are what Convert's error wraps
// when a body is not UTF-8, nests deeper than MaxDepth, or has a field that
// breaks its rule (see FieldError).
var (
	ErrNotUTF8      = errors.New("webhook: body is not valid UTF-8")
	ErrTooDeep      = errors.New("webhook: body nests too deep")
	ErrInvalidField = errors.New("webhook: body has an invalid field")
)

// EncodingError locates the first byte of a body that is not UTF-8. JSON
// exchanged between systems must be UTF-8 (RFC 8259, section 8.1), and a
// body stored as raw_json is read as UTF-8 by every consumer.
type EncodingError struct {
	Offset int  // of the byte
	Byte   byte // the byte itself
}

func (e *EncodingError) Error() string {
	return fmt.Sprintf("webhook: body is not valid UTF-8: byte %d (0x%02x) is not part of a UTF-8 character; send JSON encoded as UTF-8", e.Offset, e.Byte)
}

func (e *EncodingError) Unwrap() error { return ErrNotUTF8 }

// DepthError names where a body nests deeper than MaxDepth.
type DepthError struct {
	// Path is the JSON path of the value that is one level too deep,
	// shortened when long.
	Path string
}

func (e *DepthError) Error() string {
	return fmt.Sprintf("webhook: body nests objects and arrays deeper than %d levels, at %s", MaxDepth, e.Path)
}

func (e *DepthError) Unwrap() error { return ErrTooDeep }

// FieldError names a field of a body that breaks its rule.
type FieldError struct {
	Field  string // the JSON path: "channel_key", "message_id"
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("webhook: body has an invalid %s: %s", e.Field, e.Reason)
}

func (e *FieldError) Unwrap() error { return ErrInvalidField }

// checkUTF8 returns an *EncodingError for the first byte of body that
// begins no UTF-8 character, or nil.
func checkUTF8(body []byte) error {
	if utf8.Valid(body) {
		return nil
	}
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n <= 1 {
			return &EncodingError{Offset: i, Byte: body[i]}
		}
		i += n
	}
	return nil
}

// checkChannelKey applies the channel key's rule (see MaxChannelKeyLen).
func checkChannelKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty")
	case len(key) > MaxChannelKeyLen:
		return fmt.Errorf("%d bytes, longer than %d", len(key), MaxChannelKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return fmt.Errorf("byte %d is not printable ASCII (or is '/')", i)
		}
	}
	return nil
}

// checkMessageID applies the message id's rule (see MaxMessageIDLen).
func checkMessageID(id string) error {
	if len(id) > MaxMessageIDLen {
		return fmt.Errorf("%d bytes, longer than %d", len(id), MaxMessageIDLen)
	}
	for i, r := range id {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("byte %d is a control character", i)
		}
	}
	return nil
}

// quote returns s as a Go-quoted string, shortened to maxQuoted bytes
// (with "…" after the quote) when longer: warnings and errors name what
// was wrong without repeating a large value.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(truncate(s, maxQuoted)) + "…"
}

// clip returns s shortened to maxQuoted bytes (and "…") when longer: a
// number, say, named in a warning.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return truncate(s, maxQuoted) + "…"
}

// truncate returns at most n bytes of s, cut at a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// shortPath shortens a JSON path for an error message: its first and last
// parts, with how many were left out between them.
func shortPath(p string) string {
	const keep = 96
	if len(p) <= 2*keep {
		return p
	}
	head, tail := truncate(p, keep), p[len(p)-keep:]
	for len(tail) > 0 && !utf8.ValidString(tail) {
		tail = tail[1:]
	}
	return head + fmt.Sprintf("…(%d bytes)…", len(p)-len(head)-len(tail)) + tail
}

// bound keeps ev within MaxEventBytes(bodyLen): while it is larger, the
// largest typed copy of a part of the body is dropped, with a warning (the
// part stays in raw_json). Then the warnings that were left out are
// counted in a last one, and the warnings are set in ev.
func (c *converter) bound(ev *eventsv1.Event, bodyLen int) {
	limit := MaxEventBytes(bodyLen)
	// A body of at most smallBody bytes cannot make an event past its
	// bound: raw_json, strings at most as long as the body, typed copies
	// at most 5.5 times their part of it (a list of single digits, the
	// worst case), warnings and an envelope under 8 KiB make at most
	// 7.5 × 1 KiB + 8 KiB, under MaxEventBytes' 16 KiB floor. Sizing an
	// event costs allocations (its oneofs) that the usual webhook, under
	// 1 KiB, need not pay. FuzzConvert checks the bound on every event.
	if bodyLen <= smallBody {
		c.countLeftOut(ev)
		return
	}
	for size := proto.Size(ev); size > limit; size = proto.Size(ev) {
		path, n, drop := biggestCopy(ev)
		if drop == nil {
			break // unreachable: without typed copies an event is at most twice its body and the envelope
		}
		drop()
		c.note(describe("%s: its typed copy (%d bytes) would make the event larger than %d bytes; kept only in raw_json", path, n, limit))
	}
	c.countLeftOut(ev)
}

// smallBody is the size up to which a body's event is within its bound
// whatever the body holds (see bound).
const smallBody = 1024

// countLeftOut ends the warnings with one that counts those left out, and
// sets them in ev.
func (c *converter) countLeftOut(ev *eventsv1.Event) {
	if c.left > 0 {
		c.note(fmt.Sprintf("… and %d more conversion warnings, left out", c.left))
	}
	ev.ConversionWarnings = c.warnings
}

// biggestCopy returns the largest typed copy of a part of the body that ev
// holds: its path, its encoded size and how to drop it; drop is nil when ev
// holds none.
func biggestCopy(ev *eventsv1.Event) (path string, size int, drop func()) {
	consider := func(p string, m proto.Message, d func()) {
		if n := proto.Size(m); n > size {
			path, size, drop = p, n, d
		}
	}
	if ct := ev.GetMessage().GetContact(); ct.GetExtraFields() != nil {
		consider("contact.extra_fields", ct.ExtraFields, func() { ct.ExtraFields = nil })
	}
	if su := ev.GetStatusUpdate(); su != nil {
		if su.ProviderError != nil {
			consider("event_data.provider_err_obj", su.ProviderError, func() { su.ProviderError = nil })
		}
		if e := su.GetError(); e.GetDetails() != nil {
			consider("event_data.error", e.Details, func() { e.Details = nil })
		}
	}
	return path, size, drop
}

// describe returns one warning's text, bounded.
func describe(format string, args ...any) string {
	s := fmt.Sprintf(format, args...)
	if len(s) > maxWarningLen {
		s = truncate(s, maxWarningLen-len("…")) + "…"
	}
	return s
}
