package webhook

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

var received = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustValue(t *testing.T, v any) *structpb.Value {
	t.Helper()
	s, err := structpb.NewValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const sampleMessageID = "MM2aa0db1b276eaeaa5d730d5aa34167f2"

// TestSamples converts the four documented samples and checks every field.
func TestSamples(t *testing.T) {
	const failText = "You have attempted to send a message to a number that is either a landline number or is an invalid number. (code: 21614)"
	statusEvent := func(status eventsv1.Status, code string) *eventsv1.Event {
		return &eventsv1.Event{
			Id:           EventID(sampleMessageID, "status_update", code, nil),
			ReceivedAt:   timestamppb.New(received),
			Type:         eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE,
			EventCode:    "status_update",
			Provider:     eventsv1.Provider_PROVIDER_TWILIO_WHATSAPP,
			ProviderCode: "twlowa",
			ChannelKey:   "twlowa_15550001111",
			MessageId:    sampleMessageID,
			Payload: &eventsv1.Event_StatusUpdate{StatusUpdate: &eventsv1.StatusUpdateEvent{
				Status: status, StatusCode: code,
			}},
		}
	}
	failed := statusEvent(eventsv1.Status_STATUS_FAILED, "failed")
	failed.GetStatusUpdate().Error = &eventsv1.StatusError{
		Code:    "21614",
		Message: failText,
		Details: mustValue(t, map[string]any{"code": 21614, "message": failText}),
	}
	failed.GetStatusUpdate().ProviderError = mustStruct(t, map[string]any{
		"status": 400, "code": 21614, "moreInfo": "https://www.twilio.com/docs/errors/21614", "error": true,
	})

	tests := []struct {
		file, channel string
		want          *eventsv1.Event
	}{
		{"message_twlo.json", "", &eventsv1.Event{
			Id:           EventID(sampleMessageID, "message", "", nil),
			ReceivedAt:   timestamppb.New(received),
			Type:         eventsv1.EventType_EVENT_TYPE_MESSAGE,
			EventCode:    "message",
			Provider:     eventsv1.Provider_PROVIDER_TWILIO_SMS,
			ProviderCode: "twlo",
			ChannelKey:   "twlo_16311113333",
			MessageId:    sampleMessageID,
			Payload: &eventsv1.Event_Message{Message: &eventsv1.MessageEvent{
				Direction:     eventsv1.Direction_DIRECTION_INCOMING,
				DirectionCode: "incoming",
				FromNumber:    "16311112222",
				ToNumber:      "16311113333",
				Text:          "Hello World!",
				Contact: &eventsv1.Contact{
					Id:              123,
					Name:            "Emily Johnson",
					PhoneNumber:     "16311112222",
					PhoneNumberCc:   "",
					ExtraFields:     mustStruct(t, map[string]any{"city": "Ahmedabad", "country": "India"}),
					ExtraFieldsJson: `{"city": "Ahmedabad", "country": "India"}`,
					CreatedAt:       timestamppb.New(time.Date(2025, 7, 11, 11, 29, 46, 0, time.UTC)),
					UpdatedAt:       timestamppb.New(time.Date(2025, 8, 4, 12, 29, 21, 0, time.UTC)),
					IsBlocked:       false,
				},
				Timestamp: timestamppb.New(time.UnixMilli(1754455905897)),
			}},
		}},
		{"status_sent.json", "twlowa_15550001111", statusEvent(eventsv1.Status_STATUS_SENT, "sent")},
		{"status_delivered.json", "twlowa_15550001111", statusEvent(eventsv1.Status_STATUS_DELIVERED, "delivered")},
		{"status_failed.json", "twlowa_15550001111", failed},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := readSample(t, tt.file)
			got, err := Convert(body, tt.channel, received)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.RawJson = body
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventIDs(t *testing.T) {
	sent, _ := Convert(readSample(t, "status_sent.json"), "", received)
	sentAgain, _ := Convert(readSample(t, "status_sent.json"), "twlo_1", received.Add(time.Hour))
	delivered, _ := Convert(readSample(t, "status_delivered.json"), "", received)
	message, _ := Convert(readSample(t, "message_twlo.json"), "", received)
	if sent.GetId() != sentAgain.GetId() {
		t.Errorf("a retried webhook got another id: %s, %s", sent.GetId(), sentAgain.GetId())
	}
	ids := map[string]bool{sent.GetId(): true, delivered.GetId(): true, message.GetId(): true}
	if len(ids) != 3 {
		t.Errorf("sent, delivered and message share ids: %v", ids)
	}
	for id := range ids {
		if len(id) != 35 || !strings.HasPrefix(id, "ev_") {
			t.Errorf("id %q is not ev_ and 32 hex digits", id)
		}
	}
	noID1, _ := Convert([]byte(`{"event":"ping","n":1}`), "", received)
	noID2, _ := Convert([]byte(`{"event":"ping","n":2}`), "", received)
	if noID1.GetId() == noID2.GetId() {
		t.Error("bodies without message_id share an id")
	}
}

// TestSurprises covers inputs that must be accepted, with what mapped and
// the warnings that name what did not.
func TestSurprises(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		channel  string
		check    func(*eventsv1.Event) bool
		warnings []string // substrings, one per expected warning, in order
	}{
		{"missing arrays and contact", `{"message_id":"m","event":"message","provider":"twlo","channel_key":"twlo_1","direction":"incoming","from":"1","to":"2","text":"hi","timestamp":1}`, "",
			func(e *eventsv1.Event) bool {
				m := e.GetMessage()
				return m.GetFileUrls() == nil && m.GetContact() == nil && m.Name == nil && m.GetTimestamp().AsTime().Equal(time.UnixMilli(1))
			}, nil},
		{"nulls everywhere", `{"message_id":null,"event":"message","provider":null,"channel_key":null,"direction":null,"from":null,"to":null,"name":null,"text":null,"file_urls":null,"image_urls":null,"video_urls":null,"contact":null,"timestamp":null}`, "",
			func(e *eventsv1.Event) bool {
				m := e.GetMessage()
				return m != nil && m.Name == nil && m.GetContact() == nil && m.GetTimestamp() == nil && e.GetProvider() == eventsv1.Provider_PROVIDER_UNSPECIFIED
			}, nil},
		{"name present but empty", `{"message_id":"m","event":"message","name":""}`, "",
			func(e *eventsv1.Event) bool { return e.GetMessage().Name != nil && e.GetMessage().GetName() == "" }, nil},
		{"name present", `{"message_id":"m","event":"message","name":"Ana"}`, "",
			func(e *eventsv1.Event) bool { return e.GetMessage().GetName() == "Ana" }, nil},
		{"extra_fields not JSON", `{"message_id":"m","event":"message","contact":{"id":1,"extra_fields":"{city: Pune"}}`, "",
			func(e *eventsv1.Event) bool {
				c := e.GetMessage().GetContact()
				return c.GetExtraFields() == nil && c.GetExtraFieldsJson() == "{city: Pune" && c.GetId() == 1
			}, []string{"contact.extra_fields: not a JSON object"}},
		{"extra_fields an array", `{"message_id":"m","event":"message","contact":{"extra_fields":"[1,2]"}}`, "",
			func(e *eventsv1.Event) bool { return e.GetMessage().GetContact().GetExtraFields() == nil },
			[]string{"contact.extra_fields: not a JSON object"}},
		{"extra_fields empty", `{"message_id":"m","event":"message","contact":{"extra_fields":""}}`, "",
			func(e *eventsv1.Event) bool { return e.GetMessage().GetContact().GetExtraFields() == nil }, nil},
		{"contact an array", `{"message_id":"m","event":"message","contact":[1]}`, "",
			func(e *eventsv1.Event) bool { return e.GetMessage().GetContact() == nil }, []string{"contact: expected an object, got an array"}},
		{"contact times and flags", `{"message_id":"m","event":"message","contact":{"created_at":"yesterday","is_blocked":1,"id":"77"}}`, "",
			func(e *eventsv1.Event) bool {
				c := e.GetMessage().GetContact()
				return c.GetCreatedAt() == nil && c.GetIsBlocked() && c.GetId() == 77
			}, []string{"contact.id: expected an integer, got it as a string", `contact.created_at: "yesterday" is not an ISO-8601 time`}},
		{"error as an array", `{"message_id":"m","event":"status_update","event_data":{"status":"failed","error":[{"code":"E1","message":"bad"},{"code":2}]}}`, "",
			func(e *eventsv1.Event) bool {
				er := e.GetStatusUpdate().GetError()
				return er.GetCode() == "E1" && er.GetMessage() == "bad" && len(er.GetDetails().GetListValue().GetValues()) == 2
			}, nil},
		{"error as a string", `{"message_id":"m","event":"status_update","event_data":{"status":"failed","error":"boom"}}`, "",
			func(e *eventsv1.Event) bool {
				er := e.GetStatusUpdate().GetError()
				return er.GetMessage() == "boom" && er.GetDetails().GetStringValue() == "boom"
			}, nil},
		{"provider_err_obj not an object", `{"message_id":"m","event":"status_update","event_data":{"status":"failed","provider_err_obj":"x"}}`, "",
			func(e *eventsv1.Event) bool { return e.GetStatusUpdate().GetProviderError() == nil },
			[]string{"event_data.provider_err_obj: expected an object, got a string"}},
		{"unknown event type", `{"message_id":"m","event":"contact_created","data":{"x":1}}`, "twlo_1",
			func(e *eventsv1.Event) bool {
				return e.GetType() == eventsv1.EventType_EVENT_TYPE_UNKNOWN && e.GetEventCode() == "contact_created" && e.GetPayload() == nil && e.GetChannelKey() == "twlo_1"
			}, []string{`event: unknown event type "contact_created"`}},
		{"missing event", `{"message_id":"m"}`, "",
			func(e *eventsv1.Event) bool { return e.GetType() == eventsv1.EventType_EVENT_TYPE_UNKNOWN }, []string{"event: missing"}},
		{"unknown provider", `{"message_id":"m","event":"message","provider":"xyz","channel_key":"xyz_1"}`, "",
			func(e *eventsv1.Event) bool {
				return e.GetProvider() == eventsv1.Provider_PROVIDER_UNKNOWN && e.GetProviderCode() == "xyz"
			}, []string{`provider: unknown provider code "xyz"`}},
		{"telnyx", `{"message_id":"m","event":"message","provider":"tlnx","channel_key":"tlnx_1"}`, "",
			func(e *eventsv1.Event) bool { return e.GetProvider() == eventsv1.Provider_PROVIDER_TELNYX_SMS }, nil},
		{"gupshup status from URL", `{"message_id":"m","event":"status_update","event_data":{"status":"enqueued"}}`, "gswa_919800000000",
			func(e *eventsv1.Event) bool {
				return e.GetProvider() == eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP && e.GetChannelKey() == "gswa_919800000000" &&
					e.GetStatusUpdate().GetStatus() == eventsv1.Status_STATUS_ENQUEUED
			}, nil},
		{"status nobody listed", `{"message_id":"m","event":"status_update","event_data":{"status":"paused"}}`, "",
			func(e *eventsv1.Event) bool {
				return e.GetStatusUpdate().GetStatus() == eventsv1.Status_STATUS_UNKNOWN && e.GetStatusUpdate().GetStatusCode() == "paused"
			}, []string{`event_data.status: unknown status "paused"`}},
		{"event_data missing", `{"message_id":"m","event":"status_update"}`, "",
			func(e *eventsv1.Event) bool {
				return e.GetStatusUpdate().GetStatus() == eventsv1.Status_STATUS_UNSPECIFIED
			},
			[]string{"event_data: missing"}},
		{"unknown extra fields", `{"message_id":"m","event":"message","brand_new":{"deep":[1,2,3]},"text":"hi"}`, "",
			func(e *eventsv1.Event) bool { return e.GetMessage().GetText() == "hi" }, nil},
		{"unicode and emoji", `{"message_id":"m","event":"message","text":"नमस्ते 👋🏽 \u00e9\ud83d\ude00 ok","name":"Zoë"}`, "",
			func(e *eventsv1.Event) bool {
				return e.GetMessage().GetText() == "नमस्ते 👋🏽 é😀 ok" && e.GetMessage().GetName() == "Zoë"
			}, nil},
		{"numbers where strings belong", `{"message_id":"m","event":"message","text":12.5,"from":16311112222,"timestamp":"1754455905897"}`, "",
			func(e *eventsv1.Event) bool {
				m := e.GetMessage()
				return m.GetText() == "12.5" && m.GetFromNumber() == "16311112222" && m.GetTimestamp().AsTime().Equal(time.UnixMilli(1754455905897))
			}, []string{"from: expected a string, got a number; kept as text", "text: expected a string, got a number", "timestamp: expected an integer, got it as a string"}},
		{"file_urls a string, bad element", `{"message_id":"m","event":"message","file_urls":"https://x/a","image_urls":["https://x/b",7]}`, "",
			func(e *eventsv1.Event) bool {
				m := e.GetMessage()
				return len(m.GetFileUrls()) == 1 && len(m.GetImageUrls()) == 1 && m.GetImageUrls()[0] == "https://x/b"
			}, []string{"file_urls: expected an array of strings, got a string", "image_urls[1]: expected a string, got a number; skipped"}},
		{"null inside a URL list", `{"message_id":"m","event":"message","video_urls":["https://x/null",null]}`, "",
			func(e *eventsv1.Event) bool {
				v := e.GetMessage().GetVideoUrls()
				return len(v) == 1 && v[0] == "https://x/null"
			}, []string{"video_urls[1]: expected a string, got null; skipped"}},
		{"body and URL disagree on the channel", `{"message_id":"m","event":"message","provider":"twlo","channel_key":"twlo_1"}`, "twlo_2",
			func(e *eventsv1.Event) bool { return e.GetChannelKey() == "twlo_1" },
			[]string{`channel_key: the body says "twlo_1" but the webhook URL says "twlo_2"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Convert([]byte(tt.body), tt.channel, received)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(ev) {
				t.Errorf("unexpected event: %v", ev)
			}
			if string(ev.GetRawJson()) != tt.body {
				t.Errorf("raw_json is not the body")
			}
			got := ev.GetConversionWarnings()
			if len(got) != len(tt.warnings) {
				t.Fatalf("warnings %q, want %d matching %q", got, len(tt.warnings), tt.warnings)
			}
			for _, w := range tt.warnings {
				found := false
				for _, g := range got {
					found = found || strings.Contains(g, w)
				}
				if !found {
					t.Errorf("no warning contains %q in %q", w, got)
				}
			}
		})
	}
}

func TestConvertRejects(t *testing.T) {
	tests := []struct {
		name, body string
		is         error
		msg        string
	}{
		{"seed example", string(readSample(t, "invalid_seed_example.json")), ErrNotJSON, "line 23, column 3 (byte 609)"},
		{"truncated", `{"a":`, ErrNotJSON, "line 1"},
		{"array", `[1,2]`, ErrNotObject, "an array"},
		{"string", `"hi"`, ErrNotObject, "a string"},
		{"null", `null`, ErrNotObject, "null"},
		{"number", `42`, ErrNotObject, "a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Convert([]byte(tt.body), "", received)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.is, tt.msg)
			}
		})
	}
}

// TestConvertRejectsDuplicateKeys: a key twice in one object, at any depth,
// is refused, naming the key and the object's path; the same key in
// different objects is not a duplicate.
func TestConvertRejectsDuplicateKeys(t *testing.T) {
	many := `{`
	for i := range 100 {
		many += fmt.Sprintf(`"k%d":%d,`, i, i)
	}
	tests := []struct {
		name, body string
		key, path  string // path "" for the top-level object; key "" when accepted
	}{
		{"top level", `{"message_id":"m","text":"a","event":"message","text":"b"}`, "text", ""},
		{"in contact", `{"event":"message","contact":{"name":"a","id":1,"name":"b"}}`, "name", "contact"},
		{"escaped spelling", `{"text":"a","te\u0078t":"b"}`, "text", ""},
		{"in an array element", `{"event_data":{"error":[{"code":1},{"code":1,"code":2}]}}`, "code", "event_data.error[1]"},
		{"deep", `{"a":[1,[{"x":0},{"b":{"c":1,"d":{},"c":2}}]]}`, "c", "a[1][1].b"},
		{"after a nested object", `{"contact":{"x":{"y":1}},"event":"message","contact":{}}`, "contact", ""},
		{"many keys", many + `"k99":0}`, "k99", ""},
		{"lone surrogates", `{"\ud800":1,"\udfff":2}`, "\uFFFD", ""},
		{"empty key", `{"":1,"a":2,"":3}`, "", ""},
		{"siblings", `{"contact":{"name":"a"},"event_data":{"name":"a"},"x":[{"name":1},{"name":2}]}`, "-", ""},
		{"parent and child", `{"name":{"name":{"name":1}}}`, "-", ""},
		{"many distinct keys", many + `"last":0}`, "-", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Convert([]byte(tt.body), "", received)
			if tt.key == "-" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var dup *DuplicateKeyError
			if !errors.As(err, &dup) || !errors.Is(err, ErrDuplicateKey) || dup.Key != tt.key || dup.Path != tt.path {
				t.Fatalf("err = %#v (%v), want a duplicate %q in %q", err, err, tt.key, tt.path)
			}
			where := "the top-level object"
			if tt.path != "" {
				where = tt.path
			}
			if want := fmt.Sprintf("duplicate key %q in %s", tt.key, where); !strings.Contains(err.Error(), want) {
				t.Errorf("message %q does not say %q", err, want)
			}
		})
	}
}

func FuzzConvert(f *testing.F) {
	for _, name := range []string{"message_twlo.json", "status_sent.json", "status_delivered.json", "status_failed.json", "invalid_seed_example.json"} {
		f.Add(readSample(f, name), "")
	}
	f.Add([]byte(`{"message_id":"m","event":"status_update","event_data":{"status":"failed","error":[{"code":"E1"}]}}`), "twlo_1")
	f.Add([]byte(`{"event":"message","contact":{"extra_fields":"{\"a\":[1,{}]}","is_blocked":"1","id":1e3}}`), "")
	f.Add([]byte(`{"text":"\ud800"}`), "x")
	f.Add([]byte(`{"message_id":"m","event":"message","text":"a","te\u0078t":"b"}`), "")
	f.Add([]byte(`{"event":"status_update","event_data":{"error":[{"code":1},{"code":1,"code":2}]}}`), "twlo_1")
	f.Add([]byte(`{"a":[1,[{"x":0},{"b":{"c":1,"d":{},"c":2}}]],"c":3}`), "")
	f.Add([]byte(`{"event":"message","timestamp":253402300800000,"contact":{"created_at":"0000-01-01T00:00:00Z"}}`), "")
	f.Add([]byte(`{"event":"status_update","event_data":{"provider_err_obj":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":1}}}}}}}}}}}}}}}}}}}`), "")
	f.Add([]byte(`{"event":"message","file_urls":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23]}`), "")
	f.Add([]byte("{\"event\":\"message\",\"message_id\":\"a\x01b\",\"channel_key\":\"a/b\"}"), "")
	f.Fuzz(func(t *testing.T, body []byte, channel string) {
		ev, err := Convert(body, channel, received)
		if err != nil {
			for _, kind := range []error{ErrNotUTF8, ErrNotJSON, ErrNotObject, ErrTooDeep, ErrDuplicateKey, ErrInvalidField} {
				if errors.Is(err, kind) {
					if len(err.Error()) > 1024 {
						t.Fatalf("an error of %d bytes: %.200s…", len(err.Error()), err)
					}
					return
				}
			}
			t.Fatalf("unexpected error kind: %v", err)
		}
		checkBounded(t, body, ev)
	})
}

// checkBounded checks what Convert promises of every event it makes: raw_json
// is the body, and the event is within its bounds and readable by every
// reader (binary and JSON, nested within what Python's runtime takes).
func checkBounded(t *testing.T, body []byte, ev *eventsv1.Event) {
	t.Helper()
	if string(ev.GetRawJson()) != string(body) {
		t.Fatal("raw_json differs from the body")
	}
	if ev.GetId() == "" {
		t.Fatal("no id")
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatalf("event does not marshal: %v", err)
	}
	if len(b) > MaxEventBytes(len(body)) {
		t.Fatalf("a body of %d bytes made an event of %d, over %d", len(body), len(b), MaxEventBytes(len(body)))
	}
	back := new(eventsv1.Event)
	if err := proto.Unmarshal(b, back); err != nil || !proto.Equal(back, ev) {
		t.Fatalf("event does not read back: %v", err)
	}
	if _, err := protojson.Marshal(ev); err != nil {
		t.Fatalf("event does not marshal to JSON: %v", err)
	}
	if w := ev.GetConversionWarnings(); len(w) > MaxWarnings+4 {
		t.Fatalf("%d warnings", len(w))
	}
	for _, w := range ev.GetConversionWarnings() {
		if len(w) > maxWarningLen {
			t.Fatalf("a warning of %d bytes: %.100s…", len(w), w)
		}
	}
	if d := nesting(ev.ProtoReflect()); d > maxEventNesting {
		t.Fatalf("the event nests %d messages deep, over %d", d, maxEventNesting)
	}
}

// maxEventNesting is the deepest nesting of messages an event may have: a
// typed copy of MaxTypedDepth levels of objects is three messages a level
// under the four around it (Event, StatusUpdateEvent, StatusError, Value).
// Python's runtime refuses 100, so responses can wrap it in several more.
const maxEventNesting = 4 + 3*MaxTypedDepth + 1

// nesting returns how deep messages nest in m, m itself being 1.
func nesting(m protoreflect.Message) int {
	deepest := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		var d int
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				return true
			}
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				d = max(d, 1+nesting(mv.Message())) // the entry, then the value
				return true
			})
		case fd.Kind() != protoreflect.MessageKind:
			return true
		case fd.IsList():
			for i := range v.List().Len() {
				d = max(d, nesting(v.List().Get(i).Message()))
			}
		default:
			d = nesting(v.Message())
		}
		deepest = max(deepest, d)
		return true
	})
	return 1 + deepest
}

func BenchmarkConvert(b *testing.B) {
	body := readSample(b, "message_twlo.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Convert(body, "", received); err != nil {
			b.Fatal(err)
		}
	}
}

