package eventlog

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// MaxNesting bounds how deep messages nest in an event handed to readers
// (the Event itself is 1). Protobuf runtimes refuse messages nested deeper
// than their recursion limit: Go's is 10,000, Python's 100, and a response
// wraps the event in a few more. Events this version stores nest at most 53
// deep (the webhook adapter bounds typed copies of JSON to 16 levels); an
// event stored by an earlier version, or another writer, may nest deeper,
// and would break every reader that reaches it.
const MaxNesting = 64

// decodeLimit is the recursion limit of the decoding that trims an event
// nested too deep: above any event a webhook could make (Go's JSON scanner
// refuses more than 10,000 levels, three messages each).
const decodeLimit = 1 << 16

// Readable returns data, a stored Event, as every reader can decode it:
// data itself when its messages nest at most MaxNesting deep, which costs
// one walk over its message fields; otherwise the event re-encoded without
// the typed copies of JSON (google.protobuf.Struct, Value, ListValue fields)
// that nest too deep, each named in a conversion warning (the JSON is still
// in raw_json), and trimmed reports true. An error means data is not an
// Event at all.
func Readable(data []byte) (out []byte, trimmed bool, err error) {
	if nestsWithin(data, eventShape, MaxNesting) {
		return data, false, nil
	}
	ev := new(eventsv1.Event)
	if err := (proto.UnmarshalOptions{RecursionLimit: decodeLimit}).Unmarshal(data, ev); err != nil {
		return nil, false, fmt.Errorf("record: a stored event nested too deep for its readers does not decode: %w", err)
	}
	var warnings []string
	trim(ev.ProtoReflect(), 1, "", &warnings)
	ev.ConversionWarnings = append(ev.ConversionWarnings, warnings...)
	out, err = proto.Marshal(ev)
	if err != nil {
		return nil, false, fmt.Errorf("record: %w", err)
	}
	if !nestsWithin(out, eventShape, MaxNesting) {
		return nil, false, errors.New("record: a stored event nests too deep for its readers, past its typed copies of JSON")
	}
	return out, true, nil
}

var (
	eventShape = shapeOf((&eventsv1.Event{}).ProtoReflect().Descriptor(), map[protoreflect.FullName]*shape{})
	jsonCopies = map[protoreflect.FullName]bool{
		(&structpb.Struct{}).ProtoReflect().Descriptor().FullName():    true,
		(&structpb.Value{}).ProtoReflect().Descriptor().FullName():     true,
		(&structpb.ListValue{}).ProtoReflect().Descriptor().FullName(): true,
	}
)

// nestsWithin reports whether the messages of b, a message of shape sh, nest
// at most max deep (b's own message being 1). It reads the wire format
// only: message fields are entered, everything else is skipped.
func nestsWithin(b []byte, sh *shape, max int) bool {
	if max < 1 {
		return false
	}
	children := sh.children
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return true // malformed: not this function's to judge
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return true
			}
			if int(num) < len(children) && children[num] != nil && !nestsWithin(v, children[num], max-1) {
				return false
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return true
		}
		b = b[m:]
	}
	return true
}

// shape is a message type as nestsWithin walks it: by field number, the
// shape of each message field (nil for the others). Looking descriptors up
// by number for every field of every event read would cost more than the
// walk itself.
type shape struct{ children []*shape }

// shapeOf builds the shape of md once per message type (types refer to one
// another, and to themselves: Struct, Value, ListValue).
func shapeOf(md protoreflect.MessageDescriptor, built map[protoreflect.FullName]*shape) *shape {
	if sh, ok := built[md.FullName()]; ok {
		return sh
	}
	sh := &shape{}
	built[md.FullName()] = sh
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() != protoreflect.MessageKind {
			continue
		}
		n := int(fd.Number())
		if n >= len(sh.children) {
			sh.children = append(sh.children, make([]*shape, n+1-len(sh.children))...)
		}
		sh.children[n] = shapeOf(fd.Message(), built)
	}
	return sh
}

// trim clears, in m at nesting depth, every typed copy of JSON that nests
// deeper than MaxNesting allows, noting each in warnings by its path.
func trim(m protoreflect.Message, depth int, path string, warnings *[]string) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
			return true // events hold their typed copies in singular fields
		}
		p := string(fd.Name())
		if path != "" {
			p = path + "." + p
		}
		child := v.Message()
		if !jsonCopies[fd.Message().FullName()] {
			trim(child, depth+1, p, warnings)
			return true
		}
		if b, err := proto.Marshal(child.Interface()); err != nil || !nestsWithin(b, shapeOf(fd.Message(), map[protoreflect.FullName]*shape{}), MaxNesting-depth) {
			m.Clear(fd)
			*warnings = append(*warnings, fmt.Sprintf("%s: nested too deep for every reader (stored by an earlier version); removed when read, kept in raw_json", p))
		}
		return true
	})
}
