package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// StreamTokens mints and checks stream tokens: short-lived tokens that stand
// for a credential on a stream request from a client that cannot send an
// Authorization header (a browser's EventSource puts them in the URL, where
// they may be logged by proxies: hence short-lived).
//
// A token says which credential minted it and until when it is valid,
// authenticated with HMAC-SHA256 under the issuer's key. It carries no rights
// of its own: the credential is looked up anew (Store.Lookup) whenever the
// token is used, so revoking the credential revokes its tokens. Processes
// that share a key accept each other's tokens, which is what several
// instances behind one load balancer need.
//
// A StreamTokens is safe for concurrent use.
type StreamTokens struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// DefaultStreamTokenTTL is how long a stream token is accepted by default.
const DefaultStreamTokenTTL = 5 * time.Minute

// MinStreamTokenKey is the shortest key NewStreamTokens accepts.
const MinStreamTokenKey = 16

// maxStreamToken bounds a token presented for checking.
const maxStreamToken = 2 << 10

// streamTokenPrefix starts every stream token (version 1).
const streamTokenPrefix = "st1."

// tokenEncoding encodes both parts of a token. Strict, so that the unused
// low bits of a part's last character must be zero: otherwise four
// spellings of it decode alike and a token has several accepted forms.
var tokenEncoding = base64.RawURLEncoding.Strict()

// NewStreamTokens returns an issuer of tokens valid for ttl (default
// DefaultStreamTokenTTL) under key; with a nil key, a random one, which only
// this process knows. A key shorter than MinStreamTokenKey is an error.
func NewStreamTokens(key []byte, ttl time.Duration) (*StreamTokens, error) {
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("auth: stream token key: %w", err)
		}
	}
	if len(key) < MinStreamTokenKey {
		return nil, fmt.Errorf("auth: a stream token secret needs at least %d bytes, got %d", MinStreamTokenKey, len(key))
	}
	if ttl <= 0 {
		ttl = DefaultStreamTokenTTL
	}
	return &StreamTokens{key: append([]byte(nil), key...), ttl: ttl, now: time.Now}, nil
}

// Mint returns a token for credential and when it expires: at least the
// TTL from now, rounded up to the second (the token holds whole seconds),
// so that a token is never minted already expired, whatever the TTL.
func (s *StreamTokens) Mint(credential string) (string, time.Time) {
	exact := s.now().Add(s.ttl)
	expires := exact.Truncate(time.Second)
	if expires.Before(exact) {
		expires = expires.Add(time.Second)
	}
	payload := binary.BigEndian.AppendUint64(nil, uint64(expires.Unix()))
	payload = append(payload, credential...)
	return streamTokenPrefix + tokenEncoding.EncodeToString(payload) + "." + tokenEncoding.EncodeToString(s.mac(payload)), expires
}

func (s *StreamTokens) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(streamTokenPrefix))
	m.Write(payload)
	return m.Sum(nil)
}

// Check returns the credential a token stands for. A token that is
// malformed, was not minted with this key, or has expired is
// ErrUnauthenticated; the error never repeats the token.
func (s *StreamTokens) Check(token string) (string, error) {
	rest, ok := strings.CutPrefix(token, streamTokenPrefix)
	if !ok || len(token) > maxStreamToken {
		return "", fmt.Errorf("%w: not a stream token", ErrUnauthenticated)
	}
	p, m, ok := strings.Cut(rest, ".")
	payload, err1 := tokenEncoding.DecodeString(p)
	mac, err2 := tokenEncoding.DecodeString(m)
	if !ok || err1 != nil || err2 != nil || len(payload) < 8 {
		return "", fmt.Errorf("%w: not a stream token", ErrUnauthenticated)
	}
	if !hmac.Equal(mac, s.mac(payload)) {
		return "", fmt.Errorf("%w: the stream token was not issued by this service (or its secret changed)", ErrUnauthenticated)
	}
	if expires := time.Unix(int64(binary.BigEndian.Uint64(payload)), 0); !s.now().Before(expires) {
		return "", fmt.Errorf("%w: the stream token expired at %s; create a new one", ErrUnauthenticated, expires.UTC().Format(time.RFC3339))
	}
	return string(payload[8:]), nil
}
