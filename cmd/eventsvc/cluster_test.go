package main

// The cluster fault tests run several eventsvc processes (the built binary)
// as one service over one NATS cluster: three nats-server processes, or the
// embedded servers of three eventsvc processes joined into a cluster of
// their own. Under webhook load they lose the node that leads the stream,
// an eventsvc process, and a node that is cut off and comes back; then
// every acknowledged webhook is checked: found by id, and stored exactly
// once in a full read of the log, and every subscriber saw every event once,
// in order, whichever instance it ended up on. They take a minute or two
// each, so they run only when EVENTSVC_CLUSTER_TESTS is set (CI sets it).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
	"github.com/eventsvc/eventsvc/internal/natstest"
	"github.com/eventsvc/eventsvc/internal/stream"
	"github.com/eventsvc/eventsvc/internal/webhook"
)

// clusterTests skips a slow cluster test unless EVENTSVC_CLUSTER_TESTS is
// set.
func clusterTests(t *testing.T) {
	t.Helper()
	if os.Getenv("EVENTSVC_CLUSTER_TESTS") == "" {
		t.Skip("a slow cluster fault test (a minute or two): run it with EVENTSVC_CLUSTER_TESTS=1 go test -race -run Cluster ./cmd/eventsvc/ (CI sets it)")
	}
	binary(t)
}

// fleet is the eventsvc processes of one service and which of them are up.
type fleet struct {
	mu    sync.Mutex // protects procs and up
	procs []*process
	up    []bool
}

func newFleet(procs ...*process) *fleet {
	f := &fleet{procs: procs, up: make([]bool, len(procs))}
	for i := range f.up {
		f.up[i] = true
	}
	return f
}

// pick returns the i-th instance that is up, counting round, or -1.
func (f *fleet) pick(i int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ups []int
	for j, ok := range f.up {
		if ok {
			ups = append(ups, j)
		}
	}
	if len(ups) == 0 {
		return -1
	}
	return ups[i%len(ups)]
}

// first returns the first instance of order that is up, or -1.
func (f *fleet) first(order []int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, i := range order {
		if f.up[i] {
			return i
		}
	}
	return -1
}

func (f *fleet) proc(i int) *process {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs[i]
}

func (f *fleet) setUp(i int, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up[i] = up
}

// kill ends instance i at once (SIGKILL), as kill -9 would.
func (f *fleet) kill(t *testing.T, i int) {
	t.Helper()
	f.setUp(i, false)
	p := f.proc(i)
	p.cmd.Process.Kill()
	<-p.exited
}

// restart starts instance i again with its arguments and waits for it.
func (f *fleet) restart(t *testing.T, i int) {
	t.Helper()
	old := f.proc(i)
	p := launch(t, old.env, old.args...)
	p.waitStarted(t, 3*time.Minute)
	f.mu.Lock()
	f.procs[i], f.up[i] = p, true
	f.mu.Unlock()
}

// startAll launches every args at once (the members of a cluster wait for
// one another) and waits for them all.
func startAll(t *testing.T, args ...[]string) *fleet {
	t.Helper()
	procs := make([]*process, len(args))
	for i, a := range args {
		procs[i] = launch(t, nil, a...)
	}
	for _, p := range procs {
		p.waitStarted(t, 3*time.Minute)
	}
	return newFleet(procs...)
}

