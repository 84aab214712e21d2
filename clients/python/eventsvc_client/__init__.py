"""Python client of eventsvc: a channel to its gRPC API and subscribe(), an
event stream that survives disconnects.

subscribe() resumes after the last message the caller processed, with that
message's epoch: no gap and no duplicate. It reports what it cannot hide
(a gap, a recreated log, a reconnect) as messages of their own, and raises
the grpc.RpcError of a permanent refusal (bad token, filter outside the
client's rights, bad request). It behaves as the Go client does
(github.com/eventsvc/eventsvc/client).

Runs on grpcio >= 1.51 and protobuf >= 3.21 (Debian 12's python3-grpcio and
python3-protobuf) and newer.
"""

import json
import os
import random
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import grpc

from sociocs.events.v1 import event_service_pb2, event_service_pb2_grpc

__all__ = ["Cursor", "Message", "connect", "subscribe", "resume_position"]

# The largest message eventsvc sends by default (--grpc-max-send-msg-size).
MAX_RECEIVE_MESSAGE_LENGTH = 16 << 20


@dataclass(frozen=True)
class Cursor:
    """A position in the log: after sequence `after` of log `epoch`."""

    after: int = 0
    epoch: str = ""

    def __bool__(self) -> bool:
        return bool(self.after or self.epoch)

    @classmethod
    def load(cls, path: str) -> Optional["Cursor"]:
        """Reads a cursor file (as `eventsvc tail --cursor-file` writes it);
        None when there is none."""
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        return cls(after=int(data["after_sequence"]), epoch=str(data["epoch"]))

    def save(self, path: str) -> None:
        """Replaces the cursor file at path atomically: a crash leaves the old
        cursor or this one, never a torn file."""
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"after_sequence": self.after, "epoch": self.epoch}, f)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise


