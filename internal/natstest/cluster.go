package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of nats-server processes on loopback, each
// routed to all the others. Its methods are safe for concurrent use.
type Cluster struct {
	t       testing.TB
	servers []*Server
}

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Size is the number of servers; default 3.
	Size int
	// Args are added to every server's command line.
	Args []string
}

// StartCluster starts opts.Size servers named n1, n2, … with routes on free
// ports, and waits until the cluster has elected its JetStream meta leader.
// The servers do not advertise one another to clients: a client given one
// server's URL stays on that server.
// The test's cleanup kills them. It is skipped under -short.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("natstest: runs nats-server processes")
	}
	if opts.Size == 0 {
		opts.Size = 3
	}
	ports := make([]int, opts.Size)
	routes := make([]string, opts.Size)
	for i := range ports {
		ports[i] = FreePort(t)
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	c := &Cluster{t: t}
	for i := range opts.Size {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		c.servers = append(c.servers, Start(t, Options{
			Name:    fmt.Sprintf("n%d", i+1),
			Args:    opts.Args,
			Cluster: &Routes{Name: "natstest", Port: ports[i], Peers: peers},
		}))
	}
	c.WaitJetStream(t, nil)
	return c
}

// Servers returns the cluster's servers, in the order of their names.
func (c *Cluster) Servers() []*Server { return c.servers }

// URLs returns the client URLs of every server, comma-separated, as
// --nats-url takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Server returns the server named name, or nil.
func (c *Cluster) Server(name string) *Server {
	for _, s := range c.servers {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// WaitJetStream waits (up to a minute) until JetStream answers through the
// servers in via (all of them when nil): the cluster has a meta leader.
func (c *Cluster) WaitJetStream(t testing.TB, via []*Server) {
	t.Helper()
	if via == nil {
		via = c.servers
	}
	c.poll(t, "a JetStream meta leader", via, func(ctx context.Context, js jetstream.JetStream) (bool, error) {
		_, err := js.AccountInfo(ctx)
		return err == nil, err
	})
}

// StreamLeader waits (up to a minute) until stream has a leader, as the
// servers in via see it (all of them when nil), and returns it.
func (c *Cluster) StreamLeader(t testing.TB, stream string, via []*Server) *Server {
	t.Helper()
	if via == nil {
		via = c.servers
	}
	var leader *Server
	c.poll(t, "a leader of stream "+stream, via, func(ctx context.Context, js jetstream.JetStream) (bool, error) {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false, err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return false, err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return false, fmt.Errorf("no leader yet")
		}
		leader = c.Server(info.Cluster.Leader)
		return leader != nil, fmt.Errorf("leader %q is not a server of the cluster", info.Cluster.Leader)
	})
	return leader
}

// MetaLeader waits (up to a minute) until the servers in via (all of them
// when nil) agree on the cluster's JetStream meta leader, and returns it.
// The servers must serve monitoring: ClusterOptions.Args "-m", "-1".
func (c *Cluster) MetaLeader(t testing.TB, via []*Server) *Server {
	t.Helper()
	if via == nil {
		via = c.servers
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var names []string
		for _, s := range via {
			names = append(names, metaLeaderSeenBy(s))
		}
		if leader := c.Server(names[0]); leader != nil && !slices.ContainsFunc(names, func(n string) bool { return n != names[0] }) {
			return leader
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: the servers name no one meta leader within a minute: %q", names)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// metaLeaderSeenBy returns the name of the meta leader that s reports
// (/jsz), or "".
func metaLeaderSeenBy(s *Server) string {
	if s.MonitorURL() == "" {
		s.t.Fatal("natstest: the server has no monitoring port: start it with \"-m\", \"-1\"")
	}
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get(s.MonitorURL() + "/jsz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var jsz struct {
		Meta struct {
			Leader string `json:"leader"`
		} `json:"meta_cluster"`
	}
	if json.NewDecoder(resp.Body).Decode(&jsz) != nil {
		return ""
	}
	return jsz.Meta.Leader
}

// poll connects to the servers in via and calls check until it reports
// true, for at most a minute.
func (c *Cluster) poll(t testing.TB, what string, via []*Server, check func(context.Context, jetstream.JetStream) (bool, error)) {
	t.Helper()
	urls := make([]string, len(via))
	for i, s := range via {
		urls[i] = s.URL()
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatalf("natstest: connect to %s: %v", urls, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, err := check(ctx, js)
		cancel()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: no %s within a minute: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}