// startedEpoch returns the epoch that a process's "eventsvc started" line
// names.
func (p *process) startedEpoch() string {
	for _, line := range strings.Split(p.log(), "\n") {
		var rec struct{ Msg, Epoch string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "eventsvc started" {
			return rec.Epoch
		}
	}
	return ""
}

// leadsSince returns when the process's embedded server last logged that it
// became the stream's leader, or the zero time.
func (p *process) leadsSince() time.Time {
	var at time.Time
	for _, line := range strings.Split(p.log(), "\n") {
		var rec struct {
			Time time.Time
			Msg  string
		}
		if json.Unmarshal([]byte(line), &rec) == nil && strings.Contains(rec.Msg, "new stream leader for") && strings.Contains(rec.Msg, "EVENTS") {
			at = rec.Time
		}
	}
	return at
}

// ack is a webhook a sender got 200 for.
type ack struct {
	seq  uint64
	at   time.Time
	inst int // the instance that answered
}

// load posts distinct webhooks from several senders to the instances that
// are up, in turn; a sender retries a webhook that got 503 or no answer on
// the next instance, as Sociocs retries, until it is acknowledged.
type load struct {
	f    *fleet
	tmpl map[string]any

	mu       sync.Mutex // protects the fields below
	acked    map[string]ack
	times    []time.Time // of every 200
	refused  int         // 503 with Retry-After
	connErrs int
	bad      []string // answers a webhook must never get

	sent atomic.Int64
	stop chan struct{}
	wg   sync.WaitGroup
}

func startLoad(t *testing.T, f *fleet, senders int, pace time.Duration) *load {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "webhook", "testdata", "message_twlo.json"))
	if err != nil {
		t.Fatal(err)
	}
	l := &load{f: f, acked: make(map[string]ack), stop: make(chan struct{})}
	if err := json.Unmarshal(b, &l.tmpl); err != nil {
		t.Fatal(err)
	}
	for g := range senders {
		l.wg.Go(func() { l.send(g, pace) })
	}
	t.Cleanup(l.halt)
	return l
}

func (l *load) body(messageID string) []byte {
	m := make(map[string]any, len(l.tmpl))
	for k, v := range l.tmpl {
		m[k] = v
	}
	m["message_id"], m["text"] = messageID, "cluster test"
	b, _ := json.Marshal(m)
	return b
}

func (l *load) send(g int, pace time.Duration) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		case <-time.After(pace):
		}
		body := l.body(fmt.Sprintf("MMcluster-%d-%d", g, i))
		l.sent.Add(1)
		deadline := time.Now().Add(2 * time.Minute)
		for attempt := 0; ; attempt++ {
			inst := l.f.pick(g + attempt)
			if inst < 0 || time.Now().After(deadline) {
				l.note(fmt.Sprintf("webhook %d-%d was never acknowledged", g, i))
				break
			}
			o := postWebhook(client, "http://"+l.f.proc(inst).httpAddr+webhook.Path, body, nil)
			if l.record(o, inst) {
				break
			}
			time.Sleep(50 * time.Millisecond) // a sender's pause before it retries
		}
	}
}

// record notes what a sender saw, and reports whether the webhook was
// acknowledged.
func (l *load) record(o webhookOutcome, inst int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case o.code == http.StatusOK && o.err == nil && o.id != "" && o.sequence != 0:
		now := time.Now()
		l.times = append(l.times, now)
		if prev, ok := l.acked[o.id]; ok && prev.seq != o.sequence {
			l.bad = append(l.bad, fmt.Sprintf("%s acknowledged at sequence %d, then %d", o.id, prev.seq, o.sequence))
		} else if !ok {
			l.acked[o.id] = ack{seq: o.sequence, at: now, inst: inst}
		}
		return true
	case o.code == http.StatusServiceUnavailable && o.retryAfter != "":
		l.refused++
	case o.code == 0:
		l.connErrs++
	default:
		l.bad = append(l.bad, fmt.Sprintf("a webhook got %d (Retry-After %q, %v)", o.code, o.retryAfter, o.err))
	}
	return false
}

func (l *load) note(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad = append(l.bad, s)
}

// halt stops the senders once each has its current webhook acknowledged.
func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// ackedSince returns how many 200s were received since t.
func (l *load) ackedSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range slices.Backward(l.times) {
		if at.Before(t) {
			break
		}
		n++
	}
	return n
}

