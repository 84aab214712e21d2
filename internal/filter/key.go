package filter

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// ErrBadSubject is returned by ParseSubject for a subject that this package
// did not make.
var ErrBadSubject = errors.New("filter: not an event subject")

// Key is what filters select on: the four attributes of an event that are
// encoded in its subject in the log, so that the log can filter on the server
// and the hub can match without decoding the event.
type Key struct {
	Type     eventsv1.EventType
	Provider eventsv1.Provider
	// Status is STATUS_UNSPECIFIED for events that are not status updates.
	Status  eventsv1.Status
	Channel string
}

// KeyOf returns the key of ev.
func KeyOf(ev *eventsv1.Event) Key {
	return Key{
		Type:     ev.GetType(),
		Provider: ev.GetProvider(),
		Status:   ev.GetStatusUpdate().GetStatus(),
		Channel:  ev.GetChannelKey(),
	}
}

// Subject layout: <prefix>.<type>.<provider>.<channel>.<status>.<id>
//
// Tokens are short lower-case names of the enum values ("none" for
// UNSPECIFIED), so that subjects read well in NATS tooling. Channel keys and ids
// that are not safe as subject tokens are encoded (see encodeToken), never
// dropped. The id is part of the subject so that an event can be found by id
// with one lookup of the last message on a subject.
const (
	idxType = iota + 1
	idxProvider
	idxChannel
	idxStatus
	idxID
	numTokens
)

// noneToken stands for an UNSPECIFIED enum value.
const noneToken = "none"

var (
	typeTokens = map[eventsv1.EventType]string{
		eventsv1.EventType_EVENT_TYPE_UNSPECIFIED:   noneToken,
		eventsv1.EventType_EVENT_TYPE_MESSAGE:       "message",
		eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE: "status_update",
		eventsv1.EventType_EVENT_TYPE_UNKNOWN:       "unknown",
	}
	providerTokens = map[eventsv1.Provider]string{
		eventsv1.Provider_PROVIDER_UNSPECIFIED:      noneToken,
		eventsv1.Provider_PROVIDER_TWILIO_SMS:       "twlo",
		eventsv1.Provider_PROVIDER_TWILIO_WHATSAPP:  "twlowa",
		eventsv1.Provider_PROVIDER_GUPSHUP_WHATSAPP: "gswa",
		eventsv1.Provider_PROVIDER_TELNYX_SMS:       "tlnx",
		eventsv1.Provider_PROVIDER_UNKNOWN:          "unknown",
	}
	statusTokens = map[eventsv1.Status]string{
		eventsv1.Status_STATUS_UNSPECIFIED:     noneToken,
		eventsv1.Status_STATUS_SENT:            "sent",
		eventsv1.Status_STATUS_DELIVERED:       "delivered",
		eventsv1.Status_STATUS_READ:            "read",
		eventsv1.Status_STATUS_FAILED:          "failed",
		eventsv1.Status_STATUS_QUEUED:          "queued",
		eventsv1.Status_STATUS_SENDING:         "sending",
		eventsv1.Status_STATUS_UNDELIVERED:     "undelivered",
		eventsv1.Status_STATUS_SENDING_FAILED:  "sending_failed",
		eventsv1.Status_STATUS_DELIVERY_FAILED: "delivery_failed",
		eventsv1.Status_STATUS_ENQUEUED:        "enqueued",
		eventsv1.Status_STATUS_UNKNOWN:         "unknown",
	}
	typeByToken     = invert(typeTokens)
	providerByToken = invert(providerTokens)
	statusByToken   = invert(statusTokens)
)

func invert[E comparable](m map[E]string) map[string]E {
	out := make(map[string]E, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// token returns the subject token of an enum value; a value this build does
// not know (from a newer schema) gets its number, which still round-trips.
func token[E ~int32](m map[E]string, v E) string {
	if t, ok := m[v]; ok {
		return t
	}
	return fmt.Sprintf("n%d", int32(v))
}

func parseToken[E ~int32](m map[string]E, t string) (E, bool) {
	if v, ok := m[t]; ok {
		return v, true
	}
	var n int32
	if _, err := fmt.Sscanf(t, "n%d", &n); err == nil {
		return E(n), true
	}
	return 0, false
}

// Subject returns the subject under which the event with this key and id is
// stored. prefix must be a valid single subject token.
func (k Key) Subject(prefix, id string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(k.Channel) + len(id) + 48)
	b.WriteString(prefix)
	b.WriteByte('.')
	b.WriteString(token(typeTokens, k.Type))
	b.WriteByte('.')
	b.WriteString(token(providerTokens, k.Provider))
	b.WriteByte('.')
	b.WriteString(encodeToken(k.Channel))
	b.WriteByte('.')
	b.WriteString(token(statusTokens, k.Status))
	b.WriteByte('.')
	b.WriteString(encodeToken(id))
	return b.String()
}

// IDSubject returns a subject pattern that matches only the event with this
// id, whatever its other attributes.
func IDSubject(prefix, id string) string {
	return prefix + ".*.*.*.*." + encodeToken(id)
}

// AllSubjects returns the pattern that matches every event under prefix.
func AllSubjects(prefix string) string { return prefix + ".>" }

// ParseSubject is the inverse of Key.Subject. It does not allocate for a
// channel key that needed no encoding.
func ParseSubject(prefix, subject string) (Key, string, error) {
	var k Key
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok || len(rest) == 0 || rest[0] != '.' {
		return k, "", fmt.Errorf("%w: %q", ErrBadSubject, subject)
	}
	rest = rest[1:]
	var toks [numTokens]string
	for i := idxType; i < idxID; i++ {
		j := strings.IndexByte(rest, '.')
		if j < 0 {
			return k, "", fmt.Errorf("%w: %q", ErrBadSubject, subject)
		}
		toks[i], rest = rest[:j], rest[j+1:]
	}
	toks[idxID] = rest
	var okT, okP, okS bool
	k.Type, okT = parseToken(typeByToken, toks[idxType])
	k.Provider, okP = parseToken(providerByToken, toks[idxProvider])
	k.Status, okS = parseToken(statusByToken, toks[idxStatus])
	ch, errC := decodeToken(toks[idxChannel])
	id, errI := decodeToken(toks[idxID])
	if !okT || !okP || !okS || errC != nil || errI != nil || strings.IndexByte(toks[idxID], '.') >= 0 {
		return k, "", fmt.Errorf("%w: %q", ErrBadSubject, subject)
	}
	k.Channel = ch
	return k, id, nil
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
