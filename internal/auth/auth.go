// Package auth knows eventsvc's API clients: it reads the auth file, which
// lists each client with the SHA-256 of its bearer token (never the token)
// and/or the subject of its TLS client certificate, and what it may read; and
// it tells who presented a credential.
//
// A Store is safe for concurrent use; Reload swaps the client table
// atomically, so requests in flight keep the table they started with.
package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

	"go.yaml.in/yaml/v3"

	"github.com/eventsvc/eventsvc/internal/filter"
	"github.com/eventsvc/eventsvc/internal/sociocs"
)

// Errors of this package, to be checked with errors.Is.
var (
	// ErrUnauthenticated means no credential was presented, or one that no
	// client in the auth file has.
	ErrUnauthenticated = errors.New("auth: unauthenticated")
	// ErrInvalidFile means the auth file could not be read or is not valid;
	// the message names the client and the field.
	ErrInvalidFile = errors.New("auth: invalid auth file")
)

// MaxFileBytes bounds the auth file.
const MaxFileBytes = 4 << 20

// Client is one API client: its name (for logs, metrics and limits) and the
// events it may read.
type Client struct {
	Name  string
	Scope filter.Scope
}

// Store holds the clients of an auth file.
type Store struct {
	path  string
	log   *slog.Logger
	table atomic.Pointer[table]
}

type table struct {
	clients  []*entry
	bySubj   map[string]*Client
	byCred   map[string]*Client // by tokenCredential of each token
	nClients int
}

type entry struct {
	client *Client
	hash   []byte // SHA-256 of the token; nil: certificate only
}

// tokenCredential names a token credential by a hash of its hash: it can
// be shown (in a stream token, in memory for the life of a stream) without
// showing what the auth file holds.
func tokenCredential(hash []byte) string {
	sum := sha256.Sum256(hash)
	return "token:" + hex.EncodeToString(sum[:12])
}

func certCredential(subject string) string { return "cert:" + subject }

// Load reads the auth file at path. The error wraps ErrInvalidFile.
func Load(path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Store{path: path, log: log.With("component", "auth")}
	t, err := readFile(path)
	if err != nil {
		return nil, err
	}
	s.table.Store(t)
	s.log.Info("auth file loaded", "path", path, "clients", t.nClients)
	s.warnEmpty(t)
	return s, nil
}

func (s *Store) warnEmpty(t *table) {
	if t.nClients == 0 {
		s.log.Warn("the auth file lists no clients: every API call will be refused", "path", s.path)
	}
}

// UsesCertificates reports whether a client is identified by its
// certificate subject.
func (s *Store) UsesCertificates() bool { return len(s.table.Load().bySubj) > 0 }

// Reload reads the file again and, if it is valid, replaces the clients:
// requests authenticated from then on use the new table; streams already
// open keep the rights they were opened with. An invalid file leaves the
// current clients in place and is returned (wrapping ErrInvalidFile).
func (s *Store) Reload() error {
	t, err := readFile(s.path)
	if err != nil {
		s.log.Error("auth file not reloaded; the previous clients stay in force", "path", s.path, "err", err)
		return err
	}
	s.table.Store(t)
	s.log.Info("auth file reloaded", "path", s.path, "clients", t.nClients)
	s.warnEmpty(t)
	return nil
}

// Authenticate returns the client that token (a bearer token, or "") or
// certSubject (the verified subject of a TLS client certificate in RFC 2253
// form, or "") identifies, and the credential it used (see Lookup). A token,
// when given, decides: a wrong token is ErrUnauthenticated even with a valid
// certificate. The token is compared in constant time with every client's.
func (s *Store) Authenticate(token, certSubject string) (*Client, string, error) {
	t := s.table.Load()
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		var found *entry
		for _, e := range t.clients {
			// Every entry is compared, so the time taken does not tell which
			// (or whether one) matched.
			if e.hash != nil && subtle.ConstantTimeCompare(sum[:], e.hash) == 1 {
				found = e
			}
		}
		if found == nil {
			return nil, "", fmt.Errorf("%w: the bearer token is not known", ErrUnauthenticated)
		}
		return found.client, tokenCredential(found.hash), nil
	}
	if certSubject != "" {
		if c, ok := t.bySubj[certSubject]; ok {
			return c, certCredential(certSubject), nil
		}
		return nil, "", fmt.Errorf("%w: no client has the certificate subject %q", ErrUnauthenticated, certSubject)
	}
	return nil, "", fmt.Errorf("%w: no credential: send \"authorization: Bearer <token>\"", ErrUnauthenticated)
}

// Lookup returns the client that a credential Authenticate returned
// identifies now, after any reload; false when the credential is no longer
// in the file (revoked, or its token changed).
func (s *Store) Lookup(credential string) (*Client, bool) {
	t := s.table.Load()
	if subject, ok := strings.CutPrefix(credential, "cert:"); ok {
		c, found := t.bySubj[subject]
		return c, found
	}
	c, found := t.byCred[credential]
	return c, found
}