// nested returns a body whose event_data.provider_err_obj nests depth
// objects (depth 0: the number itself).
func nested(depth int) string {
	return `{"message_id":"p","event":"status_update","event_data":{"status":"failed","provider_err_obj":` +
		strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth) + `}}`
}

// TestConvertRefusesWhatBreaksItsBounds: a body that breaks one of the
// bounds every reader relies on is refused, naming what and where.
func TestConvertRefusesWhatBreaksItsBounds(t *testing.T) {
	deepArray := `{"event":"message","x":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`
	tests := []struct {
		name, body, channel string
		is                  error
		msg                 string
	}{
		// The body: acknowledged, it broke every reader after it.
		{"4,000 levels", nested(4000), "twlo_x", ErrTooDeep, "deeper than 64 levels, at event_data.provider_err_obj.a.a."},
		{"65 levels", nested(MaxDepth - 1), "", ErrTooDeep, "deeper than 64 levels"},
		{"64 levels is not refused", nested(MaxDepth - 2), "", nil, ""},
		{"an array 65 deep", deepArray, "", ErrTooDeep, "at x" + strings.Repeat("[0]", MaxDepth-2)},
		{"not UTF-8", "{\"text\":\"caf\xe9\"}", "", ErrNotUTF8, "byte 12 (0xe9)"},
		{"not UTF-8 in a key", "{\"\xff\":1}", "", ErrNotUTF8, "byte 2 (0xff)"},
		// The body: its key closed the connection to NATS for good.
		{"channel key of 3,105 bytes", `{"message_id":"m","event":"message","provider":"twlo","channel_key":"twlo_` + strings.Repeat("x", 3100) + `"}`, "",
			ErrInvalidField, "invalid channel_key: 3105 bytes, longer than 256"},
		{"channel key with a space", `{"event":"message","channel_key":"twlo 1"}`, "", ErrInvalidField, "invalid channel_key: byte 4"},
		{"channel key with a slash", `{"event":"message","channel_key":"twlo/1"}`, "", ErrInvalidField, "invalid channel_key"},
		{"channel key not ASCII", `{"event":"message","channel_key":"twlo_é"}`, "", ErrInvalidField, "invalid channel_key"},
		{"message id of 257 bytes", `{"event":"message","message_id":"` + strings.Repeat("m", 257) + `"}`, "", ErrInvalidField, "invalid message_id: 257 bytes"},
		{"message id with a newline", `{"event":"message","message_id":"a\nb"}`, "", ErrInvalidField, "invalid message_id: byte 1 is a control character"},
		{"duplicate key of 1 MB", `{"` + strings.Repeat("k", 1<<20) + `":1,"` + strings.Repeat("k", 1<<20) + `":2}`, "", ErrDuplicateKey, `"kkkk`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Convert([]byte(tt.body), tt.channel, received)
			if tt.is == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %.300v, want %v containing %q", err, tt.is, tt.msg)
			}
			if len(err.Error()) > 1024 {
				t.Fatalf("the error is %d bytes long", len(err.Error()))
			}
		})
	}
}

