"""The RTMP chunk stream (pure, no I/O): an incremental reader that turns bytes
into whole messages, and a writer that cuts messages into chunks.

The reader applies Set Chunk Size and Abort itself (they change how the next
bytes are read) and still returns them. Every limit it keeps is a ChunkError,
never another exception: the message size cap, the number of chunk streams,
the bytes held for unfinished messages.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 0x7FFFFFFF  # the protocol's own bound; a message is capped separately
MAX_MESSAGE_SIZE = 8 * 1024 * 1024  # a 4K keyframe fits several times
MAX_CHUNK_STREAMS = 64  # publishers use 2-8
EXTENDED = 0xFFFFFF

# protocol control message types
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO, DATA_AMF3, COMMAND_AMF3, DATA_AMF0, COMMAND_AMF0 = 8, 9, 15, 17, 18, 20


class ChunkError(ValueError):
    """The chunk stream breaks the protocol or a limit; the connection must end."""


@dataclass(frozen=True, slots=True)
class Message:
    csid: int
    type_id: int
    stream_id: int
    timestamp: int  # milliseconds, 32 bits
    payload: bytes


@dataclass(slots=True)
class _Stream:
    """What the previous chunk on a chunk stream said, for the compressed headers."""

    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    started: bool = False  # has a type-0 header been seen?
    partial: bytearray = field(default_factory=bytearray)


class ChunkReader:
    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_message_size = max_message_size
        self._streams: dict[int, _Stream] = {}
        self._buf = bytearray()
        self._held = 0  # bytes in unfinished messages

    @property
    def pending(self) -> int:
        """Bytes held: unparsed input and unfinished messages."""
        return len(self._buf) + self._held

    def feed(self, data: bytes) -> list[Message]:
        return list(self.read(data))

    def read(self, data: bytes) -> Iterator[Message]:
        """The messages data completes, one at a time: what the caller does with
        one (a publish accepted: a larger cap) holds for the chunks after it."""
        self._buf += data
        pos = 0
        try:
            while True:
                out: list[Message] = []
                step = self._chunk(pos, out)
                if step == 0:
                    break
                pos += step
                yield from out
        finally:
            del self._buf[:pos]
        if len(self._buf) > self.max_message_size + 32:
            raise ChunkError("more unparsed input held than a message may have")

    def _chunk(self, pos: int, out: list[Message]) -> int:
        """Read one chunk at pos into out; returns its length, 0 if incomplete."""
        buf = self._buf
        avail = len(buf) - pos
        if avail < 1:
            return 0
        fmt, csid = buf[pos] >> 6, buf[pos] & 0x3F
        head = 1
        if csid == 0:
            if avail < 2:
                return 0
            csid, head = 64 + buf[pos + 1], 2
        elif csid == 1:
            if avail < 3:
                return 0
            csid, head = 64 + buf[pos + 1] + buf[pos + 2] * 256, 3
        size = (11, 7, 3, 0)[fmt]
        if avail < head + size:
            return 0
        st = self._streams.get(csid)
        if st is None:
            if len(self._streams) >= MAX_CHUNK_STREAMS:
                raise ChunkError(f"more than {MAX_CHUNK_STREAMS} chunk streams")
            if fmt != 0:
                raise ChunkError(f"chunk stream {csid} starts without a full header")
            st = _Stream()
        h = pos + head
        stamp = int.from_bytes(buf[h : h + 3], "big") if fmt < 3 else 0
        extended = stamp == EXTENDED if fmt < 3 else st.extended
        ext_len = 4 if extended else 0
        if avail < head + size + ext_len:
            return 0
        if extended:
            e = h + size
            stamp = int.from_bytes(buf[e : e + 4], "big")
        new_message = not st.partial
        length, type_id, stream_id = st.length, st.type_id, st.stream_id
        if fmt <= 1:
            length = int.from_bytes(buf[h + 3 : h + 6], "big")
            type_id = buf[h + 6]
            if length > self.max_message_size:
                raise ChunkError(
                    f"message of {length} bytes is over the cap of {self.max_message_size}"
                )
        if fmt == 0:
            stream_id = struct.unpack("<I", buf[h + 7 : h + 11])[0]
        if fmt != 3 and not new_message:
            raise ChunkError(f"chunk stream {csid}: new header inside an unfinished message")
        body = min(self.chunk_size, length - len(st.partial))
        total = head + size + ext_len + body
        if avail < total:
            return 0
        # the chunk is whole: commit what its header said
        if new_message:
            if fmt == 0:
                st.timestamp, st.delta = stamp, 0
            elif fmt in (1, 2):
                st.delta = stamp
                st.timestamp = (st.timestamp + stamp) & 0xFFFFFFFF
            else:
                st.timestamp = (st.timestamp + st.delta) & 0xFFFFFFFF
        if fmt < 3:
            st.extended = extended
        st.length, st.type_id, st.stream_id = length, type_id, stream_id
        self._streams[csid] = st
        start = pos + total - body
        st.partial += buf[start : start + body]
        self._held += body
        if self._held > 2 * self.max_message_size:
            raise ChunkError("too many bytes held in unfinished messages")
        if len(st.partial) >= length:
            payload = bytes(st.partial)
            self._held -= len(st.partial)
            st.partial = bytearray()
            message = Message(csid, type_id, stream_id, st.timestamp, payload)
            self._control(message)
            out.append(message)
        return total

    def _control(self, message: Message) -> None:
        if message.type_id == SET_CHUNK_SIZE:
            if len(message.payload) < 4:
                raise ChunkError("set chunk size without a size")
            size = struct.unpack(">I", message.payload[:4])[0] & 0x7FFFFFFF
            if size < 1:
                raise ChunkError("set chunk size of 0")
            self.chunk_size = size
        elif message.type_id == ABORT:
            if len(message.payload) < 4:
                raise ChunkError("abort without a chunk stream id")
            st = self._streams.get(struct.unpack(">I", message.payload[:4])[0])
            if st is not None:
                self._held -= len(st.partial)
                st.partial = bytearray()


def encode_message(
    csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes, chunk_size: int
) -> bytes:
    """A message as chunks: a type-0 header, then type-3 continuations."""
    if not 2 <= csid <= 63:
        raise ValueError("this writer uses one-byte chunk stream ids (2-63)")
    ts = timestamp & 0xFFFFFFFF
    extended = ts >= EXTENDED
    ext = struct.pack(">I", ts) if extended else b""
    header = (
        bytes([csid])
        + (EXTENDED if extended else ts).to_bytes(3, "big")
        + len(payload).to_bytes(3, "big")
        + bytes([type_id])
        + struct.pack("<I", stream_id)
        + ext
    )
    out = bytearray(header)
    out += payload[:chunk_size]
    for start in range(chunk_size, len(payload), chunk_size):
        out += bytes([0xC0 | csid]) + ext + payload[start : start + chunk_size]
    return bytes(out)
