package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventsvc/eventsvc/client"
	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// writeCert signs a certificate for subject with parent (self-signed when
// parent is nil) and writes it and its key as PEM files in dir.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cert, key, certPath, keyPath
}

// Over mutual TLS: a client certificate that the auth file names is
// enough; without one the handshake fails, which Subscribe reports as a
// retryable error rather than waiting in silence.
func TestSubscribeOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caPath, _ := writeCert(t, dir, "ca", &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	_, _, srvCert, srvKey := writeCert(t, dir, "server", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "eventsvc"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}, ca, caKey)
	_, _, cliCert, cliKey := writeCert(t, dir, "billing", &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "billing"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, caKey)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	s := &server{t: t, web: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
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
