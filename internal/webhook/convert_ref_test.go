package webhook

// This file keeps the converter as it was before the single-pass decoder, as
// an oracle: FuzzConvertMatchesReference checks that Convert gives the same
// event, warnings and errors for any body.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/sociocs"
)

// refConvert turns a webhook body into an Event. channelKey is the key from the
// URL ("" if none). received_at is receivedAt; sequence stays 0; raw_json is
// body itself (not copied: the caller must not modify body afterwards).
//
// It fails only when body is not JSON (a *SyntaxError, wrapping ErrNotJSON)
// or not a JSON object (ErrNotObject). Every other surprise — a field of an
// unexpected type, an unknown event type or provider, an extra_fields string
// that is not a JSON object — is recorded in Event.conversion_warnings, naming
// the JSON path, and the event is still returned.
func refConvert(body []byte, channelKey string, receivedAt time.Time) (*eventsv1.Event, error) {
	if err := checkUTF8(body); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, refSyntaxError(body, syn)
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return nil, fmt.Errorf("%w: it is %s %s", ErrNotObject, refArticle(typ.Value), typ.Value)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if top == nil {
		return nil, fmt.Errorf("%w: it is null", ErrNotObject)
	}
	if err := refCheckKeys(body); err != nil {
		return nil, err
	}
	// Protobuf strings must be UTF-8; the URL's key is checked by the
	// handler, but refConvert takes any caller's.
	channelKey = strings.ToValidUTF8(channelKey, "\uFFFD")
	c := &refConverter{}
	ev := &eventsv1.Event{
		ReceivedAt: timestamppb.New(receivedAt),
		RawJson:    body,
	}
	ev.MessageId, _ = c.str("message_id", top["message_id"])
	ev.EventCode, _ = c.str("event", top["event"])
	switch ev.EventCode {
	case eventMessage:
		ev.Type = eventsv1.EventType_EVENT_TYPE_MESSAGE
	case eventStatusUpdate:
		ev.Type = eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE
	default:
		ev.Type = eventsv1.EventType_EVENT_TYPE_UNKNOWN
		if ev.EventCode == "" {
			c.warn("event: missing; the event type is unknown")
		} else {
			c.warn("event: unknown event type %s", quote(ev.EventCode))
		}
	}

	ev.ChannelKey, _ = c.str("channel_key", top["channel_key"])
	switch {
	case ev.ChannelKey == "":
		ev.ChannelKey = channelKey
	case channelKey != "" && channelKey != ev.ChannelKey:
		c.warn("channel_key: the body says %s but the webhook URL says %s; the body wins", quote(ev.ChannelKey), quote(channelKey))
	}
	ev.ProviderCode, _ = c.str("provider", top["provider"])
	if ev.ProviderCode == "" {
		ev.ProviderCode = refProviderFromChannel(ev.ChannelKey)
	}
	ev.Provider = refProviderOf(ev.ProviderCode)
	if ev.Provider == eventsv1.Provider_PROVIDER_UNKNOWN {
		c.warn("provider: unknown provider code %s", quote(ev.ProviderCode))
	}

	var status string
	switch ev.Type {
	case eventsv1.EventType_EVENT_TYPE_MESSAGE:
		ev.Payload = &eventsv1.Event_Message{Message: c.message(top)}
	case eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE:
		su := c.statusUpdate(top["event_data"])
		status = su.GetStatusCode()
		ev.Payload = &eventsv1.Event_StatusUpdate{StatusUpdate: su}
	}
	if err := checkFields(ev); err != nil {
		return nil, err
	}
	ev.Id = refEventID(ev.MessageId, ev.EventCode, status, body)
	// The bounds on warnings and on the event's size apply after the
	// conversion, to whichever converter made it.
	bounded := &converter{}
	for _, w := range c.warnings {
		bounded.warn("%s", w)
	}
	bounded.bound(ev, len(body))
	return ev, nil
}

