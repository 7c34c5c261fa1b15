"""A publisher's RTMP session: its commands and the replies (pure, no I/O).

connect -> window size, peer bandwidth, chunk size, _result (Connect.Success);
releaseStream, FCPublish, createStream -> their replies; publish -> an event
the server decides on (the stream name and key), answered by accept_publish
(Publish.Start) or refuse_publish (an error status, then the server closes);
FCUnpublish, deleteStream, closeStream -> Unpublish. Media messages (audio,
video, onMetaData) become Media events, and only while publishing: nothing a
publisher sends before its key was checked reaches the hub.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from mqttrelay.ingest.rtmp import amf0
from mqttrelay.ingest.rtmp.chunks import (
    ACK,
    AUDIO,
    COMMAND_AMF0,
    COMMAND_AMF3,
    DATA_AMF0,
    DATA_AMF3,
    SET_CHUNK_SIZE,
    SET_PEER_BANDWIDTH,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    Message,
    encode_message,
)
from mqttrelay.ingest.rtmp.media import AUDIO_FOURCCS, VIDEO_FOURCCS

WINDOW = 2_500_000
OUT_CHUNK_SIZE = 4096
STREAM_ID = 1  # the one stream createStream hands out
MAX_COMMAND_SIZE = 64 * 1024  # commands and onMetaData are small; AMF decoding costs CPU
_CSID_CONTROL, _CSID_COMMAND, _CSID_STATUS = 2, 3, 5
_PING_REQUEST, _PING_RESPONSE, _STREAM_BEGIN = 6, 7, 0


class ProtocolError(ValueError):
    """The client broke the publisher's command sequence; the connection ends."""


@dataclass(frozen=True, slots=True)
class PublishRequest:
    app: str
    name: str  # without its query
    key: str | None  # ?key= of the stream key, or of the app


@dataclass(frozen=True, slots=True)
class Media:
    type_id: int  # 8 audio, 9 video, 18 onMetaData
    timestamp: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Unpublish:
    pass


Event = PublishRequest | Media | Unpublish


def split_key(text: str) -> tuple[str, str | None]:
    """'stream?key=abc' -> ('stream', 'abc')."""
    name, _, query = text.partition("?")
    keys = parse_qs(query, keep_blank_values=True).get("key")
    return name, keys[0] if keys else None


