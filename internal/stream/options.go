package stream

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// ServerOptions returns the options of a gRPC server that serves
// EventService: the codec that sends each event as the hub encoded it once
// for all its subscribers, and per-connection settings that keep idle
// subscribers cheap. Add the server's own (credentials, interceptors) to
// them.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		// Events are encoded once by the hub and sent as is to every
		// subscriber.
		grpc.ForceServerCodecV2(Codec()),
		// Per-connection memory: an idle subscriber should cost little. The
		// write buffer is returned to a pool between writes; the read buffer
		// is small because clients send one request per stream.
		grpc.SharedWriteBuffer(true),
		grpc.ReadBufferSize(8 << 10),
		grpc.WriteBufferSize(16 << 10),
		// Detect dead clients; allow clients' own keepalive pings.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}
