package stream

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// senderLinger is how long a sender goroutine that has sent events waits for
// more before it exits, so that an idle stream costs one goroutine (its
// handler), not two, and a busy one does not start a goroutine per event.
const senderLinger = 5 * time.Second

// stopWait bounds how long a handler that is ending waits for its sender to
// finish a send in progress. A sender blocked by a client that stopped
// reading is abandoned: ending the RPC closes the stream and fails its send.
const stopWait = 250 * time.Millisecond

// live serves sub from the hub until the client goes away, sub overflows,
// or the hub stops.
//
// Two goroutines share the work so that a client that stops reading cannot
// pin its stream: the handler goroutine (this one) decides when the stream
// ends; a sender goroutine, started when there is something to send and gone
// after senderLinger of idleness, does the blocking sends. When the sender is
// stuck in flow control, the handler can still end the RPC, which fails the
// stuck send. While the sender runs, the hub wakes it directly, so a delivery
// costs one goroutine wake-up.
func (s *Service) live(ctx context.Context, client string, sub *subscriber, c *cursor, out grpc.ServerStreamingServer[eventsv1.StreamEventsResponse]) error {
	snd := &sender{out: out, sub: sub, obs: s.opts.Observer, stop: make(chan struct{}), done: make(chan error, 1)}
	snd.last.Store(c.last)
	running := false
	// stopSender must be called before the stream ends, and before snd.last
	// is read for the final status, so that a send in progress counts. (A
	// sender stuck past stopWait is abandoned; should its send still go
	// through, the client gets that event again when it resumes.)
	stopSender := func() {
		close(snd.stop)
		if running {
			sub.wake() // the sender may be waiting for an event
			select {
			case <-snd.done:
			case <-time.After(stopWait):
			}
		}
	}
	end := func(err error) error {
		stopSender()
		return err
	}
	tick := time.NewTicker(s.opts.Heartbeat)
	defer tick.Stop()
	lastBeat := time.Now()
	for {
		// While the sender runs, it (not this goroutine) consumes notify.
		notify := sub.notify
		if running {
			notify = nil
		}
		select {
		case <-ctx.Done():
			return end(toStatus(ctx.Err()))
		case <-s.hub.Done():
			stopSender()
			return shuttingDown(snd.last.Load(), c.epoch)
		case <-sub.evicted:
			s.opts.Observer.SubscriberEvicted(client)
			stopSender()
			last := snd.last.Load()
			s.log.Warn("subscriber fell behind; ending its stream", "buffer", sub.max, "resume_after", last)
			return resumeStatus(codes.ResourceExhausted, "slow_consumer",
				fmt.Sprintf("the stream fell more than %d events behind the log and was ended", sub.max), last, c.epoch)
		case <-notify:
			running = true
			go snd.run()
		case err := <-snd.done:
			running = false
			if err != nil {
				return end(err)
			}
			if sub.pending() > 0 {
				running = true
				go snd.run()
			}
		case now := <-tick.C:
			// A heartbeat when nothing was sent for a whole period.
			if now.Sub(time.Unix(0, snd.lastSend.Load())) < s.opts.Heartbeat || now.Sub(lastBeat) < s.opts.Heartbeat {
				continue
			}
			head := s.hub.Head()
			if sub.pending() > 0 {
				continue
			}
			// Nothing queued when head was read: everything up to head that
			// matched has been sent, so head is a safe resume cursor.
			if err := sub.pushHeartbeat(now, head, c.epoch); err != nil {
				return end(toStatus(err))
			}
			lastBeat = now
			if !running {
				running = true
				go snd.run()
			}
		}
	}
}

// sender drains a subscriber's queue into its stream.
type sender struct {
	out  grpc.ServerStreamingServer[eventsv1.StreamEventsResponse]
	sub  *subscriber
	obs  Observer
	stop chan struct{} // closed by the handler: send nothing more
	done chan error    // capacity 1: run's result
	// last is the resume cursor: the greatest sequence known delivered
	// (events sent, and heartbeat positions). Written by run, read by the
	// handler.
	last atomic.Uint64
	// lastSend is when run last sent something (Unix nanoseconds).
	lastSend atomic.Int64
}

func (s *sender) run() {
	var batch []*wire
	// Between events the sender waits on notify alone: a receive from one
	// channel costs much less than a select over notify, stop and a timer,
	// and it is paid for every event. So the handler wakes it after closing
	// stop, and the linger timer wakes it when it fires. The timer is not
	// reset after every send either: when it fires, it is re-armed for what
	// is left of senderLinger since the last send.
	var lingered atomic.Bool
	linger := time.AfterFunc(senderLinger, func() {
		lingered.Store(true)
		s.sub.wake()
	})
	defer linger.Stop()
	active := time.Now()
	sentEvents := false
	for {
		batch = s.sub.take(batch)
		if len(batch) == 0 {
			// A sender that has sent only heartbeats does not linger: on
			// an idle stream it would be a second goroutine for a third of
			// the time (senderLinger of every Heartbeat).
			if s.stopped() || !sentEvents {
				s.done <- nil
				return
			}
			if lingered.Load() {
				rest := senderLinger - time.Since(active)
				if rest <= 0 {
					s.done <- nil
					return
				}
				lingered.Store(false)
				linger.Reset(rest)
			}
			<-s.sub.notify
			continue
		}
		events := 0
		for i, w := range batch {
			select {
			case <-s.stop:
				s.obs.EventsDelivered(events)
				s.done <- nil
				return
			default:
			}
			if err := s.out.SendMsg(w); err != nil {
				s.obs.EventsDelivered(events)
				s.done <- err
				return
			}
			if w.cursor > s.last.Load() {
				s.last.Store(w.cursor)
			}
			if w.event {
				events++
			}
			batch[i] = nil
		}
		sentEvents = sentEvents || events > 0
		s.obs.EventsDelivered(events)
		active = time.Now()
		s.lastSend.Store(active.UnixNano())
	}
}

// stopped reports whether the handler has told the sender to stop.
func (s *sender) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}
