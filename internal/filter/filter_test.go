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

func TestSubjectRoundTrip(t *testing.T) {
	keys := append(allKeys,
		Key{Type: msg, Provider: eventsv1.Provider_PROVIDER_UNKNOWN, Channel: "weird.key with *>"},
		Key{Type: msg, Provider: twlo, Channel: "~tilde"},
		Key{Type: msg, Provider: twlo, Channel: "emoji 📱"},
		Key{Type: 99, Provider: 77, Status: 55, Channel: strings.Repeat("k", maxPlainToken+1)},
	)
	for _, k := range keys {
		for _, id := range []string{"ev_0123abcd", "", "odd.id"} {
			subj := k.Subject("pfx", id)
			if strings.Count(subj, ".") != numTokens-1 {
				t.Fatalf("subject %q has the wrong number of tokens", subj)
			}
			if strings.ContainsAny(subj, " *>") {
				t.Fatalf("subject %q has unsafe characters", subj)
			}
			got, gotID, err := ParseSubject("pfx", subj)
			if err != nil || got != k || gotID != id {
				t.Fatalf("ParseSubject(%q) = %+v, %q, %v; want %+v, %q", subj, got, gotID, err, k, id)
			}
		}
	}
	for _, bad := range []string{"", "pfx", "other.message.twlo.a.none.x", "pfx.message.twlo.a", "pfx.bogus.twlo.a.none.x", "pfx.message.twlo.~!!.none.x"} {
		if _, _, err := ParseSubject("pfx", bad); !errors.Is(err, ErrBadSubject) {
			t.Errorf("ParseSubject(%q) err = %v, want ErrBadSubject", bad, err)
		}
	}
}

// TestSubjectsSelectWhatMatchSelects checks the server-side patterns against
// Match over every key, so that the two can never disagree.
func TestSubjectsSelectWhatMatchSelects(t *testing.T) {
	filters := [][4]any{
		{nil, nil, nil, nil},
		{[]string{"twlo_1"}, nil, nil, nil},
		{[]string{"twlo_1", "twlowa_2", "twlo_1"}, []P{twlo}, nil, nil},
		{nil, nil, []T{msg}, []S{sent}},
		{nil, nil, []T{upd}, []S{sent, failed}},
		{nil, nil, nil, []S{failed}},
		{nil, []P{twlo, twlowa}, []T{msg, upd, unk}, nil},
	}
	for i, ff := range filters {
		chs, _ := ff[0].([]string)
		ps, _ := ff[1].([]P)
		ts, _ := ff[2].([]T)
		ss, _ := ff[3].([]S)
		f, err := New(chs, ps, ts, ss)
		if err != nil {
			t.Fatal(err)
		}
		patterns := f.Subjects("pfx")
		for _, k := range allKeys {
			subj := k.Subject("pfx", "ev_1")
			selected := false
			for _, p := range patterns {
				selected = selected || subjectMatches(p, subj)
			}
			if selected != f.Match(&k) {
				t.Errorf("filter %d: key %+v selected by %v = %v, Match = %v", i, k, patterns, selected, f.Match(&k))
			}
		}
	}
}

func TestSubjectsFallsBackWhenLarge(t *testing.T) {
	chs := make([]string, 100)
	for i := range chs {
		chs[i] = "c" + strings.Repeat("x", i)
	}
	f, err := New(chs, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Subjects("pfx"); len(got) != 1 || got[0] != "pfx.>" {
		t.Fatalf("Subjects = %v, want [pfx.>]", got)
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

// subjectMatches is NATS subject matching for patterns with '*' and a
// trailing '>'.
func subjectMatches(pattern, subject string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, p := range pt {
		if p == ">" {
			return len(st) > i
		}
		if i >= len(st) || (p != "*" && p != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}

func FuzzParseSubject(f *testing.F) {
	for _, k := range allKeys {
		f.Add(k.Subject("pfx", "ev_1"))
	}
	f.Add("pfx.message.twlo.~.none.~")
	f.Fuzz(func(t *testing.T, subj string) {
		k, id, err := ParseSubject("pfx", subj)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to a subject that parses the same.
		k2, id2, err := ParseSubject("pfx", k.Subject("pfx", id))
		if err != nil || k2 != k || id2 != id {
			t.Fatalf("%q: round trip gave %+v %q %v, want %+v %q", subj, k2, id2, err, k, id)
		}
	})
}
