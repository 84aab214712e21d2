package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/sociocs"
)

// ErrNotJSON and ErrNotObject are the only ways a body can fail conversion:
// every other surprise is a conversion warning.
var (
	ErrNotJSON   = errors.New("webhook: body is not valid JSON")
	ErrNotObject = errors.New("webhook: body is not a JSON object")
)

// SyntaxError locates a JSON syntax error in a webhook body.
type SyntaxError struct {
	Offset       int64 // byte offset of the fault
	Line, Column int   // 1-based, columns in bytes
	Msg          string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("body is not valid JSON: %s at line %d, column %d (byte %d)", e.Msg, e.Line, e.Column, e.Offset)
}

func (e *SyntaxError) Unwrap() error { return ErrNotJSON }

// Sociocs event names.
const (
	eventMessage      = "message"
	eventStatusUpdate = "status_update"
)

// directions are the values of a message's direction (not an enum Sociocs
// shares with anything else).
var directions = map[string]eventsv1.Direction{
	"incoming": eventsv1.Direction_DIRECTION_INCOMING,
	"outgoing": eventsv1.Direction_DIRECTION_OUTGOING,
}

// Convert turns a webhook body into an Event. channelKey is the key from the
// URL ("" if none). received_at is receivedAt; sequence stays 0; raw_json is
// body itself (not copied: the caller must not modify body afterwards).
//
// It fails only when body is not UTF-8 (an *EncodingError, wrapping
// ErrNotUTF8), not JSON (a *SyntaxError, wrapping ErrNotJSON), not a JSON
// object (ErrNotObject), nests deeper than MaxDepth (a *DepthError, wrapping
// ErrTooDeep), has an object with a duplicate key (a *DuplicateKeyError,
// wrapping ErrDuplicateKey), or a message_id or channel_key that breaks its
// rule (a *FieldError, wrapping ErrInvalidField). Every other surprise — a
// field of an unexpected type, an unknown event type or provider, an
// extra_fields string that is not a JSON object, a value nested deeper than
// a typed copy may be — is recorded in Event.conversion_warnings, naming the
// JSON path, and the event is still returned. The event's encoding is at
// most MaxEventBytes(len(body)), its warnings at most MaxWarnings and a few.
func Convert(body []byte, channelKey string, receivedAt time.Time) (*eventsv1.Event, error) {
	c := &converter{d: getDoc()}
	defer c.d.release()
	if err := c.d.scanBody(body); err != nil {
		return nil, err
	}
	top := val(0)
	// Protobuf strings must be UTF-8; the URL's key is checked by the
	// handler, but Convert takes any caller's.
	channelKey = strings.ToValidUTF8(channelKey, "\uFFFD")
	ev := &eventsv1.Event{
		ReceivedAt: timestamppb.New(receivedAt),
		RawJson:    body,
	}
	ev.MessageId, _ = c.str("message_id", c.d.get(top, "message_id"))
	ev.EventCode, _ = c.str("event", c.d.get(top, "event"))
	if t, ok := sociocs.EventTypes.ByCode(ev.EventCode); ok {
		ev.Type = t
	} else {
		ev.Type = eventsv1.EventType_EVENT_TYPE_UNKNOWN
		if ev.EventCode == "" {
			c.warn("event: missing; the event type is unknown")
		} else {
			c.warn("event: unknown event type %s", quote(ev.EventCode))
		}
	}

	ev.ChannelKey, _ = c.str("channel_key", c.d.get(top, "channel_key"))
	switch {
	case ev.ChannelKey == "":
		ev.ChannelKey = channelKey
	case channelKey != "" && channelKey != ev.ChannelKey:
		c.warn("channel_key: the body says %s but the webhook URL says %s; the body wins", quote(ev.ChannelKey), quote(channelKey))
	}
	ev.ProviderCode, _ = c.str("provider", c.d.get(top, "provider"))
	if ev.ProviderCode == "" {
		ev.ProviderCode = providerFromChannel(ev.ChannelKey)
	}
	ev.Provider = providerOf(ev.ProviderCode)
	if ev.Provider == eventsv1.Provider_PROVIDER_UNKNOWN {
		c.warn("provider: unknown provider code %s", quote(ev.ProviderCode))
	}

	var status string
	switch ev.Type {
	case eventsv1.EventType_EVENT_TYPE_MESSAGE:
		ev.Payload = &eventsv1.Event_Message{Message: c.message(top)}
	case eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE:
		su := c.statusUpdate(c.d.get(top, "event_data"))
		status = su.GetStatusCode()
		ev.Payload = &eventsv1.Event_StatusUpdate{StatusUpdate: su}
	}
	if err := checkFields(ev); err != nil {
		return nil, err
	}
	ev.Id = EventID(ev.MessageId, ev.EventCode, status, body)
	c.bound(ev, len(body))
	return ev, nil
}