class Session:
    def __init__(self) -> None:
        self.app: str | None = None
        self.app_key: str | None = None
        self.fourccs: list[str] = []  # what connect's fourCcList announced
        self.publishing = False
        self.pending: PublishRequest | None = None  # asked, not yet answered
        self._out = bytearray()
        self._out_chunk = 128
        self._peer_window = 0  # the client asked for acknowledgements every this many bytes
        self._received = 0
        self._acked = 0

    # -- output ----------------------------------------------------------------
    def take_output(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def _send(self, csid: int, type_id: int, payload: bytes, stream_id: int = 0) -> None:
        self._out += encode_message(csid, type_id, stream_id, 0, payload, self._out_chunk)

    def _command(self, *values: Any, stream_id: int = 0) -> None:
        csid = _CSID_STATUS if stream_id else _CSID_COMMAND
        self._send(csid, COMMAND_AMF0, amf0.encode(*values), stream_id)

    def _status(self, level: str, code: str, description: str) -> None:
        info = {"level": level, "code": code, "description": description}
        self._command("onStatus", 0, None, info, stream_id=STREAM_ID)

    # -- input -----------------------------------------------------------------
    def received(self, n: int) -> None:
        """n more bytes came in: acknowledge each window the client asked for."""
        self._received = (self._received + n) & 0xFFFFFFFF
        if self._peer_window and (self._received - self._acked) % 2**32 >= self._peer_window:
            self._acked = self._received
            self._send(_CSID_CONTROL, ACK, struct.pack(">I", self._received))

    def handle(self, message: Message) -> list[Event]:
        t = message.type_id
        if t in (AUDIO, VIDEO):
            return [Media(t, message.timestamp, message.payload)] if self.publishing else []
        amf = (DATA_AMF0, DATA_AMF3, COMMAND_AMF0, COMMAND_AMF3)
        if t in amf and len(message.payload) > MAX_COMMAND_SIZE:
            raise ProtocolError(f"an AMF message of {len(message.payload)} bytes")
        if t in (DATA_AMF0, DATA_AMF3):
            return self._data(message)
        if t in (COMMAND_AMF0, COMMAND_AMF3):
            payload = message.payload[1:] if t == COMMAND_AMF3 else message.payload
            return self._commands(amf0.decode_all(payload))
        if t == USER_CONTROL:
            self._user_control(message.payload)
        elif t == WINDOW_ACK_SIZE and len(message.payload) >= 4:
            self._peer_window = struct.unpack(">I", message.payload[:4])[0]
        # SET_CHUNK_SIZE and ABORT were applied by the reader; ACK, SET_PEER_BANDWIDTH
        # and anything unknown need no answer
        return []

    def _user_control(self, payload: bytes) -> None:
        if len(payload) >= 6 and struct.unpack(">H", payload[:2])[0] == _PING_REQUEST:
            reply = struct.pack(">H", _PING_RESPONSE) + payload[2:6]
            self._send(_CSID_CONTROL, USER_CONTROL, reply)

    def _data(self, message: Message) -> list[Event]:
        if not self.publishing:
            return []
        payload = message.payload[1:] if message.type_id == DATA_AMF3 else message.payload
        first, pos = amf0.decode(payload)
        if first == "@setDataFrame":
            payload = payload[pos:]
            first, _ = amf0.decode(payload)
        if first != "onMetaData":
            return []  # onTextData, cue points: nothing downstream uses them
        return [Media(DATA_AMF0, message.timestamp, payload)]

    def _commands(self, values: list[Any]) -> list[Event]:
        if len(values) < 2 or not isinstance(values[0], str):
            raise ProtocolError("a command without a name and transaction id")
        name, txn = values[0], values[1]
        txn = _number(txn)
        args = values[2:]
        if self.app is None:
            if name != "connect":
                raise ProtocolError(f"'{name[:40]}' before connect")
            self._connect(txn, args[0] if args else None)
            return []
        if name == "connect":
            raise ProtocolError("connect sent twice")
        if name == "releaseStream":
            self._command("_result", txn, None, amf0.UNDEFINED_VALUE)
        elif name == "FCPublish":
            stream = _string_arg(args, 1)
            info = {"code": "NetStream.Publish.Start", "description": split_key(stream)[0]}
            self._command("onFCPublish", 0, None, info)
        elif name == "createStream":
            self._command("_result", txn, None, float(STREAM_ID))
        elif name == "publish":
            if self.publishing or self.pending is not None:
                raise ProtocolError("publish sent twice")
            stream, key = split_key(_string_arg(args, 1))
            self.pending = PublishRequest(self.app, stream, key or self.app_key)
            return [self.pending]
        elif name in ("FCUnpublish", "deleteStream", "closeStream") and self.publishing:
            self.publishing = False
            return [Unpublish()]
        # anything else (getStreamLength, _checkbw, play...) is not a publisher's: ignored
        return []

    def _connect(self, txn: float, props: Any) -> None:
        if not isinstance(props, dict) or not isinstance(props.get("app"), str):
            raise ProtocolError("connect without an app")
        self.app, self.app_key = split_key(props["app"].strip("/"))
        fourccs = props.get("fourCcList")
        if isinstance(fourccs, list):
            self.fourccs = [f for f in fourccs if isinstance(f, str)][:16]
        self._send(_CSID_CONTROL, WINDOW_ACK_SIZE, struct.pack(">I", WINDOW))
        self._send(_CSID_CONTROL, SET_PEER_BANDWIDTH, struct.pack(">IB", WINDOW, 2))
        self._send(_CSID_CONTROL, SET_CHUNK_SIZE, struct.pack(">I", OUT_CHUNK_SIZE))
        self._out_chunk = OUT_CHUNK_SIZE
        server = {
            "fmsVer": "FMS/3,0,1,123",
            "capabilities": 31.0,
            # E-RTMP: the codecs this server takes
            "fourCcList": [*VIDEO_FOURCCS, *AUDIO_FOURCCS],
        }
        info = {
            "level": "status",
            "code": "NetConnection.Connect.Success",
            "description": "Connection succeeded.",
            "objectEncoding": _number(props.get("objectEncoding")),
        }
        self._command("_result", txn, server, info)

    def accept_publish(self) -> None:
        request, self.pending = self.pending, None
        name = request.name if request else ""
        self.publishing = True
        begin = struct.pack(">HI", _STREAM_BEGIN, STREAM_ID)
        self._send(_CSID_CONTROL, USER_CONTROL, begin)
        self._status("status", "NetStream.Publish.Start", f"{name} is now published.")

    def refuse_publish(self, code: str, description: str) -> None:
        self.pending = None
        self._status("error", code, description)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _string_arg(args: list[Any], index: int) -> str:
    value = args[index] if len(args) > index else None
    if not isinstance(value, str):
        raise ProtocolError("publish without a stream name")
    return value


__all__ = ["Event", "Media", "PublishRequest", "Session", "Unpublish"]