// refNestsWithin reports whether the JSON text raw (valid or not) opens at
// most max objects and arrays inside one another, outside strings.
func refNestsWithin(raw []byte, max int) bool {
	depth, inString, escaped := 0, false, false
	for _, r := range string(raw) {
		switch {
		case inString && escaped:
			escaped = false
		case inString && r == '\\':
			escaped = true
		case inString:
			inString = r != '"'
		case r == '"':
			inString = true
		case r == '{' || r == '[':
			depth++
			if depth > max {
				return false
			}
		case r == '}' || r == ']':
			depth--
		}
	}
	return true
}

// refCheckKeys finds the first duplicate key, or value nested too deep, of
// body, valid JSON, with the standard decoder's tokens.
func refCheckKeys(body []byte) error {
	type container struct {
		object    bool
		expectKey bool
		keys      map[string]bool
		lastKey   string
		index     int
	}
	var stack []*container
	// pathOf is the path of the value being read in stack[n-1].
	pathOf := func(n int) string {
		var p string
		for _, c := range stack[:n] {
			if c.object {
				if p != "" {
					p += "."
				}
				p += c.lastKey
			} else {
				p += fmt.Sprintf("[%d]", c.index)
			}
		}
		return p
	}
	path := func() string { return pathOf(len(stack) - 1) }
	// valueDone records that a value of the innermost container ended.
	valueDone := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].expectKey = true
			} else {
				stack[n-1].index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF: the body was valid JSON
		}
		switch tok := tok.(type) {
		case json.Delim:
			if (tok == '{' || tok == '[') && len(stack) == MaxDepth {
				return &DepthError{Path: shortPath(pathOf(len(stack)))}
			}
			switch tok {
			case '{':
				stack = append(stack, &container{object: true, expectKey: true, keys: map[string]bool{}})
			case '[':
				stack = append(stack, &container{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if top := stack[len(stack)-1]; top.expectKey {
				if top.keys[tok] {
					return &DuplicateKeyError{Key: tok, Path: path()}
				}
				top.keys[tok] = true
				top.lastKey, top.expectKey = tok, false
				continue
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

// refEventID returns the deterministic id of a webhook delivery, so that a retry
// has the id of the original: "ev_" and the first 32 hex digits of the SHA-256
// of message_id, event and status joined by NUL bytes (status is "" except for
// status updates). A body without a message id is identified by its own
// SHA-256 instead.
func refEventID(messageID, event, status string, body []byte) string {
	var sum [sha256.Size]byte
	if messageID == "" {
		sum = sha256.Sum256(body)
	} else {
		h := sha256.New()
		h.Write([]byte(messageID))
		h.Write([]byte{0})
		h.Write([]byte(event))
		h.Write([]byte{0})
		h.Write([]byte(status))
		h.Sum(sum[:0])
	}
	return "ev_" + hex.EncodeToString(sum[:16])
}

// refProviderFromChannel returns the prefix of a channel key ("twlo" of
// "twlo_16311113333"), or "" when it has none.
func refProviderFromChannel(key string) string {
	prefix, _, ok := strings.Cut(key, "_")
	if !ok {
		return ""
	}
	return prefix
}

func refProviderOf(code string) eventsv1.Provider {
	if code == "" {
		return eventsv1.Provider_PROVIDER_UNSPECIFIED
	}
	if p, ok := sociocs.Providers.ByCode(strings.ToLower(code)); ok {
		return p
	}
	return eventsv1.Provider_PROVIDER_UNKNOWN
}

// refConverter maps JSON values to typed fields, collecting a warning for every
// value it cannot map.
type refConverter struct{ warnings []string }

func (c *refConverter) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// refKind returns the JSON refKind of a raw value: 'n' (null or absent), '"', '{',
// '[', 't'/'f' (booleans), or '0' (number).
func refKind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 || raw[0] == 'n' {
		return 'n'
	}
	switch raw[0] {
	case '"', '{', '[', 't', 'f':
		return raw[0]
	}
	return '0'
}

func refKindName(k byte) string {
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

func refArticle(v string) string {
	if v != "" && strings.ContainsRune("aeiou", rune(v[0])) {
		return "an"
	}
	return "a"
}

// str reads a string. A number or boolean is kept in its JSON spelling, with
// a warning; null or absent is ("", false).
func (c *refConverter) str(path string, raw json.RawMessage) (string, bool) {
	switch k := refKind(raw); k {
	case 'n':
		return "", false
	case '"':
		if s, ok := refPlainString(raw); ok {
			return s, true
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			c.warn("%s: %v", path, err)
			return "", false
		}
		return s, true
	case '0', 't', 'f':
		c.warn("%s: expected a string, got %s; kept as text", path, refKindName(k))
		return string(bytes.TrimSpace(raw)), true
	default:
		c.warn("%s: expected a string, got %s", path, refKindName(k))
		return "", false
	}
}

// strList reads an array of strings; null or absent is empty. A single
// string is taken as a list of one, with a warning; other elements are
// skipped with a warning.
func (c *refConverter) strList(path string, raw json.RawMessage) []string {
	switch k := refKind(raw); k {
	case 'n':
		return nil
	case '"':
		s, _ := c.str(path, raw)
		c.warn("%s: expected an array of strings, got a string; taken as a list of one", path)
		return []string{s}
	case '[':
		if refIsEmptyArray(raw) {
			return nil
		}
		// The common case, all strings, in one decode. A null item would
		// decode silently as "", so an array with a null takes the slow path
		// that reports it.
		var out []string
		if !bytes.Contains(raw, []byte("null")) {
			if err := json.Unmarshal(raw, &out); err == nil {
				return out
			}
		}
		// Not all strings: take the strings, report the rest.
		out = nil
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			c.warn("%s: %v", path, err)
			return nil
		}
		for i, item := range items {
			if refKind(item) != '"' {
				c.warn("%s[%d]: expected a string, got %s; skipped", path, i, refKindName(refKind(item)))
				continue
			}
			s, _ := c.str(fmt.Sprintf("%s[%d]", path, i), item)
			out = append(out, s)
		}
		return out
	default:
		c.warn("%s: expected an array of strings, got %s", path, refKindName(k))
		return nil
	}
}

// refPlainString returns the value of a JSON string that needs no unescaping
// (the common case), without the decoder's allocations. raw comes from a
// document already validated as JSON.
func refPlainString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}

func refIsEmptyArray(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) >= 2 && raw[0] == '[' && len(bytes.TrimSpace(raw[1:len(raw)-1])) == 0
}

// integer reads a JSON integer; a string holding one is accepted with a
// warning.
func (c *refConverter) integer(path string, raw json.RawMessage) (int64, bool) {
	switch k := refKind(raw); k {
	case 'n':
		return 0, false
	case '0':
		n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
		if err != nil {
			c.warn("%s: %s is not a 64-bit integer", path, clip(string(bytes.TrimSpace(raw))))
			return 0, false
		}
		return n, true
	case '"':
		s, _ := c.str(path, raw)
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			c.warn("%s: expected an integer, got the string %s", path, quote(s))
			return 0, false
		}
		c.warn("%s: expected an integer, got it as a string", path)
		return n, true
	default:
		c.warn("%s: expected an integer, got %s", path, refKindName(k))
		return 0, false
	}
}

// boolean reads Sociocs's 0/1 flags; true/false are accepted too.
func (c *refConverter) boolean(path string, raw json.RawMessage) bool {
	switch k := refKind(raw); k {
	case 'n':
		return false
	case 't', 'f':
		return k == 't'
	}
	n, ok := c.integer(path, raw)
	if ok && n != 0 && n != 1 {
		c.warn("%s: expected 0 or 1, got %d; taken as true", path, n)
	}
	return ok && n != 0
}

// timestamp keeps t if a Timestamp can hold it.
func (c *refConverter) timestamp(path string, t time.Time) *timestamppb.Timestamp {
	if t.Year() < 1 || t.Year() > 9999 {
		c.warn("%s: %s is outside the years 1 to 9999; kept only in raw_json", path, t.UTC().Format(time.RFC3339Nano))
		return nil
	}
	return timestamppb.New(t)
}

func (c *refConverter) millis(path string, raw json.RawMessage) *timestamppb.Timestamp {
	ms, ok := c.integer(path, raw)
	if !ok {
		return nil
	}
	return c.timestamp(path, time.UnixMilli(ms))
}

func (c *refConverter) isoTime(path string, raw json.RawMessage) *timestamppb.Timestamp {
	s, ok := c.str(path, raw)
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

// object reads a JSON object field by field; anything else is reported and
// yields nil.
func (c *refConverter) object(path string, raw json.RawMessage) map[string]json.RawMessage {
	switch k := refKind(raw); k {
	case 'n':
		return nil
	case '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			c.warn("%s: %v", path, err)
			return nil
		}
		return m
	default:
		c.warn("%s: expected an object, got %s", path, refKindName(k))
		return nil
	}
}

func (c *refConverter) structOf(path string, raw []byte) *structpb.Struct {
	if !refNestsWithin(raw, MaxTypedDepth) {
		c.warn("%s: nests deeper than %d levels; kept only in raw_json", path, MaxTypedDepth)
		return nil
	}
	s := new(structpb.Struct)
	if err := protojson.Unmarshal(raw, s); err != nil {
		c.warn("%s: not a JSON object: %v", path, err)
		return nil
	}
	return s
}

func (c *refConverter) message(top map[string]json.RawMessage) *eventsv1.MessageEvent {
	m := &eventsv1.MessageEvent{}
	m.DirectionCode, _ = c.str("direction", top["direction"])
	if d, ok := directions[m.DirectionCode]; ok {
		m.Direction = d
	} else if m.DirectionCode != "" {
		m.Direction = eventsv1.Direction_DIRECTION_UNKNOWN
		c.warn("direction: unknown direction %s", quote(m.DirectionCode))
	}
	m.FromNumber, _ = c.str("from", top["from"])
	m.ToNumber, _ = c.str("to", top["to"])
	if name, ok := c.str("name", top["name"]); ok {
		m.Name = proto.String(name)
	}
	m.Text, _ = c.str("text", top["text"])
	m.FileUrls = c.strList("file_urls", top["file_urls"])
	m.ImageUrls = c.strList("image_urls", top["image_urls"])
	m.VideoUrls = c.strList("video_urls", top["video_urls"])
	m.Timestamp = c.millis("timestamp", top["timestamp"])
	if obj := c.object("contact", top["contact"]); obj != nil {
		m.Contact = c.contact(obj)
	}
	return m
}

func (c *refConverter) contact(obj map[string]json.RawMessage) *eventsv1.Contact {
	ct := &eventsv1.Contact{}
	ct.Id, _ = c.integer("contact.id", obj["id"])
	ct.Name, _ = c.str("contact.name", obj["name"])
	ct.PhoneNumber, _ = c.str("contact.phone_number", obj["phone_number"])
	ct.PhoneNumberCc, _ = c.str("contact.phone_number_cc", obj["phone_number_cc"])
	switch raw := obj["extra_fields"]; refKind(raw) {
	case '{':
		// Sociocs documents a string holding JSON; an object sent as such
		// is just as clear.
		c.warn("contact.extra_fields: expected a string holding JSON, got an object; used as is")
		ct.ExtraFields = c.structOf("contact.extra_fields", raw)
		ct.ExtraFieldsJson = strings.ToValidUTF8(string(bytes.TrimSpace(raw)), "\uFFFD")
	default:
		ct.ExtraFieldsJson, _ = c.str("contact.extra_fields", raw)
		if strings.TrimSpace(ct.ExtraFieldsJson) != "" {
			ct.ExtraFields = c.structOf("contact.extra_fields", []byte(ct.ExtraFieldsJson))
		}
	}
	ct.CreatedAt = c.isoTime("contact.created_at", obj["created_at"])
	ct.UpdatedAt = c.isoTime("contact.updated_at", obj["updated_at"])
	ct.IsBlocked = c.boolean("contact.is_blocked", obj["is_blocked"])
	return ct
}

func (c *refConverter) statusUpdate(raw json.RawMessage) *eventsv1.StatusUpdateEvent {
	su := &eventsv1.StatusUpdateEvent{}
	data := c.object("event_data", raw)
	if data == nil {
		if refKind(raw) == 'n' {
			c.warn("event_data: missing; the status is unknown")
		}
		return su
	}
	su.StatusCode, _ = c.str("event_data.status", data["status"])
	if st, ok := sociocs.Statuses.ByCode(su.StatusCode); ok {
		su.Status = st
	} else if su.StatusCode != "" {
		su.Status = eventsv1.Status_STATUS_UNKNOWN
		c.warn("event_data.status: unknown status %s", quote(su.StatusCode))
	} else {
		c.warn("event_data.status: missing")
	}
	if errRaw := data["error"]; refKind(errRaw) != 'n' {
		su.Error = c.statusError(errRaw)
	}
	switch raw := data["provider_err_obj"]; refKind(raw) {
	case 'n':
	case '{':
		su.ProviderError = c.structOf("event_data.provider_err_obj", raw)
	default:
		c.warn("event_data.provider_err_obj: expected an object, got %s; see raw_json", refKindName(refKind(raw)))
	}
	return su
}

// statusError keeps the whole error value and lifts code and message out of
// it: from the object itself, from the first object of an array, or a plain
// string as the message.
func (c *refConverter) statusError(raw json.RawMessage) *eventsv1.StatusError {
	e := &eventsv1.StatusError{Details: new(structpb.Value)}
	if !refNestsWithin(raw, MaxTypedDepth) {
		c.warn("event_data.error: nests deeper than %d levels; kept only in raw_json", MaxTypedDepth)
		e.Details = nil
	} else if err := protojson.Unmarshal(raw, e.Details); err != nil {
		c.warn("event_data.error: %v", err)
		e.Details = nil
	}
	path := "event_data.error"
	switch refKind(raw) {
	case '"':
		e.Message, _ = c.str(path, raw)
		return e
	case '[':
		var items []json.RawMessage
		json.Unmarshal(raw, &items)
		raw = nil
		for i, item := range items {
			if refKind(item) == '{' {
				raw, path = item, fmt.Sprintf("event_data.error[%d]", i)
				break
			}
		}
		if raw == nil {
			c.warn("event_data.error: an array without an object; see details")
			return e
		}
	case '{':
	default:
		c.warn("event_data.error: expected an object, got %s; see details", refKindName(refKind(raw)))
		return e
	}
	obj := c.object(path, raw)
	switch k := refKind(obj["code"]); k {
	case '0':
		e.Code = string(bytes.TrimSpace(obj["code"]))
	case 'n':
	default:
		e.Code, _ = c.str(path+".code", obj["code"])
	}
	e.Message, _ = c.str(path+".message", obj["message"])
	return e
}

// refSyntaxError locates err in body.
func refSyntaxError(body []byte, err *json.SyntaxError) *SyntaxError {
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

// FuzzConvertMatchesReference checks that Convert and the reference
// converter agree on every body: the same event (warnings included), or the
// same error.
func FuzzConvertMatchesReference(f *testing.F) {
	for _, name := range []string{"message_twlo.json", "status_sent.json", "status_delivered.json", "status_failed.json", "invalid_seed_example.json"} {
		f.Add(readSample(f, name), "")
	}
	for _, body := range []string{
		` { "message_id" : "m" , "event" : "message" , "text" : "a\"b\\c\u00e9\ud83d\ude00\ud800" , "from" : 1 , "to" : true } `,
		`{"message_id":"m","message_id":"n","event":"message","\u0074ext":"escaped key","te\u0078t":"x"}`,
		`{"message_id":"m","event":"message","file_urls":["a","b\n",null],"image_urls":["https://x/null"],"video_urls":[[],{},1,"v"]}`,
		`{"message_id":"m","event":"message","contact":{"extra_fields":{"a":[1,-0,2.5e3,{"b":null}],"c":"\u00e9","a":2}}}`,
		`{"message_id":"m","event":"message","contact":{"extra_fields":"{\"a\":1,\"a\":2}","is_blocked":2,"id":1e3}}`,
		`{"message_id":"m","event":"message","contact":{"extra_fields":"{\"big\":1e400, \"s\": \"\\u00e9\"}"}}`,
		`{"message_id":"m","event":"message","contact":{},"timestamp":-1.5}`,
		`{"message_id":"m","event":"status_update","event_data":{"status":"failed","error":[1,"x",{"code":12,"message":"m"}],"provider_err_obj":{"k":[true,false,null]}}}`,
		`{"message_id":"m","event":"status_update","event_data":{"status":"failed","error":{"code":"E","message":7}}}`,
		`{"message_id":"m","event":"status_update","event_data":{"status":"failed","error":[]}}`,
		`{"message_id":"m","event":"status_update","event_data":[]}`,
		`{"event":"message","name":"\xff\xfe","channel_key":"k\xff_1"}`,
		`{"event":"message","contact":{"name":"a","id":1,"name":"b"}}`,
		`{"event_data":{"error":[{"code":1},{"code":1,"code":2}]}}`,
		`{"a":[1,[{"x":0},{"b":{"c":1,"d":{},"c":2}}]],"c":3}`,
		`{"contact":{"x":{"y":1}},"event":"message","contact":{}}`,
		`{"name":{"name":{"name":1}},"x":[{"name":1},{"name":2}]}`,
		"{\"\xff\":1,\"\xfe\":2}", `{"\ufffd":1,"\ufffe":2,"\ufffd":3}`, `{"":1,"":2}`,
		`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k18":18,"k19":19,"k20":20,"k21":21,"k22":22,"k23":23,"k24":24,"k25":25,"k3":0}`,
		`{}`, `[]`, `null`, `"x"`, `1`, `{"a":}`, ``, `{"a":1}x`,
	} {
		f.Add([]byte(body), "twlo_1")
	}
	f.Fuzz(func(t *testing.T, body []byte, channel string) {
		want, wantErr := refConvert(body, channel, received)
		got, err := Convert(body, channel, received)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("Convert error %v, reference %v", err, wantErr)
		}
		if err != nil {
			if err.Error() != wantErr.Error() || errors.Is(err, ErrNotJSON) != errors.Is(wantErr, ErrNotJSON) || errors.Is(err, ErrNotObject) != errors.Is(wantErr, ErrNotObject) {
				t.Fatalf("Convert error %v, reference %v", err, wantErr)
			}
			return
		}
		if !proto.Equal(got, want) {
			t.Fatalf("Convert and the reference differ:\n got %v\nwant %v", got, want)
		}
	})
}

// FuzzNewStruct checks that newStruct, when it builds a Struct, builds the
// one protojson would.
func FuzzNewStruct(f *testing.F) {
	for _, s := range []string{`{"city": "Ahmedabad", "country": "India"}`, ` {"a":[1,-0,2.5e3,{"b":null}],"c":"\u00e9"} `,
		`{"a":1,"a":2}`, `{"a":1e400}`, `{"a":"\xff"}`, `{"a":[[[[]]]],"b":{"c":{}}}`, `[1]`, `{`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := newStruct(raw)
		if !ok {
			return
		}
		want := new(structpb.Struct)
		if err := protojson.Unmarshal(raw, want); err != nil {
			t.Fatalf("newStruct built %v; protojson: %v", got, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("newStruct built %v; protojson %v", got, want)
		}
	})
}
