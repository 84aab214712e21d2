// Package sociocs is the one table of the strings Sociocs uses for providers,
// event types and statuses, and of the enum values they map to. The table is
// declared in the schema, as the (sociocs.events.v1.code) option of each enum
// value that Sociocs names, and read from the descriptors once, at start-up;
// the webhook converter, the event log's subject layout, the auth file, the
// command line, the REST API's query parameters and the metrics all read it
// here, so adding a provider or a status is a change to the schema alone.
// Table.Parse is the one reader of the names a person types.
//
// It imports only the generated code and the protobuf runtime; everything
// here is immutable and safe for concurrent use.
package sociocs

import (
	"errors"
	"fmt"
	"slices"
	"strings"

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
	// byName has every value but UNSPECIFIED, by its name in upper case
	// with and without prefix ("PROVIDER_TWILIO_SMS", "TWILIO_SMS").
	byName map[string]E
	names  map[E]string
	prefix string // "PROVIDER_"
	// kind ("provider") and want (what Parse accepts) make Parse's error.
	kind, want string
}

func newTable[E ~int32](d protoreflect.EnumDescriptor) *Table[E] {
	values := d.Values()
	t := &Table[E]{byCode: map[string]E{}, byValue: map[E]string{}, byName: map[string]E{}, names: map[E]string{},
		prefix: strings.TrimSuffix(string(values.ByNumber(0).Name()), "UNSPECIFIED"), kind: words(string(d.Name()))}
	var names []string
	for i := range values.Len() {
		v := values.Get(i)
		e := E(v.Number())
		t.names[e] = string(v.Name())
		if e != 0 {
			t.byName[string(v.Name())] = e
			t.byName[strings.TrimPrefix(string(v.Name()), t.prefix)] = e
			names = append(names, string(v.Name()))
		}
		code, _ := proto.GetExtension(v.Options(), eventsv1.E_Code).(string)
		if code == "" {
			continue
		}
		if other, dup := t.byCode[code]; dup {
			// A schema defect that tests catch before any build ships.
			panic(fmt.Sprintf("sociocs: code %q is given to %s and %s", code, values.ByNumber(protoreflect.EnumNumber(other)).Name(), v.Name()))
		}
		t.entries = append(t.entries, Entry[E]{Code: code, Value: e, Name: string(v.Name())})
		t.byCode[code] = e
		t.byValue[e] = code
	}
	for code, e := range t.byCode {
		if other, ok := t.byName[strings.ToUpper(code)]; ok && other != e {
			// Parse could not tell which is meant: a schema defect too.
			panic(fmt.Sprintf("sociocs: code %q of %s is the name of %s", code, t.names[e], t.names[other]))
		}
	}
	t.want = fmt.Sprintf("a Sociocs code (%s) or an enum name (%s), in any case, %s optional",
		strings.Join(t.Codes(), ", "), strings.Join(names, ", "), t.prefix)
	return t
}

// words spells an enum's Go name in lower-case words: "EventType" is
// "event type".
func words(name string) string {
	var b strings.Builder
	for i, r := range name {
		if 'A' <= r && r <= 'Z' {
			if i > 0 {
				b.WriteByte(' ')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ErrUnknownName is what Parse's error wraps.
var ErrUnknownName = errors.New("sociocs: unknown name")

// NameError is Parse's error: Name is none of what Want lists.
type NameError struct {
	Kind string // "provider", "event type", "status"
	Name string // as given
	// Want lists what is accepted: "a Sociocs code (twlo, …) or an enum
	// name (PROVIDER_TWILIO_SMS, …), in any case, PROVIDER_ optional".
	Want string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("sociocs: unknown %s %q: want %s", e.Kind, e.Name, e.Want)
}

func (e *NameError) Unwrap() error { return ErrUnknownName }

// Parse returns the value that s names, as a person may write it: its
// Sociocs code ("twlo"), its enum name ("PROVIDER_TWILIO_SMS"), or that
// name without the enum's prefix ("twilio_sms"), each in any case.
// UNSPECIFIED is no value and is refused; a value without a code
// (PROVIDER_UNKNOWN) is named by its enum name. The error is a *NameError,
// wrapping ErrUnknownName, that lists what is accepted.
func (t *Table[E]) Parse(s string) (E, error) {
	if e, ok := t.byCode[strings.ToLower(s)]; ok {
		return e, nil
	}
	if e, ok := t.byName[strings.ToUpper(s)]; ok {
		return e, nil
	}
	return 0, &NameError{Kind: t.kind, Name: s, Want: t.want}
}

// Name returns the enum name of e ("PROVIDER_TWILIO_SMS"), or "" for a
// value this build does not know.
func (t *Table[E]) Name(e E) string { return t.names[e] }

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
