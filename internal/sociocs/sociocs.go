// Package sociocs is the one table of the strings Sociocs uses for providers,
// event types and statuses, and of the enum values they map to. The table is
// declared in the schema, as the (sociocs.events.v1.code) option of each enum
// value that Sociocs names, and read from the descriptors once, at start-up;
// the webhook converter, the event log's subject layout, the auth file and the
// metrics all read it here, so adding a provider or a status is a change to
// the schema alone.
//
// It imports only the generated code and the protobuf runtime; everything
// here is immutable and safe for concurrent use.
package sociocs

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// The tables of the three enums that carry Sociocs codes.
var (
	// Providers: twlo, twlowa, gswa, tlnx.
	Providers = newTable[eventsv1.Provider](eventsv1.Provider(0).Descriptor())
	// EventTypes: message, status_update.
	EventTypes = newTable[eventsv1.EventType](eventsv1.EventType(0).Descriptor())
	// Statuses: sent, delivered, read, failed and the provider-native ones.
	Statuses = newTable[eventsv1.Status](eventsv1.Status(0).Descriptor())
)

// Entry is one enum value that Sociocs names.
type Entry[E ~int32] struct {
	// Code is what Sociocs sends ("twlo").
	Code string
	// Value is the enum value (PROVIDER_TWILIO_SMS).
	Value E
	// Name is the enum value's name in the schema ("PROVIDER_TWILIO_SMS").
	Name string
}

// Table maps Sociocs codes to enum values and back, for one enum.
type Table[E ~int32] struct {
	entries []Entry[E]
	byCode  map[string]E
	byValue map[E]string
}

func newTable[E ~int32](d protoreflect.EnumDescriptor) *Table[E] {
	t := &Table[E]{byCode: map[string]E{}, byValue: map[E]string{}}
	values := d.Values()
	for i := range values.Len() {
		v := values.Get(i)
		code, _ := proto.GetExtension(v.Options(), eventsv1.E_Code).(string)
		if code == "" {
			continue
		}
		if other, dup := t.byCode[code]; dup {
			// A schema defect that tests catch before any build ships.
			panic(fmt.Sprintf("sociocs: code %q is given to %s and %s", code, values.ByNumber(protoreflect.EnumNumber(other)).Name(), v.Name()))
		}
		e := E(v.Number())
		t.entries = append(t.entries, Entry[E]{Code: code, Value: e, Name: string(v.Name())})
		t.byCode[code] = e
		t.byValue[e] = code
	}
	return t
}

// ByCode returns the enum value Sociocs's code stands for. Codes are
// matched exactly (they are lower case).
func (t *Table[E]) ByCode(code string) (E, bool) {
	e, ok := t.byCode[code]
	return e, ok
}

// Code returns the Sociocs code of e, or "" when Sociocs has none for it
// (UNSPECIFIED, UNKNOWN, or a value this build does not know).
func (t *Table[E]) Code(e E) string { return t.byValue[e] }

// Entries returns the values that have a code, in the schema's order. The
// caller may modify the returned slice.
func (t *Table[E]) Entries() []Entry[E] { return slices.Clone(t.entries) }

// Codes returns the codes, in the schema's order.
func (t *Table[E]) Codes() []string {
	codes := make([]string, len(t.entries))
	for i, e := range t.entries {
		codes[i] = e.Code
	}
	return codes
}
