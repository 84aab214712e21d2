from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

CODE_FIELD_NUMBER: _ClassVar[int]
DESCRIPTOR: _descriptor.FileDescriptor
DIRECTION_INCOMING: Direction
DIRECTION_OUTGOING: Direction
DIRECTION_UNKNOWN: Direction
DIRECTION_UNSPECIFIED: Direction
EVENT_TYPE_MESSAGE: EventType
EVENT_TYPE_STATUS_UPDATE: EventType
EVENT_TYPE_UNKNOWN: EventType
EVENT_TYPE_UNSPECIFIED: EventType
PROVIDER_GUPSHUP_WHATSAPP: Provider
PROVIDER_TELNYX_SMS: Provider
PROVIDER_TWILIO_SMS: Provider
PROVIDER_TWILIO_WHATSAPP: Provider
PROVIDER_UNKNOWN: Provider
PROVIDER_UNSPECIFIED: Provider
STATUS_DELIVERED: Status
STATUS_DELIVERY_FAILED: Status
STATUS_ENQUEUED: Status
STATUS_FAILED: Status
STATUS_QUEUED: Status
STATUS_READ: Status
STATUS_SENDING: Status
STATUS_SENDING_FAILED: Status
STATUS_SENT: Status
STATUS_UNDELIVERED: Status
STATUS_UNKNOWN: Status
STATUS_UNSPECIFIED: Status
code: _descriptor.FieldDescriptor

class Contact(_message.Message):
    __slots__ = ["created_at", "extra_fields", "extra_fields_json", "id", "is_blocked", "name", "phone_number", "phone_number_cc", "updated_at"]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELDS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELDS_JSON_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    IS_BLOCKED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_CC_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    created_at: _timestamp_pb2.Timestamp
    extra_fields: _struct_pb2.Struct
    extra_fields_json: str
    id: int
    is_blocked: bool
    name: str
    phone_number: str
    phone_number_cc: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., phone_number: _Optional[str] = ..., phone_number_cc: _Optional[str] = ..., extra_fields: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., extra_fields_json: _Optional[str] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., is_blocked: bool = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ["channel_key", "conversion_warnings", "event_code", "id", "message", "message_id", "provider", "provider_code", "raw_json", "received_at", "sequence", "status_update", "type"]
    CHANNEL_KEY_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_WARNINGS_FIELD_NUMBER: _ClassVar[int]
    EVENT_CODE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CODE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    RAW_JSON_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_UPDATE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    channel_key: str
    conversion_warnings: _containers.RepeatedScalarFieldContainer[str]
    event_code: str
    id: str
    message: MessageEvent
    message_id: str
    provider: Provider
    provider_code: str
    raw_json: bytes
    received_at: _timestamp_pb2.Timestamp
    sequence: int
    status_update: StatusUpdateEvent
    type: EventType
    def __init__(self, id: _Optional[str] = ..., sequence: _Optional[int] = ..., received_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[EventType, str]] = ..., event_code: _Optional[str] = ..., provider: _Optional[_Union[Provider, str]] = ..., provider_code: _Optional[str] = ..., channel_key: _Optional[str] = ..., message_id: _Optional[str] = ..., message: _Optional[_Union[MessageEvent, _Mapping]] = ..., status_update: _Optional[_Union[StatusUpdateEvent, _Mapping]] = ..., raw_json: _Optional[bytes] = ..., conversion_warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class MessageEvent(_message.Message):
    __slots__ = ["contact", "direction", "direction_code", "file_urls", "from_number", "image_urls", "name", "text", "timestamp", "to_number", "video_urls"]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_CODE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    FILE_URLS_FIELD_NUMBER: _ClassVar[int]
    FROM_NUMBER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URLS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TO_NUMBER_FIELD_NUMBER: _ClassVar[int]
    VIDEO_URLS_FIELD_NUMBER: _ClassVar[int]
    contact: Contact
    direction: Direction
    direction_code: str
    file_urls: _containers.RepeatedScalarFieldContainer[str]
    from_number: str
    image_urls: _containers.RepeatedScalarFieldContainer[str]
    name: str
    text: str
    timestamp: _timestamp_pb2.Timestamp
    to_number: str
    video_urls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., direction_code: _Optional[str] = ..., from_number: _Optional[str] = ..., to_number: _Optional[str] = ..., name: _Optional[str] = ..., text: _Optional[str] = ..., file_urls: _Optional[_Iterable[str]] = ..., image_urls: _Optional[_Iterable[str]] = ..., video_urls: _Optional[_Iterable[str]] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., timestamp: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StatusError(_message.Message):
    __slots__ = ["code", "details", "message"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    details: _struct_pb2.Value
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class StatusUpdateEvent(_message.Message):
    __slots__ = ["error", "provider_error", "status", "status_code"]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ERROR_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    error: StatusError
    provider_error: _struct_pb2.Struct
    status: Status
    status_code: str
    def __init__(self, status: _Optional[_Union[Status, str]] = ..., status_code: _Optional[str] = ..., error: _Optional[_Union[StatusError, _Mapping]] = ..., provider_error: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Provider(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
