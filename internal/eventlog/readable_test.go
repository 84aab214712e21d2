package eventlog

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// deepStruct returns a Struct of depth objects nested in one another.
func deepStruct(t testing.TB, depth int) *structpb.Struct {
	t.Helper()
	s := new(structpb.Struct)
	js := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
	if err := (protojson.UnmarshalOptions{RecursionLimit: 1 << 16}).Unmarshal([]byte(js), s); err != nil {
		t.Fatal(err)
	}
	return s
}

func sample(t testing.TB, depth int) *eventsv1.Event {
	return &eventsv1.Event{
		Id: "ev_1", MessageId: "m", RawJson: []byte(`{"message_id":"m"}`), ConversionWarnings: []string{"earlier"},
		Payload: &eventsv1.Event_StatusUpdate{StatusUpdate: &eventsv1.StatusUpdateEvent{
			StatusCode: "failed", ProviderError: deepStruct(t, depth),
			Error: &eventsv1.StatusError{Code: "30003", Details: structpb.NewStructValue(deepStruct(t, 2))},
		}},
	}
}

// TestReadableTrimsEventsNestedTooDeep: an event stored by an earlier
// version with a typed copy nested 4,000 levels deep (which Go's runtime
// refuses, Python's already past 33) is handed out without that copy, and
// with the rest intact.
func TestReadableTrimsEventsNestedTooDeep(t *testing.T) {
	data, err := proto.MarshalOptions{}.Marshal(sample(t, 4000))
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(data, new(eventsv1.Event)); err == nil {
		t.Fatal("the runtime decodes the deep event: the test shows nothing")
	}
	out, trimmed, err := Readable(data)
	if err != nil || !trimmed {
		t.Fatalf("Readable = trimmed %v, %v", trimmed, err)
	}
	ev := new(eventsv1.Event)
	if err := proto.Unmarshal(out, ev); err != nil {
		t.Fatalf("the trimmed event does not decode: %v", err)
	}
	if !nestsWithin(out, eventShape, MaxNesting) {
		t.Fatal("the trimmed event nests too deep")
	}
	su := ev.GetStatusUpdate()
	if su.GetProviderError() != nil || su.GetError().GetDetails() == nil || su.GetError().GetCode() != "30003" || ev.GetMessageId() != "m" {
		t.Fatalf("trimmed the wrong parts: %v", ev)
	}
	want := []string{"earlier", "status_update.provider_error: nested too deep for every reader (stored by an earlier version); removed when read, kept in raw_json"}
	if got := ev.GetConversionWarnings(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("warnings %q, want %q", got, want)
	}
}

// TestReadableLeavesBoundedEventsAlone: an event within the bound is handed
// out as stored, not re-encoded.
func TestReadableLeavesBoundedEventsAlone(t *testing.T) {
	for _, depth := range []int{1, 16, (MaxNesting - 3) / 3} {
		data, _ := proto.Marshal(sample(t, depth))
		out, trimmed, err := Readable(data)
		if err != nil || trimmed || &out[0] != &data[0] {
			t.Fatalf("depth %d: trimmed %v, %v", depth, trimmed, err)
		}
	}
	data, _ := proto.Marshal(sample(t, (MaxNesting-3)/3+1))
	if _, trimmed, err := Readable(data); err != nil || !trimmed {
		t.Fatalf("one level more: trimmed %v, %v", trimmed, err)
	}
}

func BenchmarkReadable(b *testing.B) {
	data, _ := proto.Marshal(sample(b, 3))
	for b.Loop() {
		if _, trimmed, err := Readable(data); err != nil || trimmed {
			b.Fatal(trimmed, err)
		}
	}
}
