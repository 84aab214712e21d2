package natslog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/filter"
	"github.com/eventsvc/eventsvc/internal/sociocs"
)

// ErrBadSubject means a message in the stream has a subject this package did
// not make.
var ErrBadSubject = errors.New("eventlog: not an event subject")

// Subject layout: <prefix>.<type>.<provider>.<channel>.<status>
//
// Every event is stored under the subject of its key, so that filtered reads
// run on the server, and events of one key share a subject: the number of
// distinct subjects, for which the NATS file store keeps state in memory, is
// bounded by types × providers × channels × statuses, not by events. The id is
// not in the subject; an event is found by id through the id index.
//
// The layout before this one added the id as a sixth token
// (<prefix>.<type>.<provider>.<channel>.<status>.<id>), which made a subject,
// and its memory, per event. Events stored that way are still read, and
// filtered reads also select them, for as long as the log holds any (see
// Log.legacyLast).
//
// Tokens are the Sociocs codes of the enum values (package sociocs), "none"
// for UNSPECIFIED, "unknown" for UNKNOWN and "n<number>" for a value this build
// does not know; they read well in NATS tooling. Channel keys that are not
// safe as subject tokens are encoded (see encodeToken), never dropped.
const (
	idxType = iota + 1
	idxProvider
	idxChannel
	idxStatus
	numTokens      // tokens of a subject, the prefix included
	legacyIDToken  = numTokens
	numLegacyToken = numTokens + 1
)

// MaxSubjectLen bounds the subject of an event. A publish's subject travels
// in the NATS protocol line, which the server bounds (max_control_line, 4 KiB
// by default) by closing the connection of a client that passes it. The
// subject of an event whose channel key keeps to its 256 bytes, with a
// prefix of at most 64, is at most about 450 bytes.
const MaxSubjectLen = 1024

// noneToken stands for an UNSPECIFIED enum value, unknownToken for UNKNOWN.
const (
	noneToken    = "none"
	unknownToken = "unknown"
)

// tokenTable maps the values of one enum to subject tokens and back.
type tokenTable[E ~int32] struct {
	byValue map[E]string
	byToken map[string]E
}

func newTokenTable[E ~int32](d protoreflect.EnumDescriptor, codes *sociocs.Table[E]) tokenTable[E] {
	t := tokenTable[E]{byValue: map[E]string{}, byToken: map[string]E{}}
	values := d.Values()
	for i := range values.Len() {
		v := values.Get(i)
		e := E(v.Number())
		tok := codes.Code(e)
		switch {
		case tok != "":
		case v.Number() == 0:
			tok = noneToken
		case strings.HasSuffix(string(v.Name()), "_UNKNOWN"):
			tok = unknownToken
		default:
			tok = fmt.Sprintf("n%d", v.Number())
		}
		if _, dup := t.byToken[tok]; dup {
			panic(fmt.Sprintf("eventlog: subject token %q is used twice in %s", tok, d.FullName()))
		}
		t.byValue[e] = tok
		t.byToken[tok] = e
	}
	return t
}

var (
	typeTokens     = newTokenTable(eventsv1.EventType(0).Descriptor(), sociocs.EventTypes)
	providerTokens = newTokenTable(eventsv1.Provider(0).Descriptor(), sociocs.Providers)
	statusTokens   = newTokenTable(eventsv1.Status(0).Descriptor(), sociocs.Statuses)
)

// token returns the subject token of an enum value; a value this build does
// not know (from a newer schema) gets its number, which still round-trips.
func (t tokenTable[E]) token(v E) string {
	if tok, ok := t.byValue[v]; ok {
		return tok
	}
	return fmt.Sprintf("n%d", int32(v))
}

func (t tokenTable[E]) parse(tok string) (E, bool) {
	if v, ok := t.byToken[tok]; ok {
		return v, true
	}
	var n int32
	if _, err := fmt.Sscanf(tok, "n%d", &n); err == nil && tok == fmt.Sprintf("n%d", n) {
		return E(n), true
	}
	return 0, false
}

// subject returns the subject under which an event with key k is stored.
// prefix must be a valid single subject token.
func subject(prefix string, k *filter.Key) string {
	ch := encodeToken(k.Channel)
	typ, prov, st := typeTokens.token(k.Type), providerTokens.token(k.Provider), statusTokens.token(k.Status)
	b := make([]byte, 0, len(prefix)+len(typ)+len(prov)+len(ch)+len(st)+4)
	b = append(b, prefix...)
	for _, tok := range [...]string{typ, prov, ch, st} {
		b = append(b, '.')
		b = append(b, tok...)
	}
	return string(b)
}

// allSubjects is the pattern that matches every event under prefix, in either
// layout.
func allSubjects(prefix string) string { return prefix + ".>" }

// legacySubjects is the pattern that matches the events stored in the old
// layout only.
func legacySubjects(prefix string) string { return prefix + ".*.*.*.*.*" }

// legacyIDSubject matches only the event with this id in the old layout.
func legacyIDSubject(prefix, id string) string { return prefix + ".*.*.*.*." + encodeToken(id) }