// waitAcked waits until n more webhooks are acknowledged from now.
func (l *load) waitAcked(t *testing.T, n int, what string) {
	t.Helper()
	since := time.Now()
	waitUntil(t, 2*time.Minute, fmt.Sprintf("%d webhooks acknowledged %s", n, what), func() bool { return l.ackedSince(since) >= n })
}

// outage returns the longest time without an acknowledged webhook that
// ended after t (the fault), and the 503s and connection errors so far.
func (l *load) outage(t time.Time) (longest time.Duration, refused, connErrs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	times := slices.Clone(l.times)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(times); i++ {
		if times[i].After(t) {
			longest = max(longest, times[i].Sub(times[i-1]))
		}
	}
	return longest, l.refused, l.connErrs
}

func (l *load) snapshot() map[string]ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]ack, len(l.acked))
	for k, v := range l.acked {
		out[k] = v
	}
	return out
}

// waitUntil polls cond every few milliseconds until it holds, for at most d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// follower is a subscriber of every event, from the earliest, on the first
// instance of its order that is up. When its stream ends it resumes from
// its cursor, on the same instance or, if that is down, on the next.
type follower struct {
	name  string
	f     *fleet
	order []int

	mu      sync.Mutex // protects the fields below
	epoch   string
	last    uint64
	ids     []string // ids[seq-1]
	on      []int    // the instances it streamed from, in turn
	ends    []string // how its streams ended
	faults  []string // gaps, duplicates, wrong positions
	stopped chan struct{}
}

func startFollower(t *testing.T, ctx context.Context, f *fleet, name string, order ...int) *follower {
	fl := &follower{name: name, f: f, order: order, stopped: make(chan struct{})}
	go fl.run(ctx)
	t.Cleanup(func() { <-fl.stopped })
	return fl
}

func (fl *follower) run(ctx context.Context) {
	defer close(fl.stopped)
	for ctx.Err() == nil {
		inst := fl.f.first(fl.order)
		if inst < 0 {
			time.Sleep(100 * time.Millisecond) // nothing is up: try again
			continue
		}
		err := fl.stream(ctx, inst)
		fl.mu.Lock()
		if ctx.Err() == nil {
			fl.ends = append(fl.ends, fmt.Sprintf("%d:%s", inst, status.Code(err)))
			switch status.Code(err) {
			case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
			default:
				fl.faults = append(fl.faults, fmt.Sprintf("the stream on instance %d ended with %v", inst, err))
			}
			if after, epoch, ok := stream.ResumeCursor(err); ok && (after != fl.last || epoch != fl.epoch) {
				fl.faults = append(fl.faults, fmt.Sprintf("told to resume after %d@%s, having received up to %d@%s", after, epoch, fl.last, fl.epoch))
			}
		}
		fl.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // a client's pause before it resumes
		}
	}
}

// stream runs one StreamEvents call on instance inst, from the cursor.
func (fl *follower) stream(ctx context.Context, inst int) error {
	conn, err := grpc.NewClient(fl.f.proc(inst).grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	fl.mu.Lock()
	req := &eventsv1.StreamEventsRequest{FromEarliest: true}
	if fl.epoch != "" {
		after := fl.last
		req = &eventsv1.StreamEventsRequest{AfterSequence: &after, Epoch: fl.epoch}
	}
	fl.on = append(fl.on, inst)
	fl.mu.Unlock()
	st, err := eventsv1.NewEventServiceClient(conn).StreamEvents(ctx, req)
	if err != nil {
		return err
	}
	for {
		m, err := st.Recv()
		if err != nil {
			return err
		}
		fl.mu.Lock()
		if fl.epoch == "" {
			fl.epoch = m.GetEpoch()
		} else if m.GetEpoch() != fl.epoch {
			fl.faults = append(fl.faults, fmt.Sprintf("epoch %q on instance %d, %q before", m.GetEpoch(), inst, fl.epoch))
		}
		if ev := m.GetEvent(); ev != nil {
			if ev.GetSequence() != fl.last+1 {
				fl.faults = append(fl.faults, fmt.Sprintf("event %d after %d on instance %d", ev.GetSequence(), fl.last, inst))
			}
			fl.last = ev.GetSequence()
			fl.ids = append(fl.ids, ev.GetId())
		}
		if hb := m.GetHeartbeat(); hb != nil && hb.GetLastSequence() > fl.last {
			fl.faults = append(fl.faults, fmt.Sprintf("a heartbeat at %d after event %d on instance %d", hb.GetLastSequence(), fl.last, inst))
		}
		fl.mu.Unlock()
	}
}

func (fl *follower) position() uint64 {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.last
}

// instances returns the instances the follower streamed from.
func (fl *follower) instances() []int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return slices.Clone(fl.on)
}

