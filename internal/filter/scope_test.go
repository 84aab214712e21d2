package filter

import (
	"errors"
	"strings"
	"testing"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

const gswa = eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP

func TestNewScopeRejects(t *testing.T) {
	tests := []struct {
		name      string
		channels  []string
		providers []eventsv1.Provider
		want      string
	}{
		{"empty pattern", []string{"a", ""}, nil, "channel_keys[1]: empty pattern"},
		{"inner star", []string{"tw*lo"}, nil, "channel_keys[0]: \"tw*lo\": '*' is allowed only at the end"},
		{"bad pattern after a star", []string{"*", "a*b"}, nil, "channel_keys[1]"},
		{"not UTF-8", []string{"\xff"}, nil, "channel_keys[0]: not valid UTF-8"},
		{"unspecified provider", nil, []eventsv1.Provider{0}, "providers[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewScope(tt.channels, tt.providers, nil)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestScopePermits(t *testing.T) {
	s, err := NewScope([]string{"twlo_1", "gswa_9*"}, []eventsv1.Provider{twlo, gswa}, []eventsv1.EventType{msg})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  Key
		want bool
	}{
		{Key{Type: msg, Provider: twlo, Channel: "twlo_1"}, true},
		{Key{Type: msg, Provider: gswa, Channel: "gswa_91"}, true},
		{Key{Type: msg, Provider: gswa, Channel: "gswa_9"}, true},
		{Key{Type: msg, Provider: twlo, Channel: "twlo_12"}, false},
		{Key{Type: msg, Provider: gswa, Channel: "gswa_8"}, false},
		{Key{Type: upd, Provider: twlo, Channel: "twlo_1"}, false},
		{Key{Type: msg, Provider: eventsv1.Provider_PROVIDER_TELNYX_SMS, Channel: "twlo_1"}, false},
	}
	for _, tt := range tests {
		if got := s.Permits(&tt.key); got != tt.want {
			t.Errorf("Permits(%+v) = %v, want %v", tt.key, got, tt.want)
		}
	}
	all, err := NewScope([]string{"x", "*"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !all.Unrestricted() {
		t.Error(`a scope with "*" is not unrestricted`)
	}
}

func TestWithin(t *testing.T) {
	scope, err := NewScope([]string{"twlo_1", "gswa_9*"}, []eventsv1.Provider{twlo, gswa}, []eventsv1.EventType{msg})
	if err != nil {
		t.Fatal(err)
	}
	exact, err := NewScope([]string{"twlo_2", "twlo_1"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		scope     *Scope
		channels  []string
		providers []eventsv1.Provider
		types     []eventsv1.EventType
		statuses  []eventsv1.Status
		forbidden string // substring of the error; "" for success
		match     []Key  // must match
		noMatch   []Key  // must not match
	}{
		{name: "empty filter narrowed", scope: &scope,
			match: []Key{{Type: msg, Provider: twlo, Channel: "twlo_1"}, {Type: msg, Provider: gswa, Channel: "gswa_95"}},
			noMatch: []Key{
				{Type: upd, Provider: twlo, Channel: "twlo_1"},
				{Type: msg, Provider: twlo, Channel: "twlo_2"},
				{Type: msg, Provider: eventsv1.Provider_PROVIDER_TELNYX_SMS, Channel: "gswa_95"},
			}},
		{name: "allowed channel by prefix", scope: &scope, channels: []string{"gswa_91"},
			match: []Key{{Type: msg, Provider: gswa, Channel: "gswa_91"}}, noMatch: []Key{{Type: msg, Provider: gswa, Channel: "gswa_92"}}},
		{name: "forbidden channel", scope: &scope, channels: []string{"twlo_1", "twlo_2"}, forbidden: `channel_keys[1]: channel "twlo_2"`},
		{name: "forbidden provider", scope: &scope, providers: []eventsv1.Provider{gswa, eventsv1.Provider_PROVIDER_TELNYX_SMS}, forbidden: "providers: PROVIDER_TELNYX_SMS"},
		{name: "forbidden type", scope: &scope, types: []eventsv1.EventType{upd}, forbidden: "types: EVENT_TYPE_STATUS_UPDATE"},
		{name: "statuses without status upds", scope: &scope, statuses: []eventsv1.Status{eventsv1.Status_STATUS_FAILED}, forbidden: "statuses"},
		{name: "exact channels become the channel list", scope: &exact,
			match: []Key{{Channel: "twlo_2"}}, noMatch: []Key{{Channel: "twlo_3"}}},
		{name: "nil scope", scope: nil, match: []Key{{Channel: "anything"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.channels, tt.providers, tt.types, tt.statuses)
			if err != nil {
				t.Fatal(err)
			}
			g, err := f.Within(tt.scope)
			if tt.forbidden != "" {
				if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), tt.forbidden) {
					t.Fatalf("err = %v, want ErrForbidden containing %q", err, tt.forbidden)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tt.match {
				if !g.Match(&k) {
					t.Errorf("narrowed filter does not match %+v", k)
				}
			}
			for _, k := range tt.noMatch {
				if g.Match(&k) {
					t.Errorf("narrowed filter matches %+v", k)
				}
			}
		})
	}
	// Narrowing to exact keys lists them, so the hub can index by channel.
	f, _ := New(nil, nil, nil, nil)
	g, _ := f.Within(&exact)
	if got := g.ChannelKeys(); len(got) != 2 || got[0] != "twlo_1" || got[1] != "twlo_2" {
		t.Errorf("ChannelKeys = %q, want [twlo_1 twlo_2]", got)
	}
}

func TestNarrowedMatchDoesNotAllocate(t *testing.T) {
	scope, _ := NewScope([]string{"gswa_9*", "twlo_1"}, nil, nil)
	f, _ := New(nil, nil, nil, nil)
	g, _ := f.Within(&scope)
	k := Key{Type: msg, Provider: gswa, Channel: "gswa_955"}
	if n := testing.AllocsPerRun(100, func() { g.Match(&k) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}
