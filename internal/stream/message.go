package stream

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// Message is one StreamEventsResponse on its way to subscribers, encoded
// once in protobuf binary form and, on first use, once in each Format a
// stream sends it in; the encodings are shared read-only by every stream that
// sends it. An event's Message is built once by the hub for all local
// subscribers; a heartbeat or a gap is built for one stream. A Message is
// safe for concurrent use.
type Message struct {
	kind   Kind
	cursor uint64
	// stored is when the log stored the event (zero for other kinds): the
	// start of the wait that Observer.DeliveryWait reports.
	stored time.Time
	pb     []byte
	// encodings holds m's encoding in each Format it was sent in, newest
	// first; a node is never changed once published, so that readers need
	// no lock. mu makes concurrent first uses of a Format wait for one
	// encoding rather than each make one.
	encodings atomic.Pointer[encoded]
	mu        sync.Mutex
}

// encoded is a Message's encoding in one Format.
type encoded struct {
	format any // the *Format[T]: its identity is the key
	value  any // the T
	next   *encoded
}

// Kind is what a Message carries.
type Kind uint8

// Kinds of Message, one per member of StreamEventsResponse.kind.
const (
	KindEvent Kind = iota + 1
	KindHeartbeat
	KindGap
)

// Kind reports what m carries.
func (m *Message) Kind() Kind { return m.kind }

// Cursor is the resume position once m is delivered: the event's sequence,
// the heartbeat's last sequence, or, for a gap, the sequence just before the
// first one the stream may send.
func (m *Message) Cursor() uint64 { return m.cursor }

// Protobuf returns m in protobuf binary form. The bytes are shared with
// every stream that sends m: the caller must not modify them.
func (m *Message) Protobuf() []byte { return m.pb }

// Response decodes m. Each call decodes anew: use it to build a Format's
// encoding, which the Format then keeps.
func (m *Message) Response() (*eventsv1.StreamEventsResponse, error) {
	resp := new(eventsv1.StreamEventsResponse)
	if err := proto.Unmarshal(m.pb, resp); err != nil {
		return nil, fmt.Errorf("stream: decode message at %d: %w", m.cursor, err)
	}
	return resp, nil
}

// Format is a wire format of stream messages, in which a Message is encoded
// (as a T) at most once, however many streams send it, and shared: REST's
// newline-delimited JSON and Server-Sent Events, gRPC's frames. It belongs to
// whoever sends in it, made along with the Service it serves (the Service
// makes gRPC's in New, the REST gateway its own when it is built); the core
// keeps the encodings, per Message, and never looks inside them. There is no
// registry and no bound on how many Formats there are. A Format's identity
// is its key: make each once per Service, not per stream (each one a Message
// is sent in costs it a little memory, for as long as it is held). A Format
// is safe for concurrent use.
type Format[T any] struct {
	encode func(*Message) (T, error)
}

// NewFormat returns a wire format whose encoding of a Message is encode(m).
// encode must be deterministic and safe for concurrent use; its result is
// shared by every stream that sends m and must not be modified afterwards.
func NewFormat[T any](encode func(*Message) (T, error)) *Format[T] {
	return &Format[T]{encode: encode}
}

// Encode returns m in format f, encoding it on first use: at most once per
// Message and Format, however many streams send it (concurrent first uses
// wait for the one encoding). A failed encoding is not kept.
func (f *Format[T]) Encode(m *Message) (T, error) {
	if v, ok := f.cached(m.encodings.Load()); ok {
		return v, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	head := m.encodings.Load()
	if v, ok := f.cached(head); ok {
		return v, nil
	}
	v, err := f.encode(m)
	if err != nil {
		return v, err
	}
	m.encodings.Store(&encoded{format: f, value: v, next: head})
	return v, nil
}

// cached looks f up in a Message's encodings, from e.
func (f *Format[T]) cached(e *encoded) (T, bool) {
	for ; e != nil; e = e.next {
		if e.format == any(f) {
			return e.value.(T), true
		}
	}
	var zero T
	return zero, false
}

func newMessage(kind Kind, cursor uint64, stored time.Time, b []byte) *Message {
	return &Message{kind: kind, cursor: cursor, stored: stored, pb: b}
}

// Field numbers of StreamEventsResponse and Event used by eventMessage.
const (
	fieldResponseEvent = 1
	fieldResponseEpoch = 4
	fieldEventSequence = 2
)

// eventMessage builds StreamEventsResponse{event: <stored event + sequence>,
// epoch} without decoding the stored event: the stored bytes are an Event
// without a sequence, and protobuf allows a field to follow the others, so
// appending the sequence field yields the complete Event.
func eventMessage(rec *eventlog.Record, epoch string) *Message {
	seqLen := protowire.SizeTag(fieldEventSequence) + protowire.SizeVarint(rec.Sequence)
	evLen := len(rec.Data) + seqLen
	n := protowire.SizeTag(fieldResponseEvent) + protowire.SizeBytes(evLen) +
		protowire.SizeTag(fieldResponseEpoch) + protowire.SizeBytes(len(epoch))
	b := make([]byte, 0, n)
	b = protowire.AppendTag(b, fieldResponseEvent, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(evLen))
	b = append(b, rec.Data...)
	b = protowire.AppendTag(b, fieldEventSequence, protowire.VarintType)
	b = protowire.AppendVarint(b, rec.Sequence)
	b = protowire.AppendTag(b, fieldResponseEpoch, protowire.BytesType)
	b = protowire.AppendString(b, epoch)
	return newMessage(KindEvent, rec.Sequence, rec.Stored, b)
}

// heartbeatMessage says that the stream is alive and that last is a safe
// resume cursor.
func heartbeatMessage(now time.Time, last uint64, epoch string) *Message {
	return controlMessage(KindHeartbeat, last, &eventsv1.StreamEventsResponse{
		Kind:  &eventsv1.StreamEventsResponse_Heartbeat{Heartbeat: &eventsv1.Heartbeat{ServerTime: timestamppb.New(now), LastSequence: last}},
		Epoch: epoch,
	})
}

// gapMessage says what a stream that could not start where it was asked to
// has missed.
func gapMessage(gap *eventsv1.Gap, epoch string) *Message {
	return controlMessage(KindGap, gap.GetFirstSequence()-1, &eventsv1.StreamEventsResponse{
		Kind:  &eventsv1.StreamEventsResponse_Gap{Gap: gap},
		Epoch: epoch,
	})
}

func controlMessage(kind Kind, cursor uint64, resp *eventsv1.StreamEventsResponse) *Message {
	// Marshalling these small messages of known types cannot fail.
	b, _ := proto.Marshal(resp)
	return newMessage(kind, cursor, time.Time{}, b)
}
