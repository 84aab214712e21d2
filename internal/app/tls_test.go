package app_test

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/auth"
	"github.com/eventsvc/eventsvc/internal/testpki"
)

func tlsClient(t *testing.T, addr string, cfg *tls.Config) eventsv1.EventServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return eventsv1.NewEventServiceClient(conn)
}

func httpsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

func TestTLS(t *testing.T) {
	p := testpki.New(t)
	_, certPath, keyPath := p.Issue(t, "server", pkix.Name{CommonName: "eventsvc"}, testpki.Server)
	cfg := testConfig(t)
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certPath, keyPath
	s := start(t, cfg)
	base := "https://" + s.app.HTTPAddr()
	hc := httpsClient(p.ClientTLS())

	if code, body := restJSON(t, hc, http.MethodPost, base+"/webhooks/sociocs", "", sample(t, "message_twlo.json")); code != http.StatusOK {
		t.Fatalf("webhook over HTTPS: %d %s", code, body)
	}
	resp, err := tlsClient(t, s.app.GRPCAddr(), p.ClientTLS()).ListEvents(ctxT(t), &eventsv1.ListEventsRequest{})
	if err != nil || len(resp.GetEvents()) != 1 {
		t.Fatalf("ListEvents over TLS: %v, %v", resp, err)
	}
	if code, body := restJSON(t, hc, http.MethodGet, base+"/v1/events", "", nil); code != http.StatusOK {
		t.Fatalf("REST over HTTPS: %d %s", code, body)
	}
	// Plain text is refused on both ports.
	conn, err := grpc.NewClient(s.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := eventsv1.NewEventServiceClient(conn).ListEvents(ctxT(t), &eventsv1.ListEventsRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("plain-text gRPC to a TLS port: %v, want Unavailable", err)
	}
	if code, _ := restJSON(t, http.DefaultClient, http.MethodGet, "http://"+s.app.HTTPAddr()+"/v1/events", "", nil); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS port: %d, want 400", code)
	}
}

// TestMutualTLS: a client certificate names a client of the auth file over
// gRPC and REST (through the gateway); gRPC requires a certificate, HTTP
// does not (webhooks come without one), and the gateway cannot be fooled by
// a header that claims a subject.
func TestMutualTLS(t *testing.T) {
	p := testpki.New(t)
	_, certPath, keyPath := p.Issue(t, "server", pkix.Name{CommonName: "eventsvc"}, testpki.Server)
	reader, _, _ := p.Issue(t, "reader", pkix.Name{CommonName: "reader", Organization: []string{"Example"}}, testpki.Client)
	stranger, _, _ := p.Issue(t, "stranger", pkix.Name{CommonName: "stranger"}, testpki.Client)

	cfg := testConfig(t)
	cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLS.ClientCAFile = certPath, keyPath, p.CAFile
	cfg.Auth.File = filepath.Join(t.TempDir(), "auth.yaml")
	authYAML := fmt.Sprintf(`clients:
  - name: reader
    cert_subject: "CN=reader,O=Example"
    types: [message]
  - name: admin
    token_sha256: %s
`, auth.HashToken("tok-admin"))
	if err := os.WriteFile(cfg.Auth.File, []byte(authYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, cfg)
	base := "https://" + s.app.HTTPAddr()

	// Webhooks need no client certificate.
	anon := httpsClient(p.ClientTLS())
	for _, w := range webhooks[:2] {
		if code, body := restJSON(t, anon, http.MethodPost, base+w.path, "", sample(t, w.file)); code != http.StatusOK {
			t.Fatalf("webhook %s: %d %s", w.file, code, body)
		}
	}

	// gRPC: the certificate is the credential, narrowed to messages.
	resp, err := tlsClient(t, s.app.GRPCAddr(), p.ClientTLS(reader)).ListEvents(ctxT(t), &eventsv1.ListEventsRequest{})
	if err != nil {
		t.Fatalf("ListEvents with the reader's certificate: %v", err)
	}
	if got := seqsOf(resp.GetEvents()); fmt.Sprint(got) != "[1]" {
		t.Errorf("reader sees %v, want [1] (messages only)", got)
	}
	// A certificate of the CA that no client has: unauthenticated.
	if _, err := tlsClient(t, s.app.GRPCAddr(), p.ClientTLS(stranger)).ListEvents(ctxT(t), &eventsv1.ListEventsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("stranger's certificate: %v, want Unauthenticated", err)
	}
	// No certificate: the handshake fails.
	if _, err := tlsClient(t, s.app.GRPCAddr(), p.ClientTLS()).ListEvents(withToken(ctxT(t), "tok-admin"), &eventsv1.ListEventsRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC without a client certificate: %v, want Unavailable", err)
	}

	// REST: the verified certificate of the HTTP connection.
	code, body := restJSON(t, httpsClient(p.ClientTLS(reader)), http.MethodGet, base+"/v1/events", "", nil)
	if code != http.StatusOK {
		t.Fatalf("REST with the reader's certificate: %d %s", code, body)
	}
	var list eventsv1.ListEventsResponse
	if err := protojson.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(list.GetEvents()); fmt.Sprint(got) != "[1]" {
		t.Errorf("reader over REST sees %v, want [1]", got)
	}
	// A token, when sent, decides over the certificate, over REST as over
	// gRPC: the REST call's connection is its peer as a gRPC call's is.
	for _, tt := range []struct {
		name, token string
		code        codes.Code
		seqs        string
	}{
		{"the reader's certificate and the admin's token", "tok-admin", codes.OK, "[1 2]"},
		{"the reader's certificate and an unknown token", "tok-nope", codes.Unauthenticated, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tlsClient(t, s.app.GRPCAddr(), p.ClientTLS(reader)).ListEvents(withToken(ctxT(t), tt.token), &eventsv1.ListEventsRequest{})
			if status.Code(err) != tt.code || (err == nil && fmt.Sprint(seqsOf(resp.GetEvents())) != tt.seqs) {
				t.Errorf("gRPC: %v %v, want %v %s", seqsOf(resp.GetEvents()), err, tt.code, tt.seqs)
			}
			code, body := restJSON(t, httpsClient(p.ClientTLS(reader)), http.MethodGet, base+"/v1/events", tt.token, nil)
			got := restOutcome(t, code, body, func(b []byte) []uint64 {
				var list eventsv1.ListEventsResponse
				if err := protojson.Unmarshal(b, &list); err != nil {
					t.Fatal(err)
				}
				return seqsOf(list.GetEvents())
			})
			if got.code != tt.code || (tt.code == codes.OK && fmt.Sprint(got.seqs) != tt.seqs) {
				t.Errorf("REST: %d %s, want %v %s", code, body, tt.code, tt.seqs)
			}
		})
	}
	// Without a certificate REST takes a token...
	if code, body := restJSON(t, anon, http.MethodGet, base+"/v1/events", "tok-admin", nil); code != http.StatusOK {
		t.Errorf("REST with a token and no certificate: %d %s", code, body)
	}
	// ...and nothing else: not a header that claims the reader's subject.
	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, base+"/v1/events", nil)
	req.Header.Set("Grpc-Metadata-X-Eventsvc-Client-Subject", "CN=reader,O=Example")
	req.Header.Set("X-Eventsvc-Client-Subject", "CN=reader,O=Example")
	hresp, err := anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != http.StatusUnauthorized {
		t.Errorf("REST claiming a subject by header: %d, want 401", hresp.StatusCode)
	}
}