// parseSubject is the inverse of subject; it also reads the old layout, and
// then reports legacy. It does not allocate for a channel key that needed no
// encoding.
func parseSubject(prefix, subj string) (k filter.Key, legacy bool, err error) {
	rest, ok := strings.CutPrefix(subj, prefix)
	if !ok || len(rest) == 0 || rest[0] != '.' {
		return k, false, fmt.Errorf("%w: %q", ErrBadSubject, subj)
	}
	rest = rest[1:]
	n := strings.Count(rest, ".") + 2 // tokens, the prefix included
	if n != numTokens && n != numLegacyToken {
		return k, false, fmt.Errorf("%w: %q", ErrBadSubject, subj)
	}
	var toks [numLegacyToken]string
	for i := idxType; i < n-1; i++ {
		j := strings.IndexByte(rest, '.')
		toks[i], rest = rest[:j], rest[j+1:]
	}
	toks[n-1] = rest
	var okT, okP, okS bool
	k.Type, okT = typeTokens.parse(toks[idxType])
	k.Provider, okP = providerTokens.parse(toks[idxProvider])
	k.Status, okS = statusTokens.parse(toks[idxStatus])
	ch, errC := decodeToken(toks[idxChannel])
	if !okT || !okP || !okS || errC != nil {
		return filter.Key{}, false, fmt.Errorf("%w: %q", ErrBadSubject, subj)
	}
	if n == numLegacyToken {
		if _, err := decodeToken(toks[legacyIDToken]); err != nil {
			return filter.Key{}, false, fmt.Errorf("%w: %q", ErrBadSubject, subj)
		}
	}
	k.Channel = ch
	return k, n == numLegacyToken, nil
}

// maxPatterns bounds the server-side filter: past it a read selects every
// subject and relies on Match alone.
const maxPatterns = 64

// filterSubjects returns subject patterns that together select at least the
// events f matches, and few others, for filtering on the server: nil when
// every event must be read (no restriction, or too many patterns), and none
// when f can match no event. With legacy, the patterns also select events
// stored in the old layout. The caller must still apply f.Match: a filter
// narrowed to channel prefixes is only approximated here.
func filterSubjects(prefix string, f *filter.Filter, legacy bool) (patterns []string, none bool) {
	if f == nil || f.MatchAll() {
		return nil, false
	}
	types := tokens(f.Types(), typeTokens)
	providers := tokens(f.Providers(), providerTokens)
	statuses := tokens(f.Statuses(), statusTokens)
	if f.Statuses() != nil {
		// Only status updates have a status.
		upd := eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE
		if f.Types() != nil && !containsValue(f.Types(), upd) {
			return nil, true
		}
		types = []string{typeTokens.token(upd)}
	}
	channels := []string{"*"}
	if keys := f.ChannelKeys(); len(keys) > 0 {
		channels = make([]string, len(keys))
		for i, c := range keys {
			channels[i] = encodeToken(c)
		}
	}
	n := len(types) * len(providers) * len(channels) * len(statuses)
	if legacy {
		n *= 2
	}
	if n > maxPatterns || n == 1 && types[0] == "*" && providers[0] == "*" && channels[0] == "*" && statuses[0] == "*" {
		return nil, false
	}
	seen := make(map[string]bool, n)
	var b strings.Builder
	for _, t := range types {
		for _, p := range providers {
			for _, c := range channels {
				for _, s := range statuses {
					b.Reset()
					b.WriteString(prefix)
					for _, tok := range [...]string{t, p, c, s} {
						b.WriteByte('.')
						b.WriteString(tok)
					}
					pat := b.String()
					if !seen[pat] {
						seen[pat] = true
						patterns = append(patterns, pat)
						if legacy {
							patterns = append(patterns, pat+".*")
						}
					}
				}
			}
		}
	}
	return patterns, false
}

func tokens[E ~int32](values []E, t tokenTable[E]) []string {
	if values == nil {
		return []string{"*"}
	}
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = t.token(v)
	}
	return out
}

func containsValue[E comparable](s []E, v E) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// encodedMark starts a token that holds base64url of the raw value. It cannot
// start a plain token, so the two never collide; the empty value is the mark
// alone.
const encodedMark = '~'

// maxPlainToken bounds the length of a value stored as is.
const maxPlainToken = 128

// encodeToken makes s safe as one subject token: letters, digits, '-' and '_'
// pass unchanged; anything else (dots, spaces, wildcards, unicode, the empty
// string) is base64url-encoded behind the mark.
func encodeToken(s string) string {
	if s != "" && len(s) <= maxPlainToken && plain(s) {
		return s
	}
	return string(encodedMark) + base64.RawURLEncoding.EncodeToString([]byte(s))
}

func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func decodeToken(t string) (string, error) {
	if t == "" {
		return "", ErrBadSubject
	}
	if t[0] != encodedMark {
		return t, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(t[1:])
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// eventIDField is the field number of Event.id.
const eventIDField = 1

// eventID reads Event.id from an event's protobuf encoding without decoding
// the rest (Publish writes fields in order, so the id is first). It returns
// "" when the data holds none.
func eventID(data []byte) string {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return ""
		}
		data = data[n:]
		if num == eventIDField && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return ""
			}
			return string(v)
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return ""
		}
		data = data[n:]
	}
	return ""
}
