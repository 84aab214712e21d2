#!/usr/bin/env python3
"""Prints the events of one channel as they arrive, and resumes where it
stopped: copy it and put your own processing where it prints.

    PYTHONPATH=clients/python python3 clients/python/example.py \\
        --channel-key twlo_16311113333 --from-earliest --cursor-file cursor.json

The token comes from EVENTSVC_TOKEN. Exits 0 on Ctrl-C (or after
--max-events), 1 when eventsvc refuses the stream for good.
"""

import argparse
import os
import signal
import sys

import grpc

from eventsvc_client import Cursor, connect, subscribe
from sociocs.events.v1 import event_pb2, event_service_pb2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default=os.environ.get("EVENTSVC_ADDR", "127.0.0.1:9090"))
    ap.add_argument("--tls-ca", help="CA (PEM) of the server's certificate; without it, plaintext")
    ap.add_argument("--channel-key", action="append", default=[])
    ap.add_argument("--from-earliest", action="store_true")
    ap.add_argument("--cursor-file", help="save the position after each event; resume from it")
    ap.add_argument("--max-events", type=int, default=0, help="stop after this many events (0: never)")
    args = ap.parse_args()

    token = os.environ.get("EVENTSVC_TOKEN")
    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            channel = connect(args.addr, token=token, root_certificates=f.read())
    else:
        channel = connect(args.addr, token=token, insecure=True)

    request = event_service_pb2.StreamEventsRequest(
        channel_keys=args.channel_key, from_earliest=args.from_earliest
    )
    cursor = Cursor.load(args.cursor_file) if args.cursor_file else None
    if cursor:
        print(f"resuming after sequence {cursor.after}", file=sys.stderr)

    # SIGTERM stops as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    seen = 0
    try:
        for m in subscribe(channel, request, cursor=cursor):
            if m.kind == "event":
                ev = m.event
                detail = ev.message.text if ev.HasField("message") else ev.status_update.status_code
                print("event", ev.sequence, ev.channel_key, event_pb2.EventType.Name(ev.type), ev.message_id, detail, flush=True)
                seen += 1
            elif m.kind == "gap":
                print(f"gap: missed events after {m.gap.requested_after_sequence} ({m.gap.reason})", file=sys.stderr)
            elif m.kind == "epoch_change":
                print(f"the log was recreated (epoch {m.cursor.epoch})", file=sys.stderr)
            elif m.kind == "reconnect":
                print(f"reconnecting in {m.delay:.1f}s: {m.error.code().name}", file=sys.stderr)
                continue
            if args.cursor_file:
                m.cursor.save(args.cursor_file)  # processed: resume after it
            if args.max_events and seen >= args.max_events:
                return 0
    except KeyboardInterrupt:
        return 0
    except grpc.RpcError as e:
        print(f"refused: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