// scanBody reads body into d, or returns why it cannot be converted: it
// must be UTF-8, a JSON object, nest at most MaxDepth levels and have no
// duplicate key. Its faults are named in the order of those rules, so that
// a body with several gets the same answer whichever the pass meets first:
// a syntax error anywhere wins over a duplicate key or a nesting fault,
// which only a body that is JSON can have.
func (d *doc) scanBody(body []byte) error {
	if err := checkUTF8(body); err != nil {
		return err
	}
	err := d.scan(body, MaxDepth, bodyOptions)
	switch {
	case err == errSyntax:
		return rejection(body)
	case err != nil && !json.Valid(body):
		return rejection(body) // a fault of the body's structure, before its syntax error
	case err != nil:
		return err
	case d.kind(0) != '{':
		return rejection(body)
	}
	return nil
}

// checkFields applies the rules of the fields that identify an event (see
// MaxMessageIDLen and MaxChannelKeyLen) to what the body gave them.
func checkFields(ev *eventsv1.Event) error {
	if err := checkMessageID(ev.GetMessageId()); err != nil {
		return &FieldError{Field: "message_id", Reason: err.Error()}
	}
	if key := ev.GetChannelKey(); key != "" {
		if err := checkChannelKey(key); err != nil {
			return &FieldError{Field: "channel_key", Reason: err.Error()}
		}
	}
	return nil
}

// rejection says why body, which is not a valid JSON object, cannot be
// converted, in the terms of the standard decoder.
func rejection(body []byte) error {
	var top map[string]json.RawMessage
	err := json.Unmarshal(body, &top)
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return syntaxError(body, syn)
	case errors.As(err, &typ):
		return fmt.Errorf("%w: it is %s %s", ErrNotObject, article(typ.Value), typ.Value)
	case err != nil:
		return fmt.Errorf("%w: %v", ErrNotJSON, err)
	case top == nil:
		return fmt.Errorf("%w: it is null", ErrNotObject)
	}
	// Unreachable: encoding/json accepted an object that the body's
	// decoder refused (FuzzConvertMatchesReference looks for one).
	return fmt.Errorf("%w: rejected by the validator", ErrNotJSON)
}

// EventID returns the deterministic id of a webhook delivery, so that a retry
// has the id of the original: "ev_" and the first 32 hex digits of the SHA-256
// of message_id, event and status joined by NUL bytes (status is "" except for
// status updates). A body without a message id is identified by its own
// SHA-256 instead.
func EventID(messageID, event, status string, body []byte) string {
	var sum [sha256.Size]byte
	if messageID == "" {
		sum = sha256.Sum256(body)
	} else {
		var buf [128]byte
		in := append(buf[:0], messageID...)
		in = append(in, 0)
		in = append(in, event...)
		in = append(in, 0)
		in = append(in, status...)
		sum = sha256.Sum256(in)
	}
	var id [3 + 32]byte
	copy(id[:], "ev_")
	hex.Encode(id[3:], sum[:16])
	return string(id[:])
}

// providerFromChannel returns the prefix of a channel key ("twlo" of
// "twlo_16311113333"), or "" when it has none.
func providerFromChannel(key string) string {
	prefix, _, ok := strings.Cut(key, "_")
	if !ok {
		return ""
	}
	return prefix
}

func providerOf(code string) eventsv1.Provider {
	if code == "" {
		return eventsv1.Provider_PROVIDER_UNSPECIFIED
	}
	if p, ok := sociocs.Providers.ByCode(strings.ToLower(code)); ok {
		return p
	}
	return eventsv1.Provider_PROVIDER_UNKNOWN
}

// converter maps the JSON values of a scanned body to typed fields,
// collecting a warning for every value it cannot map: the first
// MaxWarnings, and a count of the others.
type converter struct {
	d        *doc
	warnings []string
	left     int // warnings past MaxWarnings, not kept
}

