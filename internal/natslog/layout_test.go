package natslog

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/filter"
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

var allKeys = []filter.Key{
	{Type: msg, Provider: twlo, Channel: "twlo_1"},
	{Type: upd, Provider: twlowa, Status: sent, Channel: "twlowa_2"},
	{Type: upd, Provider: twlo, Status: failed, Channel: "twlo_1"},
	{Type: unk, Provider: eventsv1.Provider_PROVIDER_UNKNOWN, Channel: ""},
	{Type: msg, Provider: eventsv1.Provider_PROVIDER_UNSPECIFIED, Channel: "x.y"},
}

// legacySubject is how events were stored before the id left the subject.
func legacySubject(prefix string, k *filter.Key, id string) string {
	return subject(prefix, k) + "." + encodeToken(id)
}

func TestSubjectRoundTrip(t *testing.T) {
	keys := append(allKeys,
		filter.Key{Type: msg, Provider: eventsv1.Provider_PROVIDER_UNKNOWN, Channel: "weird.key with *>"},
		filter.Key{Type: msg, Provider: twlo, Channel: "~tilde"},
		filter.Key{Type: msg, Provider: twlo, Channel: "emoji 📱"},
		filter.Key{Type: 99, Provider: 77, Status: 55, Channel: strings.Repeat("k", maxPlainToken+1)},
	)
	for _, k := range keys {
		for _, legacy := range []bool{false, true} {
			subj := subject("pfx", &k)
			if legacy {
				subj = legacySubject("pfx", &k, "odd.id")
			}
			if strings.ContainsAny(subj, " *>") {
				t.Fatalf("subject %q has unsafe characters", subj)
			}
			got, gotLegacy, err := parseSubject("pfx", subj)
			if err != nil || got != k || gotLegacy != legacy {
				t.Fatalf("parseSubject(%q) = %+v, %v, %v; want %+v, %v", subj, got, gotLegacy, err, k, legacy)
			}
		}
	}
	for _, bad := range []string{"", "pfx", "other.message.twlo.a.none", "pfx.message.twlo.a", "pfx.bogus.twlo.a.none",
		"pfx.message.twlo.~!!.none", "pfx.message.twlo.a.none.x.y", "pfx.message.twlo.a.none.~!!", "pfx.message.n1x.a.none"} {
		if _, _, err := parseSubject("pfx", bad); !errors.Is(err, ErrBadSubject) {
			t.Errorf("parseSubject(%q) err = %v, want ErrBadSubject", bad, err)
		}
	}
}

// TestTokensAreTheOldLayouts pins the tokens: events stored in the old
// layout are parsed with these tables.
func TestTokensAreTheOldLayouts(t *testing.T) {
	want := map[string]string{
		subject("p", &filter.Key{Type: msg, Provider: twlo}): "p.message.twlo.~.none",
		subject("p", &filter.Key{Type: upd, Provider: eventsv1.Provider_PROVIDER_TELNYX_SMS, Status: eventsv1.Status_STATUS_SENDING_FAILED, Channel: "c"}): "p.status_update.tlnx.c.sending_failed",
		subject("p", &filter.Key{Type: unk, Provider: eventsv1.Provider_PROVIDER_UNKNOWN, Status: eventsv1.Status_STATUS_UNKNOWN, Channel: "c"}):           "p.unknown.unknown.c.unknown",
		subject("p", &filter.Key{Type: upd, Provider: eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP, Status: eventsv1.Status_STATUS_ENQUEUED, Channel: "c"}): "p.status_update.gswa.c.enqueued",
		subject("p", &filter.Key{Provider: twlowa, Channel: "c"}): "p.none.twlowa.c.none",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("subject %q, want %q", got, w)
		}
	}
}

// TestFilterSubjectsSelectWhatMatchSelects checks the server-side patterns
// against Match over every key, in both layouts, so that they never disagree.
func TestFilterSubjectsSelectWhatMatchSelects(t *testing.T) {
	type (
		P = eventsv1.Provider
		T = eventsv1.EventType
		S = eventsv1.Status
	)
	filters := [][4]any{
		{nil, nil, nil, nil},
		{[]string{"twlo_1"}, nil, nil, nil},
		{[]string{"twlo_1", "twlowa_2", "twlo_1"}, []P{twlo}, nil, nil},
		{nil, nil, []T{msg}, []S{sent}},
		{nil, nil, []T{upd}, []S{sent, failed}},
		{nil, nil, nil, []S{failed}},
		{nil, []P{twlo, twlowa}, []T{msg, upd, unk}, nil},
		{[]string{"x.y"}, nil, nil, nil},
	}
	for i, ff := range filters {
		chs, _ := ff[0].([]string)
		ps, _ := ff[1].([]P)
		ts, _ := ff[2].([]T)
		ss, _ := ff[3].([]S)
		f, err := filter.New(chs, ps, ts, ss)
		if err != nil {
			t.Fatal(err)
		}
		for _, legacy := range []bool{false, true} {
			patterns, none := filterSubjects("pfx", &f, legacy)
			for _, k := range allKeys {
				subj := subject("pfx", &k)
				if legacy {
					subj = legacySubject("pfx", &k, "ev_1")
				}
				selected := !none && patterns == nil
				for _, p := range patterns {
					selected = selected || subjectMatches(p, subj)
				}
				if selected != f.Match(&k) {
					t.Errorf("filter %d (legacy %v): key %+v selected by %v = %v, Match = %v", i, legacy, k, patterns, selected, f.Match(&k))
				}
			}
		}
	}
	many := make([]string, 100)
	for i := range many {
		many[i] = "c" + strings.Repeat("x", i)
	}
	f, _ := filter.New(many, nil, nil, nil)
	if patterns, none := filterSubjects("pfx", &f, false); patterns != nil || none {
		t.Fatalf("100 channels: %d patterns, none %v; want every subject", len(patterns), none)
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

func TestEventID(t *testing.T) {
	ev := &eventsv1.Event{Id: "ev_abc", Type: msg, RawJson: []byte("{}")}
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventID(b); got != "ev_abc" {
		t.Fatalf("eventID = %q", got)
	}
	// Not first: still found.
	other := protowire.AppendTag(nil, 8, protowire.BytesType)
	other = protowire.AppendString(other, "twlo_1")
	if got := eventID(append(other, b...)); got != "ev_abc" {
		t.Fatalf("eventID after another field = %q", got)
	}
	for _, bad := range [][]byte{nil, {0xff}, other} {
		if got := eventID(bad); got != "" {
			t.Fatalf("eventID(%x) = %q, want none", bad, got)
		}
	}
}

func FuzzParseSubject(f *testing.F) {
	for _, k := range allKeys {
		f.Add(subject("pfx", &k))
		f.Add(legacySubject("pfx", &k, "ev_1"))
	}
	f.Add("pfx.message.twlo.~.none.~")
	f.Fuzz(func(t *testing.T, subj string) {
		k, legacy, err := parseSubject("pfx", subj)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to a subject that parses the same.
		k2, legacy2, err := parseSubject("pfx", subject("pfx", &k))
		if err != nil || k2 != k || legacy2 {
			t.Fatalf("%q (legacy %v): round trip gave %+v %v %v, want %+v", subj, legacy, k2, legacy2, err, k)
		}
	})
}
