from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sociocs.events.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
ORDER_NEWEST_FIRST: Order
ORDER_OLDEST_FIRST: Order
ORDER_UNSPECIFIED: Order

class CreateStreamTokenRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class CreateStreamTokenResponse(_message.Message):
    __slots__ = ["expire_time", "token"]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    expire_time: _timestamp_pb2.Timestamp
    token: str
    def __init__(self, token: _Optional[str] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Gap(_message.Message):
    __slots__ = ["first_sequence", "reason", "requested_after_sequence"]
    FIRST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    first_sequence: int
    reason: str
    requested_after_sequence: int
    def __init__(self, reason: _Optional[str] = ..., requested_after_sequence: _Optional[int] = ..., first_sequence: _Optional[int] = ...) -> None: ...

class GetEventRequest(_message.Message):
    __slots__ = ["id", "sequence"]
    ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    sequence: int
    def __init__(self, sequence: _Optional[int] = ..., id: _Optional[str] = ...) -> None: ...

class GetEventResponse(_message.Message):
    __slots__ = ["epoch", "event"]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    event: _event_pb2.Event
    def __init__(self, event: _Optional[_Union[_event_pb2.Event, _Mapping]] = ..., epoch: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ["last_sequence", "server_time"]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    last_sequence: int
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, server_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ["channel_keys", "end_time", "order", "page_size", "page_token", "providers", "start_time", "statuses", "types"]
    CHANNEL_KEYS_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    channel_keys: _containers.RepeatedScalarFieldContainer[str]
    end_time: _timestamp_pb2.Timestamp
    order: Order
    page_size: int
    page_token: str
    providers: _containers.RepeatedScalarFieldContainer[_event_pb2.Provider]
    start_time: _timestamp_pb2.Timestamp
    statuses: _containers.RepeatedScalarFieldContainer[_event_pb2.Status]
    types: _containers.RepeatedScalarFieldContainer[_event_pb2.EventType]
    def __init__(self, channel_keys: _Optional[_Iterable[str]] = ..., providers: _Optional[_Iterable[_Union[_event_pb2.Provider, str]]] = ..., types: _Optional[_Iterable[_Union[_event_pb2.EventType, str]]] = ..., statuses: _Optional[_Iterable[_Union[_event_pb2.Status, str]]] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., order: _Optional[_Union[Order, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ["epoch", "events", "next_page_token"]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., epoch: _Optional[str] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ["after_sequence", "allow_gap", "channel_keys", "epoch", "from_earliest", "providers", "start_time", "statuses", "types"]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_GAP_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_KEYS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FROM_EARLIEST_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    allow_gap: bool
    channel_keys: _containers.RepeatedScalarFieldContainer[str]
    epoch: str
    from_earliest: bool
    providers: _containers.RepeatedScalarFieldContainer[_event_pb2.Provider]
    start_time: _timestamp_pb2.Timestamp
    statuses: _containers.RepeatedScalarFieldContainer[_event_pb2.Status]
    types: _containers.RepeatedScalarFieldContainer[_event_pb2.EventType]
    def __init__(self, channel_keys: _Optional[_Iterable[str]] = ..., providers: _Optional[_Iterable[_Union[_event_pb2.Provider, str]]] = ..., types: _Optional[_Iterable[_Union[_event_pb2.EventType, str]]] = ..., statuses: _Optional[_Iterable[_Union[_event_pb2.Status, str]]] = ..., after_sequence: _Optional[int] = ..., epoch: _Optional[str] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., from_earliest: bool = ..., allow_gap: bool = ...) -> None: ...

class StreamEventsResponse(_message.Message):
    __slots__ = ["epoch", "event", "gap", "heartbeat"]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    event: _event_pb2.Event
    gap: Gap
    heartbeat: Heartbeat
    def __init__(self, event: _Optional[_Union[_event_pb2.Event, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., gap: _Optional[_Union[Gap, _Mapping]] = ..., epoch: _Optional[str] = ...) -> None: ...

class Order(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