func (c *converter) warn(format string, args ...any) {
	if len(c.warnings) >= MaxWarnings {
		c.left++ // not even formatted: a body can hold a million faults
		return
	}
	c.warnings = append(c.warnings, describe(format, args...))
}

// note adds a warning past MaxWarnings: what bound did to the event is
// always said.
func (c *converter) note(w string) { c.warnings = append(c.warnings, w) }

func kindName(k byte) string {
	switch k {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func article(v string) string {
	if v != "" && strings.ContainsRune("aeiou", rune(v[0])) {
		return "an"
	}
	return "a"
}

// str reads a string. A number or boolean is kept in its JSON spelling, with
// a warning; null or absent is ("", false).
func (c *converter) str(path string, v val) (string, bool) {
	switch k := c.d.kind(v); k {
	case 'n':
		return "", false
	case '"':
		return c.d.text(v), true
	case '0', 't', 'f':
		c.warn("%s: expected a string, got %s; kept as text", path, kindName(k))
		return string(c.d.raw(v)), true
	default:
		c.warn("%s: expected a string, got %s", path, kindName(k))
		return "", false
	}
}

// strList reads an array of strings; null or absent is empty. A single
// string is taken as a list of one, with a warning; other elements are
// skipped with a warning.
func (c *converter) strList(path string, v val) []string {
	switch k := c.d.kind(v); k {
	case 'n':
		return nil
	case '"':
		s, _ := c.str(path, v)
		c.warn("%s: expected an array of strings, got a string; taken as a list of one", path)
		return []string{s}
	case '[':
		if c.d.isEmpty(v) {
			return nil
		}
		items := c.d.elements(v)
		// The common case, all strings, without a warning.
		allStrings := true
		for _, item := range items {
			allStrings = allStrings && c.d.kind(item) == '"'
		}
		if allStrings {
			out := make([]string, len(items))
			for i, item := range items {
				out[i], _ = c.str(path, item)
			}
			return out
		}
		// Not all strings: take the strings, report the rest.
		var out []string
		for i, item := range items {
			if k := c.d.kind(item); k != '"' {
				c.warn("%s[%d]: expected a string, got %s; skipped", path, i, kindName(k))
				continue
			}
			s, _ := c.str(fmt.Sprintf("%s[%d]", path, i), item)
			out = append(out, s)
		}
		return out
	default:
		c.warn("%s: expected an array of strings, got %s", path, kindName(k))
		return nil
	}
}

// integer reads a JSON integer; a string holding one is accepted with a
// warning.
func (c *converter) integer(path string, v val) (int64, bool) {
	switch k := c.d.kind(v); k {
	case 'n':
		return 0, false
	case '0':
		raw := c.d.raw(v)
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			c.warn("%s: %s is not a 64-bit integer", path, clip(string(raw)))
			return 0, false
		}
		return n, true
	case '"':
		s, _ := c.str(path, v)
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			c.warn("%s: expected an integer, got the string %s", path, quote(s))
			return 0, false
		}
		c.warn("%s: expected an integer, got it as a string", path)
		return n, true
	default:
		c.warn("%s: expected an integer, got %s", path, kindName(k))
		return 0, false
	}
}

// boolean reads Sociocs's 0/1 flags; true/false are accepted too.
func (c *converter) boolean(path string, v val) bool {
	switch k := c.d.kind(v); k {
	case 'n':
		return false
	case 't', 'f':
		return k == 't'
	}
	n, ok := c.integer(path, v)
	if ok && n != 0 && n != 1 {
		c.warn("%s: expected 0 or 1, got %d; taken as true", path, n)
	}
	return ok && n != 0
}

func (c *converter) millis(path string, v val) *timestamppb.Timestamp {
	ms, ok := c.integer(path, v)
	if !ok {
		return nil
	}
	return c.timestamp(path, time.UnixMilli(ms))
}

// timestamp returns t as a Timestamp when one can hold it (years 1 to
// 9999): protojson, and every other language's runtime, refuses to write
// another, and a stored event must be readable by all.
func (c *converter) timestamp(path string, t time.Time) *timestamppb.Timestamp {
	ts := timestamppb.New(t)
	if err := ts.CheckValid(); err != nil {
		c.warn("%s: %s is outside the years 1 to 9999; kept only in raw_json", path, t.UTC().Format(time.RFC3339Nano))
		return nil
	}
	return ts
}

