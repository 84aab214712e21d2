package app_test

import (
	"context"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/app"
	"github.com/eventsvc/eventsvc/internal/config"
	"github.com/eventsvc/eventsvc/internal/natstest"
	"github.com/eventsvc/eventsvc/internal/testpki"
)

// TestEmbeddedClusterWithTLSRoutes runs three apps whose embedded servers
// form one JetStream cluster over mutual-TLS routes, with the stream at
// three replicas: they start together (each waits for the others), report
// one epoch, and a webhook stored through one is found by id, listed and
// streamed through the others.
func TestEmbeddedClusterWithTLSRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of three embedded servers")
	}
	p := testpki.New(t)
	const n = 3
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		ports[i] = natstest.FreePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	cfgs := make([]config.Config, n)
	for i := range cfgs {
		cfg := testConfig(t)
		_, cert, key := p.Issue(t, fmt.Sprintf("node%d", i+1), pkix.Name{CommonName: fmt.Sprintf("node%d", i+1)}, testpki.Server|testpki.Client)
		cfg.TLS = config.TLS{CertFile: cert, KeyFile: key}
		cfg.Log.Replicas = 3
		// Every node is given the same list, its own route included.
		cfg.Log.Cluster = config.Cluster{Name: "test", Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Peers: routes, CAFile: p.CAFile}
		cfgs[i] = cfg
	}
	// Each start waits for the cluster, which needs the others: together.
	apps := make([]*app.App, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range apps {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			apps[i], errs[i] = app.Start(ctx, cfgs[i], testLogger())
		})
	}
	wg.Wait()
	for i, a := range apps {
		if a != nil {
			t.Cleanup(func() { shutdown(t, a) })
		}
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i+1, errs[i])
		}
	}
	tlsCfg := p.ClientTLS()
	clients := make([]eventsv1.EventServiceClient, n)
	for i, a := range apps {
		clients[i] = tlsClient(t, a.GRPCAddr(), tlsCfg)
	}
	ctx := ctxT(t)
	st, err := clients[2].StreamEvents(ctx, &eventsv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.GetHeartbeat() == nil {
		t.Fatalf("the stream on node 3: %v %v", m, err)
	}

	hc := httpsClient(tlsCfg)
	resp, err := hc.Post("https://"+apps[0].HTTPAddr()+"/webhooks/sociocs", "application/json", strings.NewReader(string(sample(t, "message_twlo.json"))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook through node 1: %d", resp.StatusCode)
	}
	want := expected(t)[0]
	var epoch string
	for i, c := range clients {
		got, err := c.GetEvent(ctx, &eventsv1.GetEventRequest{Id: want.GetId()})
		if err != nil || got.GetEvent().GetSequence() != 1 {
			t.Fatalf("node %d: GetEvent by id: %v %v", i+1, got, err)
		}
		if i > 0 && got.GetEpoch() != epoch {
			t.Fatalf("node %d reports epoch %q, node 1 %q", i+1, got.GetEpoch(), epoch)
		}
		epoch = got.GetEpoch()
	}
	if evs := recvN(t, st, 1); evs[0].GetId() != want.GetId() {
		t.Fatalf("the stream on node 3 got %v", evs[0])
	}
}

// TestClusterCAIsCheckedFirst: a --cluster-ca that is missing, or holds no
// certificate, stops start-up before anything is opened, naming the
// setting.
func TestClusterCAIsCheckedFirst(t *testing.T) {
	p := testpki.New(t)
	_, cert, key := p.Issue(t, "node", pkix.Name{CommonName: "node"}, testpki.Server|testpki.Client)
	notPEM := filepath.Join(p.Dir, "not.pem")
	if err := os.WriteFile(notPEM, pem.EncodeToMemory(&pem.Block{Type: "NOTHING"}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ca := range []string{p.Dir + "/missing.pem", notPEM} {
		cfg := testConfig(t)
		cfg.TLS = config.TLS{CertFile: cert, KeyFile: key}
		cfg.Log.Cluster = config.Cluster{Name: "test", Listen: "127.0.0.1:6222", Peers: []string{"nats://127.0.0.1:6223"}, CAFile: ca}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		a, err := app.Start(ctx, cfg, testLogger())
		cancel()
		if a != nil {
			shutdown(t, a)
		}
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "--cluster-ca") {
			t.Errorf("start with --cluster-ca %s: %v, want an invalid setting naming --cluster-ca", ca, err)
		}
	}
}
