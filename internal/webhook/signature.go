package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Sign returns the signature Sociocs sends for body: the hex HMAC-SHA256 of
// the raw body keyed by secret.
func Sign(body, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether sig (hex, either case) is the HMAC-SHA256
// of body under one of secrets. The comparison takes the same time whatever
// the signature's content, and every secret is tried, so timing reveals
// neither the expected signature nor which secret matched.
func VerifySignature(body []byte, sig string, secrets [][]byte) bool {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := false
	for _, secret := range secrets {
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		if hmac.Equal(m.Sum(nil), got) {
			ok = true
		}
	}
	return ok
}
