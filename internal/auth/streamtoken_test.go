package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStreamTokens(t *testing.T) {
	key := []byte("0123456789abcdef0123")
	s, err := NewStreamTokens(key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	tok, expires := s.Mint("token:abc")
	if want := now.Add(time.Minute); !expires.Equal(want) {
		t.Fatalf("expires %v, want %v", expires, want)
	}
	if cred, err := s.Check(tok); err != nil || cred != "token:abc" {
		t.Fatalf("Check = %q, %v", cred, err)
	}
	other, _ := NewStreamTokens([]byte("another key of 16+ bytes"), time.Minute)
	other.now = s.now
	// The payload of one token with the signature of another.
	payload, _, _ := strings.Cut(strings.TrimPrefix(tok, "st1."), ".")
	xyz, _ := s.Mint("token:xyz")
	_, sig, _ := strings.Cut(strings.TrimPrefix(xyz, "st1."), ".")
	tampered := "st1." + payload + "." + sig
	tests := []struct{ name, token, want string }{
		{"empty", "", "not a stream token"},
		{"garbage", "st1.!!!.???", "not a stream token"},
		{"tampered", tampered, "not issued by this service"},
		{"too long", "st1." + strings.Repeat("A", 3000) + ".A", "not a stream token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Check(tt.token); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want ErrUnauthenticated containing %q", err, tt.want)
			}
		})
	}
	if _, err := other.Check(tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a token checked under another key: %v", err)
	}
	now = now.Add(time.Minute)
	if _, err := s.Check(tok); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("an expired token: %v", err)
	}
	if _, err := NewStreamTokens([]byte("short"), 0); err == nil {
		t.Error("a 5-byte key was accepted")
	}
	if r, err := NewStreamTokens(nil, 0); err != nil || r.ttl != DefaultStreamTokenTTL {
		t.Errorf("random key, default TTL: %v, %v", r, err)
	}
}

// TestStreamTokenIsCanonical: the last base64 character of each part of a
// token carries unused low bits; its twins that differ only there decode to
// the same bytes and must be refused, so that a token has one spelling.
func TestStreamTokenIsCanonical(t *testing.T) {
	s, err := NewStreamTokens([]byte("0123456789abcdef0123"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// 8+9 bytes of payload and 32 of MAC: 2 unused bits in the last
	// character of each part.
	tok, _ := s.Mint("token:abc")
	if _, err := s.Check(tok); err != nil {
		t.Fatalf("the canonical token: %v", err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	payload, mac, _ := strings.Cut(strings.TrimPrefix(tok, streamTokenPrefix), ".")
	// twins returns the spellings of part with its last character changed
	// in its unused bits only.
	twins := func(part string) []string {
		last := strings.IndexByte(alphabet, part[len(part)-1])
		var out []string
		for low := range 4 {
			if v := last&^3 | low; v != last {
				out = append(out, part[:len(part)-1]+string(alphabet[v]))
			}
		}
		return out
	}
	var tests []struct{ name, token string }
	for _, p := range twins(payload) {
		tests = append(tests, struct{ name, token string }{"payload " + p[len(p)-1:], streamTokenPrefix + p + "." + mac})
	}
	for _, m := range twins(mac) {
		tests = append(tests, struct{ name, token string }{"mac " + m[len(m)-1:], streamTokenPrefix + payload + "." + m})
	}
	if len(tests) != 6 {
		t.Fatalf("%d twins, want 3 per part: the token's layout changed", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if cred, err := s.Check(tt.token); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Check of a non-canonical spelling = %q, %v; want ErrUnauthenticated", cred, err)
			}
		})
	}
}

// TestMintIsNeverExpired: a token is valid for at least the TTL from the
// moment it is minted, its expiry rounded up to the second it is written
// with; rounded down, a TTL under a second made tokens born expired.
func TestMintIsNeverExpired(t *testing.T) {
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		now  time.Time
		ttl  time.Duration
	}{
		{"half a second, early in the second", base.Add(200 * time.Millisecond), 500 * time.Millisecond},
		{"half a second, late in the second", base.Add(700 * time.Millisecond), 500 * time.Millisecond},
		{"a nanosecond", base.Add(time.Nanosecond), time.Nanosecond},
		{"a nanosecond on the second", base, time.Nanosecond},
		{"a second and a bit", base.Add(999 * time.Millisecond), 1001 * time.Millisecond},
		{"a minute on the second", base, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStreamTokens([]byte("0123456789abcdef0123"), tt.ttl)
			if err != nil {
				t.Fatal(err)
			}
			now := tt.now
			s.now = func() time.Time { return now }
			tok, expires := s.Mint("token:abc")
			if expires.Before(tt.now.Add(tt.ttl)) || !expires.Equal(expires.Truncate(time.Second)) || expires.Sub(tt.now) >= tt.ttl+time.Second {
				t.Fatalf("expires %v for a TTL of %v from %v: want the first whole second at or after %v", expires, tt.ttl, tt.now, tt.now.Add(tt.ttl))
			}
			if _, err := s.Check(tok); err != nil {
				t.Fatalf("Check at once: %v", err)
			}
			now = expires
			if _, err := s.Check(tok); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Check at the expiry: %v, want ErrUnauthenticated", err)
			}
		})
	}
}