// grpcClient returns a client of instance i (as it is now).
func grpcClient(t *testing.T, f *fleet, i int) eventsv1.EventServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(f.proc(i).grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return eventsv1.NewEventServiceClient(conn)
}

// readAll lists the whole log through c, oldest first: the id of each
// sequence, and the message ids of the events. It returns the status of a
// call that failed.
func readAll(ctx context.Context, c eventsv1.EventServiceClient) (ids []string, messageIDs map[string]bool, err error) {
	messageIDs = make(map[string]bool)
	var token string
	for {
		resp, err := c.ListEvents(ctx, &eventsv1.ListEventsRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, nil, err
		}
		for _, ev := range resp.GetEvents() {
			if ev.GetSequence() != uint64(len(ids)+1) {
				return nil, nil, fmt.Errorf("the log lists sequence %d after %d", ev.GetSequence(), len(ids))
			}
			ids = append(ids, ev.GetId())
			messageIDs[ev.GetMessageId()] = true
		}
		if token = resp.GetNextPageToken(); token == "" {
			return ids, messageIDs, nil
		}
	}
}

// checkAcked checks the log, read through instance i, against the
// acknowledged webhooks: each is stored exactly once, where it was
// acknowledged, and the log holds nothing else; each is found by id through
// the instances that are up. It returns the log's ids. A read that fails
// with UNAVAILABLE (a replica catching up, the id index being built) is
// tried again; one that answers must be complete.
func checkAcked(t *testing.T, ctx context.Context, f *fleet, i int, acked map[string]ack) (ids []string, messageIDs map[string]bool) {
	t.Helper()
	c := grpcClient(t, f, i)
	waitUntil(t, time.Minute, fmt.Sprintf("a full read of the log through instance %d", i), func() bool {
		var err error
		ids, messageIDs, err = readAll(ctx, c)
		if status.Code(err) == codes.Unavailable {
			return false
		}
		if err != nil {
			t.Fatalf("reading the log through instance %d: %v", i, err)
		}
		return true
	})
	where := make(map[string]int, len(ids))
	for j, id := range ids {
		if prev, dup := where[id]; dup {
			t.Errorf("%s is stored twice, at %d and %d", id, prev+1, j+1)
		}
		where[id] = j
	}
	for id, a := range acked {
		if j, ok := where[id]; !ok || uint64(j+1) != a.seq {
			t.Errorf("through instance %d the full read has %s at %d (found %v), acknowledged at %d", i, id, j+1, ok, a.seq)
		}
	}
	if len(ids) != len(acked) {
		t.Errorf("through instance %d the log holds %d events, %d webhooks were acknowledged", i, len(ids), len(acked))
	}
	// By id, through every instance that is up.
	clients := map[int]eventsv1.EventServiceClient{}
	n := 0
	for id, a := range acked {
		j := f.pick(n)
		n++
		if clients[j] == nil {
			clients[j] = grpcClient(t, f, j)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			got, err := clients[j].GetEvent(ctx, &eventsv1.GetEventRequest{Id: id})
			if status.Code(err) == codes.Unavailable && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond) // the id index catches up: try again
				continue
			}
			if err != nil || got.GetEvent().GetSequence() != a.seq {
				t.Fatalf("GetEvent %s through instance %d: %v %v, acknowledged at %d", id, j, got.GetEvent().GetSequence(), err, a.seq)
			}
			break
		}
	}
	return ids, messageIDs
}