func (c *converter) isoTime(path string, v val) *timestamppb.Timestamp {
	s, ok := c.str(path, v)
	if !ok || s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		c.warn("%s: %s is not an ISO-8601 time", path, quote(s))
		return nil
	}
	return c.timestamp(path, t)
}

// object returns v when it is an object; anything else is reported and
// yields false.
func (c *converter) object(path string, v val) (val, bool) {
	switch k := c.d.kind(v); k {
	case 'n':
		return absent, false
	case '{':
		return v, true
	default:
		c.warn("%s: expected an object, got %s", path, kindName(k))
		return absent, false
	}
}

// structOf makes the typed copy of the object v of the body.
func (c *converter) structOf(path string, v val) *structpb.Struct {
	if !c.shallow(path, int(c.d.nodes[v].height) <= MaxTypedDepth) {
		return nil
	}
	if s, ok := c.d.structAt(v); ok {
		return s
	}
	return c.protoStruct(path, c.d.raw(v))
}

// structOfText makes the typed copy of text, a document of its own that a
// string of the body holds.
func (c *converter) structOfText(path string, text []byte) *structpb.Struct {
	d := getDoc()
	defer d.release()
	err := d.scan(text, MaxTypedDepth, strictOptions)
	var deep *DepthError
	// A document the decoder refused before it went deeper than a typed
	// copy may may still go deeper after.
	if !c.shallow(path, !errors.As(err, &deep) && (err == nil || depthWithin(text, MaxTypedDepth))) {
		return nil
	}
	if err == nil && d.kind(0) == '{' {
		if s, ok := d.structAt(0); ok {
			return s
		}
	}
	return c.protoStruct(path, text)
}

// protoStruct asks protojson for the Struct of raw, or for why there is
// none.
func (c *converter) protoStruct(path string, raw []byte) *structpb.Struct {
	s := new(structpb.Struct)
	if err := protojson.Unmarshal(raw, s); err != nil {
		c.warn("%s: not a JSON object: %v", path, err)
		return nil
	}
	return s
}

// shallow passes on within, whether a value nests at most MaxTypedDepth
// levels, which a typed copy may hold, and warns when it does not.
func (c *converter) shallow(path string, within bool) bool {
	if !within {
		c.warn("%s: nests deeper than %d levels; kept only in raw_json", path, MaxTypedDepth)
	}
	return within
}

func (c *converter) message(top val) *eventsv1.MessageEvent {
	d := c.d
	m := &eventsv1.MessageEvent{}
	m.DirectionCode, _ = c.str("direction", d.get(top, "direction"))
	if dir, ok := directions[m.DirectionCode]; ok {
		m.Direction = dir
	} else if m.DirectionCode != "" {
		m.Direction = eventsv1.Direction_DIRECTION_UNKNOWN
		c.warn("direction: unknown direction %s", quote(m.DirectionCode))
	}
	m.FromNumber, _ = c.str("from", d.get(top, "from"))
	m.ToNumber, _ = c.str("to", d.get(top, "to"))
	if name, ok := c.str("name", d.get(top, "name")); ok {
		m.Name = proto.String(name)
	}
	m.Text, _ = c.str("text", d.get(top, "text"))
	m.FileUrls = c.strList("file_urls", d.get(top, "file_urls"))
	m.ImageUrls = c.strList("image_urls", d.get(top, "image_urls"))
	m.VideoUrls = c.strList("video_urls", d.get(top, "video_urls"))
	m.Timestamp = c.millis("timestamp", d.get(top, "timestamp"))
	if obj, ok := c.object("contact", d.get(top, "contact")); ok {
		m.Contact = c.contact(obj)
	}
	return m
}

