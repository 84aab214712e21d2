package stream

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/eventlog"
)

// Message is one StreamEventsResponse on its way to subscribers, encoded
// once in protobuf binary form and, on first use, once in each other wire
// Format; the encodings are shared read-only by every stream that sends it.
// An event's Message is built once by the hub for all local subscribers; a
// heartbeat or a gap is built for one stream. A Message is safe for
// concurrent use.
type Message struct {
	kind   Kind
	cursor uint64
	// stored is when the log stored the event (zero for other kinds): the
	// start of the wait that Observer.DeliveryWait reports.
	stored time.Time
	// pb is the protobuf encoding as the one buffer the gRPC codec hands to
	// the transport, built once rather than for every send.
	pb mem.BufferSlice
	// encoded caches the encoding in each registered Format; mu makes
	// concurrent first uses wait for one encoding rather than each make one.
	encoded [maxFormats]atomic.Pointer[[]byte]
	mu      sync.Mutex
	// prepared is an event framed for gRPC once, on the first stream that
	// sends it, and sent as is on every other (grpc.PreparedMsg saves each
	// send the framing and its allocations).
	prepared atomic.Pointer[grpc.PreparedMsg]
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

// Response decodes m. Each call decodes anew: use it to build a Format's
// encoding, which Encode then keeps.
func (m *Message) Response() (*eventsv1.StreamEventsResponse, error) {
	resp := new(eventsv1.StreamEventsResponse)
	if err := proto.Unmarshal(m.pb[0].ReadOnlyData(), resp); err != nil {
		return nil, fmt.Errorf("stream: decode message at %d: %w", m.cursor, err)
	}
	return resp, nil
}

// maxFormats bounds the Formats a process may register: each Message holds
// a slot per Format.
const maxFormats = 4

// Format is a wire format of stream messages other than gRPC's protobuf
// (REST's newline-delimited JSON, Server-Sent Events). The encoding of a
// Message in a Format is computed at most once, however many streams send
// it, and shared.
type Format struct {
	slot   int
	encode func(*Message) ([]byte, error)
}

var formats atomic.Int32

// NewFormat registers a wire format whose encoding of a Message is
// encode(m). encode must be deterministic and safe for concurrent use; its
// result must not be modified afterwards. NewFormat panics past maxFormats
// formats, a programming error: call it once per format, at start-up.
func NewFormat(encode func(*Message) ([]byte, error)) *Format {
	n := int(formats.Add(1)) - 1
	if n >= maxFormats {
		panic("stream: too many formats")
	}
	return &Format{slot: n, encode: encode}
}

// Encode returns m in format f, encoding it on first use: at most once per
// Message and Format, however many streams send it (concurrent first uses
// wait for the one encoding). A failed encoding is not kept.
func (m *Message) Encode(f *Format) ([]byte, error) {
	if b := m.encoded[f.slot].Load(); b != nil {
		return *b, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.encoded[f.slot].Load(); b != nil {
		return *b, nil
	}
	b, err := f.encode(m)
	if err != nil {
		return nil, err
	}
	m.encoded[f.slot].Store(&b)
	return b, nil
}

func newMessage(kind Kind, cursor uint64, stored time.Time, b []byte) *Message {
	// A SliceBuffer does not return its bytes to a pool when freed, so the
	// shared bytes are never recycled under another subscriber.
	return &Message{kind: kind, cursor: cursor, stored: stored, pb: mem.BufferSlice{mem.SliceBuffer(b)}}
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
