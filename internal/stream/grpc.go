package stream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/eventsvc/eventsvc/gen/sociocs/events/v1"
)

// StreamEvents implements EventService.StreamEvents over gRPC: Subscribe
// with the gRPC stream as the sink. Serve it with ServerOptions, which make
// a send that the client does not take cut short (see grpcSink).
func (s *Service) StreamEvents(req *eventsv1.StreamEventsRequest, out grpc.ServerStreamingServer[eventsv1.StreamEventsResponse]) error {
	sink := newGRPCSink(out, s.grpc, s.opts.WriteTimeout)
	defer sink.close()
	return s.Subscribe(out.Context(), req, sink)
}

// grpcSink sends a stream's messages with SendMsg. It is a transport like
// any other to the core: it uses only what the core offers every sink (it
// is a Watcher and an Interrupter, and encodes in the Service's gRPC
// Format).
//
// grpc-go's SendMsg blocks while the client's flow-control window is full
// and has no deadline of its own; what unblocks it is the end of the
// stream's context, which the transport watches. ServerOptions's tap handle
// gives every StreamEvents call a context that the sink can cancel: the
// watchdog does so when a send has made no progress for the write timeout,
// and Interrupt at the end of a shutdown's grace period. The message being
// sent is then not queued to the transport, so the last message whose
// SendMsg succeeded is exactly the last the client gets.
//
// A SendMsg that fails makes grpc-go end the stream at once with
// CANCELLED, ahead of the handler's own status. So that the client still
// learns why and where to resume, Interrupt first sets, as trailer metadata,
// the status details the handler would have sent, under CANCELLED (the one
// code grpc-go then accepts with them). A send that completes as the cut
// comes (grpc-go may still take it) ends Send at once: no SendMsg follows a
// cut, and the handler's own status, exact and with details, replaces the
// trailer's. Who cuts ends the stream first (stall, or the shutdown before
// Interrupt), so that the handler always has such a status to return.
type grpcSink struct {
	out     grpc.ServerStream
	format  *Format[*grpcMessage]
	cancel  context.CancelFunc // nil without the tap handle: sends cannot be cut short
	timeout time.Duration
	// watchdog checks, every timeout while sends are in progress, that they
	// progress; it is armed by the first send after it stopped, not for
	// every send.
	watchdog *time.Timer
	watching atomic.Bool   // the watchdog is armed
	busy     atomic.Bool   // a Send is in progress
	progress atomic.Uint64 // messages sent, ever
	seen     atomic.Uint64 // progress when the watchdog last looked

	// st is the stream, set by Watch before the first send.
	st Stream
	// sent is the cursor of the last message SendMsg took (0: none yet).
	sent atomic.Uint64
	// cut is set once the sink was interrupted: no SendMsg is attempted
	// after, so the trailer's resume position stays exact.
	cut     atomic.Bool
	stalled atomic.Bool
	once    sync.Once
}

func newGRPCSink(out grpc.ServerStream, format *Format[*grpcMessage], timeout time.Duration) *grpcSink {
	g := &grpcSink{out: out, format: format, timeout: timeout}
	g.cancel, _ = out.Context().Value(cancelKey{}).(context.CancelFunc)
	if g.cancel != nil {
		g.watchdog = time.AfterFunc(timeout, g.check)
		g.watchdog.Stop()
	}
	return g
}

// Watch is told the stream the sink serves, before the first send.
func (g *grpcSink) Watch(st Stream) { g.st = st }

func (g *grpcSink) Send(msgs []*Message) (int, error) {
	g.busy.Store(true)
	defer g.busy.Store(false)
	g.watch()
	for i, m := range msgs {
		if g.cut.Load() {
			return i, g.cutErr()
		}
		if err := g.out.SendMsg(g.wire(m)); err != nil {
			if g.cut.Load() {
				return i, g.cutErr()
			}
			return i, err
		}
		g.progress.Add(1)
		if c := m.Cursor(); c > g.sent.Load() {
			g.sent.Store(c)
		}
		// A cut that came while this send completed (grpc-go may take a
		// message even as its context ends) read sent before it moved: the
		// trailer may be one behind. Stop here, so that the handler returns
		// the stream's status, exact and with details, which replaces it.
		if g.cut.Load() {
			return i + 1, g.cutErr()
		}
	}
	return len(msgs), nil
}

// grpcMessage is a Message's encoding for gRPC (see newGRPCFormat), shared
// by every stream that sends it: its protobuf bytes as the one buffer the
// codec hands the transport, and, for an event, the frame that the first
// stream to send it prepared (grpc.PreparedMsg saves every other send the
// framing and its allocations). The frame is prepared on a stream, not by
// the Format's encoder, because grpc.PreparedMsg takes its codec and
// compressor from a stream.
type grpcMessage struct {
	pb       mem.BufferSlice
	prepared atomic.Pointer[grpc.PreparedMsg]
}

// newGRPCFormat returns the Format in which a Service's gRPC streams send
// messages: each Message is wrapped for gRPC once, however many streams
// send it. Its encoder cannot fail.
func newGRPCFormat() *Format[*grpcMessage] {
	return NewFormat(func(m *Message) (*grpcMessage, error) {
		// A SliceBuffer does not return its bytes to a pool when freed, so
		// the shared bytes are never recycled under another subscriber.
		return &grpcMessage{pb: mem.BufferSlice{mem.SliceBuffer(m.Protobuf())}}, nil
	})
}

