"""Reading what a process's sockets and pipes hold (lib/socket_queue.py): the
parser as plain values, and the real kernel with a socket nobody reads."""

from __future__ import annotations

import os
import socket

from mqttrelay.lib.socket_queue import parse_tx_queues, pipe_fill, unacked_bytes

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:BD31 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1935600 1
   1: 0200FE0A:B1D2 0200B70A:0793 01 0004A3C0:00000000 01:00000014 00000000     0        0 2001 1
   2: 0200FE0A:B1D3 0200B70A:0793 06 00001000:00000000 01:00000014 00000000     0        0 2002 1
   3: garbage
"""


def test_parse_takes_established_sockets_only() -> None:
    assert parse_tx_queues(PROC_NET_TCP) == {2001: 0x4A3C0}


def test_a_socket_whose_peer_reads_nothing_shows_its_unsent_bytes() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    client.setblocking(False)
    sent = 0
    try:
        while sent < 8 * 1024 * 1024:
            sent += client.send(b"x" * 65536)
    except BlockingIOError:
        pass
    try:
        queued = unacked_bytes([os.getpid()])
        assert queued is not None and queued > 0
        assert queued <= sent
    finally:
        for s in (client, peer, server):
            s.close()


def test_pipe_fill_counts_what_waits_in_a_pipe() -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"y" * 5000)
        assert pipe_fill(write_end) == 5000
        assert pipe_fill(read_end) == 5000
    finally:
        os.close(read_end)
        os.close(write_end)
