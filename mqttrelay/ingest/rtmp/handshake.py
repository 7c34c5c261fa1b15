"""The RTMP handshake, server side (pure, no I/O).

C0 (version 3) and C1 (1536 bytes) come in; S0, S1 and S2 go out; C2 (1536
bytes) closes it. S2 echoes C1 and S1 carries a zero version, which is how a
client using the digest ("complex") handshake is told to take the simple
one: ffmpeg, librtmp (OBS) and GStreamer then check only the echo. Nothing
here depends on C1's contents, so both kinds are accepted alike.
"""

from __future__ import annotations

import os
import struct

VERSION = 3
SIZE = 1536
C0C1_SIZE = 1 + SIZE


class HandshakeError(ValueError):
    """What came in is not an RTMP handshake."""


def server_reply(c0c1: bytes, uptime_ms: int = 0) -> bytes:
    """S0 S1 S2 for a client's C0 C1."""
    if len(c0c1) != C0C1_SIZE:
        raise HandshakeError(f"C0+C1 must be {C0C1_SIZE} bytes, got {len(c0c1)}")
    if c0c1[0] != VERSION:
        raise HandshakeError(f"RTMP version {c0c1[0]} requested; only 3 is spoken (plain RTMP)")
    s1 = struct.pack(">II", uptime_ms & 0xFFFFFFFF, 0) + os.urandom(SIZE - 8)
    s2 = c0c1[1:]  # the echo of C1
    return bytes([VERSION]) + s1 + s2


def check_c2(c2: bytes) -> None:
    """C2 should echo S1; publishers differ, so only its size is held to."""
    if len(c2) != SIZE:
        raise HandshakeError(f"C2 must be {SIZE} bytes, got {len(c2)}")
