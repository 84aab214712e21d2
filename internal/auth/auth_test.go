package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/filter"
)

func writeFile(t *testing.T, dir, content string) string {
	t.Helper()
	p := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHashTokenKnownVector(t *testing.T) {
	// printf %s test | sha256sum
	if got, want := HashToken("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; got != want {
		t.Fatalf("HashToken = %s, want %s", got, want)
	}
}

func TestAuthenticate(t *testing.T) {
	path := writeFile(t, t.TempDir(), `
clients:
  - name: dashboard
    token_sha256: `+HashToken("dash-token")+`
    channel_keys: ["twlo_1*"]
    providers: [twlo, PROVIDER_GUPSHUP_WHATSAPP, twilio_whatsapp]
    types: [message]
  - name: audit
    token_sha256: `+strings.ToUpper(HashToken("audit-token"))+`
  - name: by-cert
    cert_subject: CN=reader,O=Example
`)
	s, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, subject, want string
	}{
		{"token", "dash-token", "", "dashboard"},
		{"upper-case hash in the file", "audit-token", "", "audit"},
		{"certificate", "", "CN=reader,O=Example", "by-cert"},
		{"token wins over certificate", "audit-token", "CN=reader,O=Example", "audit"},
		{"unknown token", "nope", "", ""},
		{"wrong token with a good certificate", "nope", "CN=reader,O=Example", ""},
		{"unknown certificate", "", "CN=other", ""},
		{"nothing", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := s.Authenticate(tt.token, tt.subject)
			if tt.want == "" {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("err = %v, want ErrUnauthenticated", err)
				}
				if tt.token != "" && strings.Contains(err.Error(), tt.token) {
					t.Errorf("the error %q repeats the token", err)
				}
				return
			}
			if err != nil || c.Name != tt.want {
				t.Fatalf("Authenticate = %v, %v; want %s", c, err, tt.want)
			}
		})
	}
	c, _, _ := s.Authenticate("dash-token", "")
	in := filter.Key{Type: eventsv1.EventType_EVENT_TYPE_MESSAGE, Provider: eventsv1.Provider_PROVIDER_TWILIO_WHATSAPP, Channel: "twlo_19"}
	out := filter.Key{Type: eventsv1.EventType_EVENT_TYPE_MESSAGE, Provider: eventsv1.Provider_PROVIDER_TELNYX_SMS, Channel: "twlo_19"}
	if !c.Scope.Permits(&in) || c.Scope.Permits(&out) {
		t.Errorf("dashboard's scope: Permits(in) = %v, Permits(out) = %v", c.Scope.Permits(&in), c.Scope.Permits(&out))
	}
	audit, _, _ := s.Authenticate("audit-token", "")
	if !audit.Scope.Unrestricted() {
		t.Error("a client without restrictions is restricted")
	}
}