// listWithin is how soon after a new stream leader's election every
// instance must list every acknowledged webhook.
const listWithin = 10 * time.Second

// listsEverything polls ListEvents through each of insts at once until it
// lists every webhook acknowledged before the call, each at the sequence
// it was acknowledged with; it fails the test if an instance has not
// within listWithin of elected, when the stream's new leader was elected,
// and logs how long each took.
func listsEverything(t *testing.T, ctx context.Context, f *fleet, l *load, elected time.Time, insts ...int) {
	t.Helper()
	deadline := elected.Add(listWithin)
	outcomes := make([]string, len(insts))
	failed := make([]bool, len(insts))
	var wg sync.WaitGroup
	for k, i := range insts {
		c := grpcClient(t, f, i)
		wg.Go(func() {
			attempts := 0
			for {
				attempts++
				acked := l.snapshot()
				cctx, cancel := context.WithDeadline(ctx, deadline)
				ids, _, err := readAll(cctx, c)
				cancel()
				if err == nil {
					err = listsAcked(ids, acked)
				}
				if err == nil {
					outcomes[k] = fmt.Sprintf("instance %d listed all %d acknowledged webhooks %s after the election (%d attempts)",
						i, len(acked), time.Since(elected).Round(time.Millisecond), attempts)
					return
				}
				if time.Now().After(deadline) {
					outcomes[k] = fmt.Sprintf("instance %d did not list every acknowledged webhook within %s of the election (%d attempts); the last: %v",
						i, listWithin, attempts, err)
					failed[k] = true
					return
				}
				time.Sleep(20 * time.Millisecond) // polling interval
			}
		})
	}
	wg.Wait()
	for k, o := range outcomes {
		if failed[k] {
			t.Error(o)
		} else {
			t.Log(o)
		}
	}
}

// listsAcked checks that a listing of the log (the id of each sequence)
// has every webhook of acked at the sequence it was acknowledged with.
func listsAcked(ids []string, acked map[string]ack) error {
	for id, a := range acked {
		if a.seq > uint64(len(ids)) || ids[a.seq-1] != id {
			return fmt.Errorf("the listing of %d events lacks %s, acknowledged at %d", len(ids), id, a.seq)
		}
	}
	return nil
}

// awaitNewLeader waits until a server of c other than old leads the stream
// EVENTS, as the servers see it, and returns it and when it was first
// seen: within a poll of its election.
func awaitNewLeader(t *testing.T, c *natstest.Cluster, old *natstest.Server) (*natstest.Server, time.Time) {
	t.Helper()
	var urls []string
	for _, s := range c.Servers() {
		if s != old {
			urls = append(urls, s.URL())
		}
	}
	conn, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	js, err := jetstream.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	var leader *natstest.Server
	waitUntil(t, time.Minute, "a new leader of the stream", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		s, err := js.Stream(ctx, "EVENTS")
		if err != nil {
			return false
		}
		if info := s.CachedInfo(); info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != old.Name() {
			leader = c.Server(info.Cluster.Leader)
		}
		return leader != nil
	})
	return leader, time.Now()
}

// checkFollowers waits until every follower has every event of ids, and
// checks that it got exactly those, in order.
func checkFollowers(t *testing.T, ids []string, fls ...*follower) {
	t.Helper()
	for _, fl := range fls {
		waitUntil(t, 2*time.Minute, fmt.Sprintf("follower %s to reach sequence %d", fl.name, len(ids)), func() bool { return fl.position() >= uint64(len(ids)) })
		fl.mu.Lock()
		for _, fault := range fl.faults {
			t.Errorf("follower %s: %s", fl.name, fault)
		}
		if !slices.Equal(fl.ids[:len(ids)], ids) {
			t.Errorf("follower %s received other events than the log holds", fl.name)
		}
		t.Logf("follower %s streamed from instances %v; its streams ended %v", fl.name, fl.on, fl.ends)
		fl.mu.Unlock()
	}
}