@dataclass
class Message:
    """One thing subscribe() yields. `kind` is one of:

    - "event": `event` is the next event that matches the filters.
    - "heartbeat": an idle stream is alive; `cursor` moved to the log's last
      sequence, a safe place to resume from.
    - "gap": events were missed (the request set allow_gap and the cursor
      could not be honoured); `gap` says what and why.
    - "epoch_change": the log was recreated; `previous_epoch` is the old
      epoch. Comes before the gap of the new epoch.
    - "reconnect": the stream ended with a retryable `error`; subscribe()
      reconnects after `delay` seconds (attempt number `attempt`).

    `cursor` is where the subscription resumes once this message is
    processed: save it to resume in a later process.
    """

    kind: str
    cursor: Cursor
    event: object = None
    heartbeat: object = None
    gap: object = None
    previous_epoch: str = ""
    error: Optional[grpc.RpcError] = None
    delay: float = 0.0
    attempt: int = 0


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, details, metadata):
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds "authorization: Bearer <token>" to every call."""

    def __init__(self, token: str):
        self._header = ("authorization", "Bearer " + token)

    def _details(self, details):
        return _CallDetails(details, list(details.metadata or []) + [self._header])

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)


def connect(
    address: str,
    *,
    token: Optional[str] = None,
    insecure: bool = False,
    root_certificates: Optional[bytes] = None,
    certificate_chain: Optional[bytes] = None,
    private_key: Optional[bytes] = None,
    max_backoff: float = 30.0,
) -> grpc.Channel:
    """Returns a channel to eventsvc at address (host:port).

    TLS unless insecure, verified against root_certificates (PEM bytes) or
    the system's roots; certificate_chain and private_key (PEM bytes) are a
    client certificate. token is sent as a bearer token with every call (in
    plaintext only when insecure). The channel reconnects with a backoff
    capped at max_backoff seconds, rather than gRPC's default of 2 minutes.
    """
    options = [
        ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_LENGTH),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", int(max_backoff * 1000)),
    ]
    if insecure:
        channel = grpc.insecure_channel(address, options=options)
    else:
        creds = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
        channel = grpc.secure_channel(address, creds, options=options)
    if token:
        channel = grpc.intercept_channel(channel, _Bearer(token))
    return channel


# Codes after which a retry cannot succeed (see subscribe).
_PERMANENT = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
}
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}


def _retryable(err: grpc.RpcError, allow_gap: bool) -> bool:
    code = err.code()
    if code in _RETRYABLE:
        return True
    if code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.PERMISSION_DENIED):
        # With a resume position the server ended a stream that had been
        # fine: the subscriber fell behind, or its client's rights narrowed
        # (the retry is checked under the new ones).
        return resume_position(err) is not None
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE):
        return allow_gap
    return False


def _fields(buf: bytes):
    """Yields (field number, value) of a protobuf message: ints for varints,
    bytes for length-delimited fields; skips fixed-width ones."""
    i, n = 0, len(buf)

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < n:
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            size = varint()
            yield number, buf[i : i + size]
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            return


_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def resume_position(err: grpc.RpcError) -> Optional[Cursor]:
    """The position a status from eventsvc says to resume from (the
    google.rpc.ErrorInfo of domain "eventsvc", metadata
    resume_after_sequence and epoch), or None when it carries none."""
    trailers = getattr(err, "trailing_metadata", lambda: None)() or ()
    for key, value in trailers:
        if key != "grpc-status-details-bin":
            continue
        try:
            for number, any_msg in _fields(value):
                if number != 3:  # google.rpc.Status.details
                    continue
                fields = dict(_fields(any_msg))
                if fields.get(1, b"").decode() != _ERROR_INFO:
                    continue
                domain, meta = "", {}
                for num, v in _fields(fields.get(2, b"")):
                    if num == 2:
                        domain = v.decode()
                    elif num == 3:  # map<string, string> metadata
                        entry = dict(_fields(v))
                        meta[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
                if domain == "eventsvc" and "resume_after_sequence" in meta:
                    return Cursor(after=int(meta["resume_after_sequence"]), epoch=meta.get("epoch", ""))
        except (IndexError, ValueError, UnicodeDecodeError):
            return None
    return None


def _before(resp) -> int:
    kind = resp.WhichOneof("kind")
    if kind == "event":
        return resp.event.sequence - 1
    if kind == "gap" and resp.gap.first_sequence > 0:
        return resp.gap.first_sequence - 1
    if kind == "heartbeat":
        return resp.heartbeat.last_sequence
    return 0


def subscribe(
    channel: grpc.Channel,
    request: event_service_pb2.StreamEventsRequest,
    *,
    cursor: Optional[Cursor] = None,
    min_backoff: float = 0.25,
    max_backoff: float = 30.0,
    metadata: Sequence[Tuple[str, str]] = (),
) -> Iterator[Message]:
    """Streams the events that request selects, across disconnects, as a
    generator of Message.

    A message counts as processed when the caller asks for the next one:
    the subscription's cursor then moves to that message's cursor. After a
    disconnect, subscribe() yields a "reconnect" message, waits a jittered
    backoff (min_backoff doubling up to max_backoff seconds, reset once a
    stream delivers again), and resumes after the last processed message,
    or at the server's resume position when it gave one in the same epoch.
    The call waits for the channel to be ready (wait_for_ready), so that it
    does not fail at once while the channel reconnects.

    cursor (or request.after_sequence and epoch) resumes a saved position.

    Raises the grpc.RpcError of a permanent refusal: UNAUTHENTICATED,
    INVALID_ARGUMENT, and unless request.allow_gap FAILED_PRECONDITION and
    OUT_OF_RANGE (a cursor from a recreated log, or whose events expired);
    also RESOURCE_EXHAUSTED and PERMISSION_DENIED without a resume position
    (with one, the stream was fine until the subscriber fell behind or its
    rights narrowed, and subscribe() resumes). Closing the generator (break)
    cancels the stream.
    """
    stub = event_service_pb2_grpc.EventServiceStub(channel)
    req = event_service_pb2.StreamEventsRequest()
    req.CopyFrom(request)
    cur = Cursor()
    if cursor:
        cur = cursor
    elif req.HasField("after_sequence"):
        cur = Cursor(after=req.after_sequence, epoch=req.epoch)
    if cur:
        _resume_at(req, cur)
    attempt = 0
    while True:
        call = stub.StreamEvents(req, metadata=list(metadata), wait_for_ready=True)
        received = False
        try:
            for resp in call:
                received = True
                epoch = resp.epoch
                if cur.epoch and epoch and epoch != cur.epoch:
                    nxt = Cursor(after=_before(resp), epoch=epoch)
                    yield Message(kind="epoch_change", cursor=nxt, previous_epoch=cur.epoch)
                    cur = nxt
                kind = resp.WhichOneof("kind")
                if kind == "event":
                    msg = Message(kind="event", event=resp.event, cursor=Cursor(resp.event.sequence, epoch))
                elif kind == "heartbeat":
                    after = max(cur.after, resp.heartbeat.last_sequence)
                    msg = Message(kind="heartbeat", heartbeat=resp.heartbeat, cursor=Cursor(after, epoch))
                elif kind == "gap":
                    after = resp.gap.first_sequence - 1 if resp.gap.first_sequence > 0 else cur.after
                    msg = Message(kind="gap", gap=resp.gap, cursor=Cursor(after, epoch))
                else:
                    continue  # a kind newer than this client
                yield msg
                cur = msg.cursor
            err = None
        except grpc.RpcError as e:
            err = e
        finally:
            call.cancel()
        if err is None:
            # The server never ends a stream by itself: treat it as a drop.
            err = _Ended()
        elif not _retryable(err, req.allow_gap):
            raise err
        if received:
            attempt = 0
        pos = resume_position(err) if isinstance(err, grpc.Call) else None
        if pos and (not cur.epoch or cur.epoch == pos.epoch) and (not cur or pos.after >= cur.after):
            cur = pos
        attempt += 1
        ceiling = min(max_backoff, min_backoff * (2 ** min(attempt - 1, 30)))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        yield Message(kind="reconnect", cursor=cur, error=err, delay=delay, attempt=attempt)
        time.sleep(delay)
        if cur:
            _resume_at(req, cur)


def _resume_at(req, cur: Cursor) -> None:
    req.after_sequence = cur.after
    req.epoch = cur.epoch
    req.from_earliest = False
    req.ClearField("start_time")


class _Ended(grpc.RpcError):
    """A stream that ended without an error."""

    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "the server ended the stream"

    def __str__(self):
        return "UNAVAILABLE: the server ended the stream"
