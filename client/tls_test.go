package client_test

import (
	"context"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventsvc/eventsvc/client"
	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/testpki"
)

// Over mutual TLS: a client certificate that the auth file names is
// enough; without one the handshake fails, which Subscribe reports as a
// retryable error rather than waiting in silence.
func TestSubscribeOverMutualTLS(t *testing.T) {
	p := testpki.New(t)
	_, srvCert, srvKey := p.Issue(t, "server", pkix.Name{CommonName: "eventsvc"}, testpki.Server)
	_, cliCert, cliKey := p.Issue(t, "billing", pkix.Name{CommonName: "billing"}, testpki.Client)
	caPath := p.CAFile

	s := &server{t: t, web: &http.Client{Transport: &http.Transport{TLSClientConfig: p.ClientTLS()}}}
	s.cfg = newConfig(t, fmt.Sprintf("clients:\n  - name: billing\n    cert_subject: \"CN=billing\"\n  - name: full\n    token_sha256: %s\n", sha(fullToken)))
	s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile, s.cfg.TLS.ClientCAFile = srvCert, srvKey, caPath
	s.start()
	t.Cleanup(s.stop)
	s.post(channel, "m1")

	for _, tt := range []struct {
		name  string
		token string
	}{{"certificate", ""}, {"certificate and token", fullToken}} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.Dial(client.Options{Address: s.cfg.GRPCAddr, CAFile: caPath, CertFile: cliCert, KeyFile: cliKey, Token: tt.token})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rec := &recorder{}
			stop, _ := subscribe(t, c, &eventsv1.StreamEventsRequest{FromEarliest: true}, rec.handle)
			waitFor(t, "m1 over TLS", func() bool { return len(rec.messageIDs()) == 1 })
			stop()
		})
	}

	c, err := client.Dial(client.Options{Address: s.cfg.GRPCAddr, CAFile: caPath, Token: fullToken, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = c.Subscribe(ctx, &eventsv1.StreamEventsRequest{}, func(_ context.Context, m *client.Message) error {
		if m.Kind != client.KindReconnect {
			return fmt.Errorf("unexpected %v", m.Kind)
		}
		return m.Err
	})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("without a client certificate: %v, want a reported UNAVAILABLE", err)
	}
}