// crossLookups checks that acknowledged webhooks are found at once by id
// through another instance than the one that stored them.
func crossLookups(t *testing.T, ctx context.Context, f *fleet, acked map[string]ack, n int) {
	t.Helper()
	for id, a := range acked {
		if n--; n < 0 {
			return
		}
		j := f.pick(a.inst + 1)
		got, err := grpcClient(t, f, j).GetEvent(ctx, &eventsv1.GetEventRequest{Id: id})
		if err != nil || got.GetEvent().GetSequence() != a.seq {
			t.Fatalf("GetEvent %s, stored through instance %d, through instance %d: %v %v", id, a.inst, j, got, err)
		}
	}
}

// checkDedupeAcrossInstances posts one webhook to two instances: one event.
func checkDedupeAcrossInstances(t *testing.T, l *load, f *fleet, a, b int) {
	t.Helper()
	body := l.body(fmt.Sprintf("MMcluster-dedupe-%d", time.Now().UnixNano()))
	first := postWebhook(http.DefaultClient, "http://"+f.proc(a).httpAddr+webhook.Path, body, nil)
	second := postWebhook(http.DefaultClient, "http://"+f.proc(b).httpAddr+webhook.Path, body, nil)
	if first.code != http.StatusOK || second.code != http.StatusOK || first.id != second.id || first.sequence != second.sequence {
		t.Fatalf("one webhook through instances %d and %d: %+v and %+v, want one event", a, b, first, second)
	}
	l.record(first, a)
}

// report logs a fault's figures.
func report(t *testing.T, what string, l *load, at time.Time) {
	t.Helper()
	longest, refused, connErrs := l.outage(at)
	t.Logf("%s: longest time without an acknowledged webhook %s; so far %d webhooks sent, %d answered 503 with Retry-After, %d without an answer",
		what, longest.Round(time.Millisecond), l.sent.Load(), refused, connErrs)
}

func checkLoad(t *testing.T, l *load) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bad {
		t.Error(b)
	}
}