// BearerToken extracts the token from an Authorization header value
// ("Bearer <token>", the scheme in any case); ok is false for another scheme.
func BearerToken(header string) (token string, ok bool) {
	scheme, tok, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// HashToken returns the hex SHA-256 of a token, as the auth file holds it.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// fileClient is one client as written in the auth file. The restrictions
// are kept as nodes because an absent list permits everything on its axis
// while a present one must never widen access, and decoded into a slice
// an absent list, a null one and an empty one all come out nil.
type fileClient struct {
	Name        string    `yaml:"name"`
	TokenSHA256 string    `yaml:"token_sha256"`
	CertSubject string    `yaml:"cert_subject"`
	ChannelKeys yaml.Node `yaml:"channel_keys"`
	Providers   yaml.Node `yaml:"providers"`
	Types       yaml.Node `yaml:"types"`
}

// restriction decodes the restriction list field of a client; nil means
// the field is absent. A present list that is null or empty is an error:
// taken as absent it would permit everything, taken literally nothing, and
// neither is likely what its writer meant.
func restriction(n *yaml.Node, field, what, orAll string) ([]string, error) {
	if n.IsZero() {
		return nil, nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return nil, fmt.Errorf("%s: %v", field, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s is present but empty, which would permit no %s: remove it to permit every %s%s", field, what, what, orAll)
	}
	return list, nil
}

type file struct {
	Clients []fileClient `yaml:"clients"`
}

func readFile(path string) (*table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidFile, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileBytes+1)); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidFile, path, err)
	}
	if buf.Len() > MaxFileBytes {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrInvalidFile, path, MaxFileBytes)
	}
	t, err := parse(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// parse validates the content of an auth file. Unknown fields are errors, so
// that a misspelt restriction is not silently ignored; so is a second YAML
// document, whose clients would be. A file without any document (empty, or
// only comments) is an error too, so that a reload of a file truncated by a
// failed write keeps the clients in force instead of revoking them all.
func parse(data []byte) (*table, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf(`%w: the file holds no YAML document: write "clients: []" for a file without clients`, ErrInvalidFile)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidFile, err)
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf(`%w: the file holds more than one YAML document (a line "---" starts another): list every client under the first one's "clients:"`, ErrInvalidFile)
	}
	t := &table{bySubj: make(map[string]*Client), byCred: make(map[string]*Client)}
	names := make(map[string]bool)
	hashes := make(map[string]string)
	for i, fc := range f.Clients {
		bad := func(format string, args ...any) error {
			who := fmt.Sprintf("clients[%d]", i)
			if fc.Name != "" {
				who = fmt.Sprintf("client %q", fc.Name)
			}
			return fmt.Errorf("%w: %s: %s", ErrInvalidFile, who, fmt.Sprintf(format, args...))
		}
		switch {
		case fc.Name == "":
			return nil, bad("name is missing")
		case names[fc.Name]:
			return nil, bad("the name is used twice")
		case fc.TokenSHA256 == "" && fc.CertSubject == "":
			return nil, bad("give token_sha256, cert_subject or both")
		}
		names[fc.Name] = true
		var hash []byte
		if fc.TokenSHA256 != "" {
			h, err := hex.DecodeString(strings.ToLower(fc.TokenSHA256))
			if err != nil || len(h) != sha256.Size {
				return nil, bad("token_sha256 is not 64 hex digits (the SHA-256 of the token, e.g. from `printf %%s TOKEN | sha256sum`)")
			}
			if other, dup := hashes[string(h)]; dup {
				return nil, bad("token_sha256 is the same as client %q's", other)
			}
			hashes[string(h)] = fc.Name
			hash = h
		}
		channelKeys, err := restriction(&fc.ChannelKeys, "channel_keys", "channel", `, or list "*"`)
		if err != nil {
			return nil, bad("%v", err)
		}
		providerNames, err := restriction(&fc.Providers, "providers", "provider", "")
		if err != nil {
			return nil, bad("%v", err)
		}
		typeNames, err := restriction(&fc.Types, "types", "type", "")
		if err != nil {
			return nil, bad("%v", err)
		}
		providers, err := parseNames(sociocs.Providers, providerNames)
		if err != nil {
			return nil, bad("providers: %v", err)
		}
		types, err := parseNames(sociocs.EventTypes, typeNames)
		if err != nil {
			return nil, bad("types: %v", err)
		}
		scope, err := filter.NewScope(channelKeys, providers, types)
		if err != nil {
			return nil, bad("%v", err)
		}
		c := &Client{Name: fc.Name, Scope: scope}
		t.clients = append(t.clients, &entry{client: c, hash: hash})
		if hash != nil {
			t.byCred[tokenCredential(hash)] = c
		}
		if fc.CertSubject != "" {
			if _, dup := t.bySubj[fc.CertSubject]; dup {
				return nil, bad("cert_subject %q is used by another client", fc.CertSubject)
			}
			t.bySubj[fc.CertSubject] = c
		}
		t.nClients++
	}
	return t, nil
}

// parseNames reads names as the command line does (see sociocs.Table.Parse).
func parseNames[E ~int32](table *sociocs.Table[E], names []string) ([]E, error) {
	out := make([]E, 0, len(names))
	for i, n := range names {
		e, err := table.Parse(n)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, e)
	}
	return out, nil
}