func TestInvalidFiles(t *testing.T) {
	h := HashToken("x")
	tests := []struct{ name, content, want string }{
		{"no name", "clients:\n  - token_sha256: " + h, "clients[0]: name is missing"},
		{"no credential", "clients:\n  - name: a", `client "a": give token_sha256, cert_subject or both`},
		{"bad hash", "clients:\n  - name: a\n    token_sha256: abc", `client "a": token_sha256 is not 64 hex digits`},
		{"duplicate name", "clients:\n  - name: a\n    token_sha256: " + h + "\n  - name: a\n    cert_subject: CN=a", `client "a": the name is used twice`},
		{"duplicate token", "clients:\n  - name: a\n    token_sha256: " + h + "\n  - name: b\n    token_sha256: " + h, `client "b": token_sha256 is the same as client "a"'s`},
		{"unknown provider", "clients:\n  - name: a\n    token_sha256: " + h + "\n    providers: [sms]", `client "a": providers: [0]: sociocs: unknown provider "sms": want a Sociocs code (twlo, twlowa, gswa, tlnx) or an enum name`},
		{"unknown type", "clients:\n  - name: a\n    token_sha256: " + h + "\n    types: [messages]", `client "a": types: [0]: sociocs: unknown event type "messages"`},
		{"bad channel pattern", "clients:\n  - name: a\n    token_sha256: " + h + "\n    channel_keys: [\"a*b\"]", `client "a": invalid filter: channel_keys[0]`},
		{"misspelt field", "clients:\n  - name: a\n    token_sha256: " + h + "\n    channel_key: [a]", "field channel_key not found"},
		{"not YAML", "clients: [", "invalid auth file"},
		// A restriction that is present never widens access: empty or null,
		// it is refused rather than read as absent (which permits all).
		{"empty channel_keys", "clients:\n  - name: a\n    token_sha256: " + h + "\n    channel_keys: []",
			`client "a": channel_keys is present but empty, which would permit no channel: remove it to permit every channel, or list "*"`},
		{"null channel_keys", "clients:\n  - name: a\n    token_sha256: " + h + "\n    channel_keys:", `client "a": channel_keys is present but empty`},
		{"channel_keys: ~", "clients:\n  - name: a\n    token_sha256: " + h + "\n    channel_keys: ~", `client "a": channel_keys is present but empty`},
		{"empty providers", "clients:\n  - name: a\n    token_sha256: " + h + "\n    providers: []",
			`client "a": providers is present but empty, which would permit no provider: remove it to permit every provider`},
		{"null providers", "clients:\n  - name: a\n    token_sha256: " + h + "\n    providers: null", `client "a": providers is present but empty`},
		{"empty types", "clients:\n  - name: a\n    token_sha256: " + h + "\n    types: []",
			`client "a": types is present but empty, which would permit no type: remove it to permit every type`},
		{"null types", "clients:\n  - name: a\n    token_sha256: " + h + "\n    types:\n  - name: b\n    cert_subject: CN=b", `client "a": types is present but empty`},
		// Only the first of several documents would be read: a client after a
		// "---" would be silently ignored.
		{"two documents", "clients:\n  - name: a\n    token_sha256: " + h + "\n---\nclients:\n  - name: b\n    cert_subject: CN=b",
			`holds more than one YAML document`},
		{"a trailing ---", "clients:\n  - name: a\n    token_sha256: " + h + "\n---\n", `holds more than one YAML document`},
		// No document at all (a file truncated by a failed write, say) is
		// refused as before, now in words: a reload keeps the clients in force
		// rather than revoking them all.
		{"empty file", "", `holds no YAML document: write "clients: []" for a file without clients`},
		{"only comments", "# clients:\n#   - name: a\n", `holds no YAML document`},
		{"channel_keys not a list", "clients:\n  - name: a\n    token_sha256: " + h + "\n    channel_keys: twlo_1", `client "a": channel_keys: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, t.TempDir(), tt.content), nil)
			if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalidFile containing %q", err, tt.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); !errors.Is(err, ErrInvalidFile) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "clients:\n  - name: a\n    token_sha256: "+HashToken("ta")+"\n  - name: b\n    token_sha256: "+HashToken("tb"))
	s, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Revoke a: a's token stops working, b's keeps working.
	writeFile(t, dir, "clients:\n  - name: b\n    token_sha256: "+HashToken("tb"))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Authenticate("ta", ""); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked token: err = %v", err)
	}
	if c, _, err := s.Authenticate("tb", ""); err != nil || c.Name != "b" {
		t.Errorf("kept token: %v, %v", c, err)
	}
	// An invalid file keeps the clients in force.
	writeFile(t, dir, "clients: [")
	if err := s.Reload(); !errors.Is(err, ErrInvalidFile) {
		t.Fatalf("Reload of an invalid file: err = %v", err)
	}
	if _, _, err := s.Authenticate("tb", ""); err != nil {
		t.Errorf("after a failed reload: %v", err)
	}
}

// TestDocumentMarkers: one document, with or without its start and end
// markers, is a valid file; so is one that lists no clients.
func TestDocumentMarkers(t *testing.T) {
	client := "clients:\n  - name: a\n    token_sha256: " + HashToken("ta") + "\n"
	tests := []struct {
		name, content string
		clients       int
	}{
		{"bare", client, 1},
		{"start marker", "---\n" + client, 1},
		{"start and end markers", "---\n" + client + "...\n", 1},
		{"no clients", "clients: []\n", 0},
		{"an empty document", "---\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(writeFile(t, t.TempDir(), tt.content), nil)
			if err != nil {
				t.Fatal(err)
			}
			if n := s.table.Load().nClients; n != tt.clients {
				t.Fatalf("%d clients, want %d", n, tt.clients)
			}
		})
	}
}

// TestReloadRefusesAnEmptyRestriction: a reload (SIGHUP) of a file in which
// a restricted client's list became empty or null is refused, and the
// client keeps the rights it had: the file must not widen them to
// everything.
func TestReloadRefusesAnEmptyRestriction(t *testing.T) {
	dir := t.TempDir()
	client := "clients:\n  - name: b\n    token_sha256: " + HashToken("tb") + "\n"
	path := writeFile(t, dir, client+"    channel_keys: [\"twlo_1*\"]\n    providers: [twlo]\n    types: [message]\n")
	s, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := filter.Key{Type: eventsv1.EventType_EVENT_TYPE_MESSAGE, Provider: eventsv1.Provider_PROVIDER_TWILIO_SMS, Channel: "twlo_19"}
	tests := []struct {
		name, restrictions string
		out                filter.Key // permitted if the file were taken
	}{
		{"channel_keys: []", "    channel_keys: []\n    providers: [twlo]\n    types: [message]\n",
			filter.Key{Type: in.Type, Provider: in.Provider, Channel: "gswa_9"}},
		{"channel_keys: ~", "    channel_keys: ~\n    providers: [twlo]\n    types: [message]\n",
			filter.Key{Type: in.Type, Provider: in.Provider, Channel: "gswa_9"}},
		{"channel_keys:", "    channel_keys:\n    providers: [twlo]\n    types: [message]\n",
			filter.Key{Type: in.Type, Provider: in.Provider, Channel: "gswa_9"}},
		{"providers: []", "    channel_keys: [\"twlo_1*\"]\n    providers: []\n    types: [message]\n",
			filter.Key{Type: in.Type, Provider: eventsv1.Provider_PROVIDER_TELNYX_SMS, Channel: in.Channel}},
		{"types: []", "    channel_keys: [\"twlo_1*\"]\n    providers: [twlo]\n    types: []\n",
			filter.Key{Type: eventsv1.EventType_EVENT_TYPE_STATUS_UPDATE, Provider: in.Provider, Channel: in.Channel}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, dir, client+tt.restrictions)
			if err := s.Reload(); !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), "is present but empty") {
				t.Fatalf("Reload: err = %v, want ErrInvalidFile saying the list is empty", err)
			}
			c, _, err := s.Authenticate("tb", "")
			if err != nil {
				t.Fatal(err)
			}
			if !c.Scope.Permits(&in) || c.Scope.Permits(&tt.out) {
				t.Errorf("after the refused reload: Permits(%v) = %v, Permits(%v) = %v; want the old rights", &in, c.Scope.Permits(&in), &tt.out, c.Scope.Permits(&tt.out))
			}
		})
	}
}

// TestEveryChannelIsListedAsStar: "*" is how a present channel_keys
// permits every channel.
func TestEveryChannelIsListedAsStar(t *testing.T) {
	s, err := Load(writeFile(t, t.TempDir(), "clients:\n  - name: a\n    token_sha256: "+HashToken("ta")+"\n    channel_keys: [\"*\"]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, _, err := s.Authenticate("ta", ""); err != nil || !c.Scope.Unrestricted() {
		t.Fatalf("Authenticate = %v, %v; want a client without restrictions", c, err)
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer  abc ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if tok, ok := BearerToken(tt.header); tok != tt.token || ok != tt.ok {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, tok, ok, tt.token, tt.ok)
		}
	}
}

// TestLookupFollowsReloads: the credential a request authenticated with
// names its client after a reload, until the credential leaves the file
// (the client removed, or its token replaced).
func TestLookupFollowsReloads(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "clients:\n  - name: a\n    token_sha256: "+HashToken("ta")+
		"\n  - name: b\n    token_sha256: "+HashToken("tb")+"\n  - name: c\n    cert_subject: CN=c")
	s, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, credA, _ := s.Authenticate("ta", "")
	_, credB, _ := s.Authenticate("tb", "")
	_, credC, _ := s.Authenticate("", "CN=c")
	if strings.Contains(credA, HashToken("ta")) {
		t.Fatalf("credential %q shows the token's hash", credA)
	}
	writeFile(t, dir, "clients:\n  - name: a\n    token_sha256: "+HashToken("ta-rotated")+
		"\n  - name: b\n    token_sha256: "+HashToken("tb")+"\n    types: [message]")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Lookup(credA); ok {
		t.Error("a's old token still names a client after it was replaced")
	}
	if c, ok := s.Lookup(credB); !ok || c.Name != "b" || c.Scope.Unrestricted() {
		t.Errorf("Lookup(b) = %v, %v; want b with its new rights", c, ok)
	}
	if _, ok := s.Lookup(credC); ok {
		t.Error("a removed certificate subject still names a client")
	}
}