func (c *converter) contact(obj val) *eventsv1.Contact {
	d := c.d
	ct := &eventsv1.Contact{}
	ct.Id, _ = c.integer("contact.id", d.get(obj, "id"))
	ct.Name, _ = c.str("contact.name", d.get(obj, "name"))
	ct.PhoneNumber, _ = c.str("contact.phone_number", d.get(obj, "phone_number"))
	ct.PhoneNumberCc, _ = c.str("contact.phone_number_cc", d.get(obj, "phone_number_cc"))
	switch v := d.get(obj, "extra_fields"); d.kind(v) {
	case '{':
		// Sociocs documents a string holding JSON; an object sent as such
		// is just as clear.
		c.warn("contact.extra_fields: expected a string holding JSON, got an object; used as is")
		ct.ExtraFields = c.structOf("contact.extra_fields", v)
		ct.ExtraFieldsJson = string(d.raw(v))
	default:
		ct.ExtraFieldsJson, _ = c.str("contact.extra_fields", v)
		if strings.TrimSpace(ct.ExtraFieldsJson) != "" {
			ct.ExtraFields = c.structOfText("contact.extra_fields", []byte(ct.ExtraFieldsJson))
		}
	}
	ct.CreatedAt = c.isoTime("contact.created_at", d.get(obj, "created_at"))
	ct.UpdatedAt = c.isoTime("contact.updated_at", d.get(obj, "updated_at"))
	ct.IsBlocked = c.boolean("contact.is_blocked", d.get(obj, "is_blocked"))
	return ct
}

func (c *converter) statusUpdate(v val) *eventsv1.StatusUpdateEvent {
	d := c.d
	su := &eventsv1.StatusUpdateEvent{}
	data, ok := c.object("event_data", v)
	if !ok {
		if d.kind(v) == 'n' {
			c.warn("event_data: missing; the status is unknown")
		}
		return su
	}
	su.StatusCode, _ = c.str("event_data.status", d.get(data, "status"))
	if st, ok := sociocs.Statuses.ByCode(su.StatusCode); ok {
		su.Status = st
	} else if su.StatusCode != "" {
		su.Status = eventsv1.Status_STATUS_UNKNOWN
		c.warn("event_data.status: unknown status %s", quote(su.StatusCode))
	} else {
		c.warn("event_data.status: missing")
	}
	if errVal := d.get(data, "error"); d.kind(errVal) != 'n' {
		su.Error = c.statusError(errVal)
	}
	switch v := d.get(data, "provider_err_obj"); d.kind(v) {
	case 'n':
	case '{':
		su.ProviderError = c.structOf("event_data.provider_err_obj", v)
	default:
		c.warn("event_data.provider_err_obj: expected an object, got %s; see raw_json", kindName(d.kind(v)))
	}
	return su
}

// statusError keeps the whole error value and lifts code and message out of
// it: from the object itself, from the first object of an array, or a plain
// string as the message.
func (c *converter) statusError(v val) *eventsv1.StatusError {
	d := c.d
	e := &eventsv1.StatusError{}
	if !c.shallow("event_data.error", int(d.nodes[v].height) <= MaxTypedDepth) {
		// No details; code and message are still lifted below.
	} else if details, ok := d.valueAt(v); ok {
		e.Details = details
	} else {
		e.Details = new(structpb.Value)
		if err := protojson.Unmarshal(d.raw(v), e.Details); err != nil {
			c.warn("event_data.error: %v", err)
			e.Details = nil
		}
	}
	path := "event_data.error"
	switch d.kind(v) {
	case '"':
		e.Message, _ = c.str(path, v)
		return e
	case '[':
		items := d.elements(v)
		v = absent
		for i, item := range items {
			if d.kind(item) == '{' {
				v, path = item, fmt.Sprintf("event_data.error[%d]", i)
				break
			}
		}
		if v == absent {
			c.warn("event_data.error: an array without an object; see details")
			return e
		}
	case '{':
	default:
		c.warn("event_data.error: expected an object, got %s; see details", kindName(d.kind(v)))
		return e
	}
	switch code := d.get(v, "code"); d.kind(code) {
	case '0':
		e.Code = string(d.raw(code))
	case 'n':
	default:
		e.Code, _ = c.str(path+".code", code)
	}
	e.Message, _ = c.str(path+".message", d.get(v, "message"))
	return e
}

// syntaxError locates err in body.
func syntaxError(body []byte, err *json.SyntaxError) *SyntaxError {
	off := err.Offset
	if off > int64(len(body)) {
		off = int64(len(body))
	}
	// Offset counts the bytes read when the error was found; the fault is
	// the last of them.
	fault := off - 1
	if fault < 0 {
		fault = 0
	}
	line := 1 + bytes.Count(body[:fault], []byte{'\n'})
	col := int(fault) - bytes.LastIndexByte(body[:fault], '\n')
	return &SyntaxError{Offset: fault, Line: line, Column: col, Msg: err.Error()}
}
