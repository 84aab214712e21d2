package filter

import (
	"errors"
	"strings"
	"testing"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

type (
	P = eventsv1.Provider
	T = eventsv1.EventType
	S = eventsv1.Status
)

const (
	twlo   = eventsv1.Provider_PROVIDER_TWILIO_SMS
	twlowa = eventsv1.Provider_PROVIDER_TWILIO_WHATSAPP
	msg    = eventsv1.EventType_EVENT_TYPE_MESSAGE
	upd    = eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE
	unk    = eventsv1.EventType_EVENT_TYPE_UNKNOWN
	sent   = eventsv1.Status_STATUS_SENT
	failed = eventsv1.Status_STATUS_FAILED
)

var (
	keyMsg     = Key{Type: msg, Provider: twlo, Channel: "twlo_1"}
	keySent    = Key{Type: upd, Provider: twlowa, Status: sent, Channel: "twlowa_2"}
	keyFailed  = Key{Type: upd, Provider: twlo, Status: failed, Channel: "twlo_1"}
	keyUnknown = Key{Type: unk, Provider: eventsv1.Provider_PROVIDER_UNSPECIFIED}
	allKeys    = []Key{keyMsg, keySent, keyFailed, keyUnknown}
)

func TestMatch(t *testing.T) {
	many := []string{"a", "b", "c", "d", "e", "f", "g", "h", "twlo_1"} // uses the map
	tests := []struct {
		name     string
		channels []string
		provs    []P
		types    []T
		stats    []S
		want     []Key
	}{
		{name: "empty matches all", want: allKeys},
		{name: "one channel", channels: []string{"twlo_1"}, want: []Key{keyMsg, keyFailed}},
		{name: "channels OR", channels: []string{"twlo_1", "twlowa_2"}, want: []Key{keyMsg, keySent, keyFailed}},
		{name: "many channels", channels: many, want: []Key{keyMsg, keyFailed}},
		{name: "provider", provs: []P{twlowa}, want: []Key{keySent}},
		{name: "type", types: []T{msg, unk}, want: []Key{keyMsg, keyUnknown}},
		{name: "status excludes messages", stats: []S{sent, failed}, want: []Key{keySent, keyFailed}},
		{name: "AND across fields", channels: []string{"twlo_1"}, types: []T{upd}, want: []Key{keyFailed}},
		{name: "AND with nothing in common", provs: []P{twlowa}, stats: []S{failed}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.channels, tt.provs, tt.types, tt.stats)
			if err != nil {
				t.Fatal(err)
			}
			var got []Key
			for _, k := range allKeys {
				if f.Match(&k) {
					got = append(got, k)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("matched %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("matched %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name     string
		channels []string
		provs    []P
		types    []T
		stats    []S
		wantMsg  string
	}{
		{name: "unspecified provider", provs: []P{twlo, 0}, wantMsg: "providers[1]: PROVIDER_UNSPECIFIED is not a value to filter on"},
		{name: "unknown type", types: []T{42}, wantMsg: "types[0]: unknown value 42"},
		{name: "negative status", stats: []S{-1}, wantMsg: "statuses[0]: unknown value -1"},
		{name: "empty channel", channels: []string{"a", ""}, wantMsg: "channel_keys[1]: empty channel key"},
		{name: "long channel", channels: []string{strings.Repeat("x", MaxChannelKeyLen+1)}, wantMsg: "channel_keys[0]: longer than"},
		{name: "bad utf8", channels: []string{"\xff"}, wantMsg: "channel_keys[0]: not valid UTF-8"},
		{name: "too many channels", channels: make([]string, MaxChannelKeys+1), wantMsg: "channel_keys: 1001 keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.channels, tt.provs, tt.types, tt.stats)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want ErrInvalid containing %q", err, tt.wantMsg)
			}
		})
	}
}

func TestAccessors(t *testing.T) {
	f, err := New([]string{"b", "a"}, []P{twlowa, twlo}, nil, []S{failed, sent, sent})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.ChannelKeys(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("ChannelKeys = %v", got)
	}
	if got := f.Providers(); len(got) != 2 || got[0] != twlo || got[1] != twlowa {
		t.Errorf("Providers = %v", got)
	}
	if got := f.Statuses(); len(got) != 2 || got[0] != sent || got[1] != failed {
		t.Errorf("Statuses = %v", got)
	}
	if got := f.Types(); got != nil {
		t.Errorf("Types = %v, want nil (any)", got)
	}
	if !f.ChannelsExact() {
		t.Error("ChannelsExact = false for a filter with exact keys")
	}
	scope, err := NewScope([]string{"twlo_*"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var any Filter
	narrowed, err := any.Within(&scope)
	if err != nil || narrowed.ChannelsExact() || narrowed.ChannelKeys() != nil {
		t.Errorf("narrowed to a prefix: exact %v keys %v (%v)", narrowed.ChannelsExact(), narrowed.ChannelKeys(), err)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	f, err := New([]string{"a", "b", "c", "d", "e", "f", "g", "h", "twlo_1"}, []P{twlo}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := keyMsg
	if n := testing.AllocsPerRun(100, func() { f.Match(&k) }); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}