// TestClusterExternalNATS runs three eventsvc processes over a cluster of
// three nats-server processes, the stream at three replicas: A and B reach
// every node, C only n3. Under load it kills the node that leads the stream
// (acknowledged webhooks survive, webhooks get 503 meanwhile, subscribers go
// on without gap or duplicate), then eventsvc B (its subscriber resumes on
// another instance), then cuts n3 off (nothing is acknowledged through C)
// and brings it back (a read through C sees every acknowledged webhook).
func TestClusterExternalNATS(t *testing.T) {
	clusterTests(t)
	nc := natstest.StartCluster(t, natstest.ClusterOptions{})
	n3 := nc.Server("n3")
	common := []string{"--replicas", "3", "--stream-token-secret", "a secret shared by the instances", "--readiness-interval", "100ms"}
	f := startAll(t,
		append([]string{"--nats-url", nc.URLs(), "--data-dir", t.TempDir()}, common...),
		append([]string{"--nats-url", nc.URLs(), "--data-dir", t.TempDir()}, common...),
		append([]string{"--nats-url", n3.URL(), "--data-dir", t.TempDir()}, common...))
	if a, b, c := f.proc(0).startedEpoch(), f.proc(1).startedEpoch(), f.proc(2).startedEpoch(); a == "" || a != b || a != c {
		t.Fatalf("the instances report epochs %q, %q and %q", a, b, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fls := []*follower{
		startFollower(t, ctx, f, "on A", 0, 1, 2),
		startFollower(t, ctx, f, "on B", 1, 0, 2),
		startFollower(t, ctx, f, "on C", 2, 0, 1),
	}
	l := startLoad(t, f, 6, 20*time.Millisecond)
	l.waitAcked(t, 100, "at first")
	checkDedupeAcrossInstances(t, l, f, 0, 2)
	crossLookups(t, ctx, f, l.snapshot(), 50)

	// 1. kill -9 of the node that leads the stream: every instance that
	// reaches another node lists every acknowledged webhook soon after the
	// election (C reaches n3 alone).
	leader := nc.StreamLeader(t, "EVENTS", nil)
	killed := time.Now()
	leader.Kill()
	t.Logf("killed %s, the stream's leader", leader.Name())
	next, elected := awaitNewLeader(t, nc, leader)
	t.Logf("%s leads the stream %s after the kill", next.Name(), elected.Sub(killed).Round(time.Millisecond))
	listers := []int{0, 1}
	if leader != n3 {
		listers = append(listers, 2)
	}
	listsEverything(t, ctx, f, l, elected, listers...)
	l.waitAcked(t, 200, "after the stream's leader was killed")
	report(t, "nats-server cluster, stream leader killed", l, killed)
	leader.Restart()
	nc.StreamLeader(t, "EVENTS", nil)

	// 2. kill -9 of eventsvc B: its subscriber resumes on A.
	f.kill(t, 1)
	killedB := time.Now()
	l.waitAcked(t, 100, "after eventsvc B was killed")
	report(t, "nats-server cluster, eventsvc instance killed", l, killedB)
	waitUntil(t, time.Minute, "B's subscriber to resume on another instance", func() bool {
		on := fls[1].instances()
		return on[len(on)-1] != 1
	})

	// 3. n3 cut off from the cluster: C, which reaches n3 alone, cannot
	// acknowledge a webhook, nor be ready.
	if leader := nc.StreamLeader(t, "EVENTS", nil); leader == n3 {
		t.Logf("n3 leads the stream as it is cut off")
	}
	cut := time.Now()
	n3.Isolate()
	var probes sync.WaitGroup
	probeIDs := make([]string, 10)
	for i := range probeIDs {
		probeIDs[i] = fmt.Sprintf("MMcluster-cut-%d", i)
		probes.Go(func() {
			o := postWebhook(&http.Client{Timeout: 30 * time.Second}, "http://"+f.proc(2).httpAddr+webhook.Path, l.body(probeIDs[i]), nil)
			if o.code != http.StatusServiceUnavailable || o.retryAfter == "" {
				l.note(fmt.Sprintf("a webhook through the instance cut off got %d (%v), want 503 with Retry-After", o.code, o.err))
			}
		})
	}
	probes.Wait()
	waitUntil(t, time.Minute, "C not to be ready", func() bool {
		resp, err := http.Get("http://" + f.proc(2).httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	l.waitAcked(t, 200, "through A while n3 is cut off")
	report(t, "nats-server cluster, a node cut off", l, cut)
	l.halt()
	acked := l.snapshot()

	// n3 comes back: a read through C sees every acknowledged webhook.
	n3.Restart()
	ids, messageIDs := checkAcked(t, ctx, f, 2, acked)
	checkAcked(t, ctx, f, 0, acked)
	checkFollowers(t, ids, fls...)
	checkLoad(t, l)
	for _, id := range probeIDs {
		if messageIDs[id] {
			t.Errorf("message %s, refused while C was cut off, is in the log", id)
		}
	}
	t.Logf("%d webhooks acknowledged, each stored once", len(acked))
}

// TestClusterEmbedded runs three eventsvc processes whose embedded servers
// form the cluster, the stream at three replicas. Under load it kills the
// process whose server leads the stream (acknowledged webhooks survive,
// webhooks get 503 meanwhile, its subscriber resumes on another instance)
// and starts it again; then it stops the process whose server leads the
// stream (SIGSTOP) while the others go on, and continues it: a read through
// it sees every acknowledged webhook.
func TestClusterEmbedded(t *testing.T) {
	clusterTests(t)
	const n = 3
	var routes []string
	ports := make([]int, n)
	for i := range ports {
		ports[i] = natstest.FreePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	args := make([][]string, n)
	for i := range args {
		args[i] = []string{"--data-dir", t.TempDir(), "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"--cluster-peers", strings.Join(routes, ","), "--node-name", fmt.Sprintf("node%d", i+1), "--replicas", "3",
			"--stream-token-secret", "a secret shared by the instances", "--readiness-interval", "100ms"}
	}
	f := startAll(t, args...)
	if a, b, c := f.proc(0).startedEpoch(), f.proc(1).startedEpoch(), f.proc(2).startedEpoch(); a == "" || a != b || a != c {
		t.Fatalf("the instances report epochs %q, %q and %q", a, b, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fls := []*follower{
		startFollower(t, ctx, f, "on 1", 0, 1, 2),
		startFollower(t, ctx, f, "on 2", 1, 2, 0),
		startFollower(t, ctx, f, "on 3", 2, 0, 1),
	}
	l := startLoad(t, f, 6, 20*time.Millisecond)
	l.waitAcked(t, 100, "at first")
	checkDedupeAcrossInstances(t, l, f, 0, 1)
	crossLookups(t, ctx, f, l.snapshot(), 50)

	// 1. kill -9 of the process whose server leads the stream: the
	// others list every acknowledged webhook soon after the election.
	leader := streamLeaderProcess(t, f)
	killed := time.Now()
	f.kill(t, leader)
	t.Logf("killed process %d, whose server led the stream", leader+1)
	var elected time.Time
	waitUntil(t, time.Minute, "a new leader of the stream in the logs", func() bool {
		for i := range f.procs {
			if at := f.proc(i).leadsSince(); i != leader && at.After(killed) {
				elected = at
				return true
			}
		}
		return false
	})
	t.Logf("a new leader of the stream was elected %s after the kill", elected.Sub(killed).Round(time.Millisecond))
	var survivors []int
	for i := range f.procs {
		if i != leader {
			survivors = append(survivors, i)
		}
	}
	listsEverything(t, ctx, f, l, elected, survivors...)
	l.waitAcked(t, 200, "after the stream's leader was killed")
	report(t, "embedded cluster, process of the stream leader killed", l, killed)
	waitUntil(t, time.Minute, "the killed process's subscriber to resume on another instance", func() bool {
		on := fls[leader].instances()
		return on[len(on)-1] != leader
	})
	f.restart(t, leader)
	l.waitAcked(t, 100, "with the killed process back")

	// 2. the process whose server leads the stream stopped, then
	// continued: it comes back believing it leads.
	paused := streamLeaderProcess(t, f)
	t.Logf("stopping process %d, whose server leads the stream", paused+1)
	f.setUp(paused, false)
	p := f.proc(paused)
	stopped := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGCONT) })
	l.waitAcked(t, 200, "while a process is stopped")
	report(t, "embedded cluster, process of the stream leader stopped", l, stopped)
	l.halt()
	acked := l.snapshot()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	f.setUp(paused, true)
	ids, _ := checkAcked(t, ctx, f, paused, acked)
	checkFollowers(t, ids, fls...)
	checkLoad(t, l)
	t.Logf("%d webhooks acknowledged, each stored once", len(acked))
}

// streamLeaderProcess returns the instance whose embedded server became the
// stream's leader last.
func streamLeaderProcess(t *testing.T, f *fleet) int {
	t.Helper()
	leader := -1
	waitUntil(t, time.Minute, "a stream leader in the logs", func() bool {
		var latest time.Time
		for i := range f.procs {
			if at := f.proc(i).leadsSince(); at.After(latest) {
				latest, leader = at, i
			}
		}
		return leader >= 0
	})
	return leader
}