// TestConvertKeepsWithinBounds: bodies at the bounds are accepted; what the
// event cannot hold for every reader is kept only in raw_json, with a
// warning, and the event stays within MaxEventBytes of its body.
func TestConvertKeepsWithinBounds(t *testing.T) {
	var bigArray, manyBad, deepExtra strings.Builder
	bigArray.WriteString(`{"message_id":"e","event":"status_update","event_data":{"status":"failed","error":[`)
	manyBad.WriteString(`{"message_id":"f","event":"message","file_urls":[`)
	for i := range 200_000 {
		if i > 0 {
			bigArray.WriteByte(',')
			manyBad.WriteByte(',')
		}
		bigArray.WriteByte('0')
		manyBad.WriteByte('1')
	}
	bigArray.WriteString(`]}}`)
	manyBad.WriteString(`]}`)
	deepExtra.WriteString(`{"message_id":"x","event":"message","contact":{"extra_fields":"`)
	deepExtra.WriteString(strings.Repeat(`{\"a\":`, 5000) + "1" + strings.Repeat("}", 5000))
	deepExtra.WriteString(`"}}`)

	tests := []struct {
		name, body string
		warning    string // a warning the event must have; "" for none
		check      func(*eventsv1.Event) bool
	}{
		{"64 levels", `{"event":"message","x":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`, "", nil},
		{"a typed copy of 16 levels", nested(MaxTypedDepth), "", func(ev *eventsv1.Event) bool { return ev.GetStatusUpdate().GetProviderError() != nil }},
		{"a typed copy of 17 levels", nested(MaxTypedDepth + 1), "event_data.provider_err_obj: nests deeper than 16 levels; kept only in raw_json",
			func(ev *eventsv1.Event) bool { return ev.GetStatusUpdate().GetProviderError() == nil }},
		{"extra_fields holding JSON 5,000 deep", deepExtra.String(), "contact.extra_fields: nests deeper than 16 levels",
			func(ev *eventsv1.Event) bool { return ev.GetMessage().GetContact().GetExtraFields() == nil }},
		{"200,000 faults", manyBad.String(), "… and 199980 more conversion warnings, left out", nil},
		{"an error of 200,000 numbers", bigArray.String(), "event_data.error: its typed copy",
			func(ev *eventsv1.Event) bool { return ev.GetStatusUpdate().GetError().GetDetails() == nil }},
		{"a time past 9999", `{"event":"message","timestamp":253402300800000}`, "timestamp: 10000-01-01T00:00:00Z is outside the years 1 to 9999",
			func(ev *eventsv1.Event) bool { return ev.GetMessage().GetTimestamp() == nil }},
		{"a time before year 1", `{"event":"message","contact":{"created_at":"0000-12-31T00:00:00Z"}}`, "contact.created_at: 0000-12-31T00:00:00Z is outside",
			func(ev *eventsv1.Event) bool { return ev.GetMessage().GetContact().GetCreatedAt() == nil }},
		{"a long unknown status", `{"event":"status_update","event_data":{"status":"` + strings.Repeat("s", 10000) + `"}}`,
			`event_data.status: unknown status "` + strings.Repeat("s", 64) + `"…`, nil},
		{"a key of 256 bytes", `{"event":"message","channel_key":"` + strings.Repeat("k", 256) + `"}`, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Convert([]byte(tt.body), "", received)
			if err != nil {
				t.Fatalf("refused: %.300v", err)
			}
			checkBounded(t, []byte(tt.body), ev)
			if tt.warning != "" && !strings.Contains(strings.Join(ev.GetConversionWarnings(), "\n"), tt.warning) {
				t.Errorf("warnings %q lack %q", ev.GetConversionWarnings(), tt.warning)
			}
			if tt.check != nil && !tt.check(ev) {
				t.Errorf("the event is not as it should be: %.500v", ev)
			}
		})
	}
}