// wire is what SendMsg is given for m: an event as a grpc.PreparedMsg,
// framed once for every stream that sends it, or m's grpcMessage, which the
// codec sends as its protobuf bytes.
func (g *grpcSink) wire(m *Message) any {
	w, _ := g.format.Encode(m) // the encoder cannot fail
	if m.Kind() != KindEvent || !sharePrepared {
		return w
	}
	if p := w.prepared.Load(); p != nil {
		return p
	}
	p := new(grpc.PreparedMsg)
	if err := p.Encode(g.out, w); err != nil {
		return w
	}
	w.prepared.CompareAndSwap(nil, p)
	return w.prepared.Load()
}

// sharePrepared: a PreparedMsg framed on one stream may be sent on another
// only when neither compresses. No compressor is linked into this server
// (grpc-go compresses a response as its request was compressed, and refuses
// a request compressed with a codec it does not know); should one ever be,
// events are framed per send as for any message.
var sharePrepared = encoding.GetCompressor("gzip") == nil

// watch arms the watchdog if it is not armed: one timer reset per idle
// period, not per send.
func (g *grpcSink) watch() {
	if g.cancel == nil || !g.watching.CompareAndSwap(false, true) {
		return
	}
	g.seen.Store(g.progress.Load())
	g.watchdog.Reset(g.timeout)
}

// check runs every timeout while sends are in progress: a send that made no
// progress since the last check (between one and two timeouts) is cut
// short; otherwise it looks again later, or stops when no send is in
// progress.
func (g *grpcSink) check() {
	if !g.busy.Load() {
		g.watching.Store(false)
		// A send that began meanwhile found the watchdog armed: arm it.
		if g.busy.Load() && g.watching.CompareAndSwap(false, true) {
			g.seen.Store(g.progress.Load())
			g.watchdog.Reset(g.timeout)
		}
		return
	}
	if p := g.progress.Load(); p != g.seen.Load() {
		g.seen.Store(p)
		g.watchdog.Reset(g.timeout)
		return
	}
	g.stall()
}

func (g *grpcSink) cutErr() error {
	if g.stalled.Load() {
		return ErrStalled
	}
	return errInterrupted
}

// errInterrupted is a send cut short by Service.Interrupt.
var errInterrupted = errors.New("stream: send interrupted")

// stall interrupts a send that made no progress for the write timeout.
func (g *grpcSink) stall() {
	// The stream ends first, so that however the send turns out, the
	// handler returns a status with the exact position.
	g.st.Stall()
	g.stalled.Store(true)
	g.Interrupt()
}

// Interrupt cuts short the send in progress (and any later one), leaving
// the client the status details of the stream's ending with the resume
// position. It may be called from any goroutine, more than once.
func (g *grpcSink) Interrupt() {
	if g.cancel == nil || !g.cut.CompareAndSwap(false, true) {
		return
	}
	if err := g.st.Status(g.sent.Load()); err != nil {
		// The details of the stream's own status, under the one code that
		// grpc-go accepts with them after a failed send.
		st := status.Convert(err).Proto()
		st.Code = int32(codes.Canceled)
		if b, err := proto.Marshal(st); err == nil {
			g.out.SetTrailer(metadata.Pairs(statusDetailsTrailer, string(b)))
		}
	}
	g.cancel()
}

// statusDetailsTrailer is where gRPC carries a status's details.
const statusDetailsTrailer = "grpc-status-details-bin"

func (g *grpcSink) close() {
	g.once.Do(func() {
		if g.watchdog != nil {
			g.watchdog.Stop()
		}
	})
}

// cancelKey carries the cancel function of a StreamEvents call's context.
type cancelKey struct{}

// interruptibleStreams is the tap handle that gives each StreamEvents call a
// context of its own to cancel. grpc-go makes the tap's context the
// stream's, the one its flow control waits on.
func interruptibleStreams(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != eventsv1.EventService_StreamEvents_FullMethodName {
		return ctx, nil
	}
	// The transport cancels the parent when the stream ends; cancel is
	// called early only to cut a send short.
	ctx, cancel := context.WithCancel(ctx)
	return context.WithValue(ctx, cancelKey{}, cancel), nil
}

// ServerOptions returns the options of a gRPC server that serves
// EventService: the tap handle that lets a stream cut a stuck send short,
// the codec that sends each message as the Service's gRPC Format encoded it
// once for all its subscribers, and per-connection settings that keep idle subscribers
// cheap. Add the server's own (credentials, interceptors) to them.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InTapHandle(interruptibleStreams),
		// Messages are encoded once and sent as is to every subscriber.
		grpc.ForceServerCodecV2(preparedCodec{encoding.GetCodecV2(protocodec.Name)}),
		// Per-connection memory: an idle subscriber should cost little. The
		// write buffer is returned to a pool between writes (grpc-go's
		// default since SharedWriteBuffer was deprecated); the read buffer
		// is small because clients send one request per stream.
		grpc.ReadBufferSize(8 << 10),
		grpc.WriteBufferSize(16 << 10),
		// Detect dead clients; allow clients' own keepalive pings.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}

// preparedCodec sends a *grpcMessage as its protobuf bytes, encoded once;
// everything else goes through the standard protobuf codec.
type preparedCodec struct{ encoding.CodecV2 }

func (c preparedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*grpcMessage); ok {
		// gRPC reads the slice and frees its buffers, which for a
		// SliceBuffer does nothing; it neither changes nor keeps the slice.
		return m.pb, nil
	}
	return c.CodecV2.Marshal(v)
}
