"""Write a broadcast frame straight to a daphne socket, framed once for every socket.

Why: a frame broadcast to a room of 100 went through ASGI 100 times: each socket's
consumer awaited ``send``, daphne's ``handle_reply`` coroutine checked the connection and
the message, autobahn encoded the text and built the frame, and only then was it written.
That was most of a worker's time in a big room (docs/scaling.md): the raw ``websockets``
relay frames a message once and writes the same bytes to every socket. A ``Wire`` does
that under daphne: the text is encoded and framed once (``frame_of``, cached for the few
texts of the broadcast at hand), and each socket's transport gets those bytes.

How: daphne hands an application ``send = partial(server.handle_reply, protocol)``, so the
protocol (autobahn's ``WebSocketServerProtocol``) is reachable from ``send``. A write goes
straight to its transport only where autobahn's own ``sendMessage`` would have written the
same bytes at once: the connection is open, no compression was negotiated, server frames
are not masked or fragmented, and autobahn has no data of its own queued. Anywhere else
(or under any other server, or Channels' test communicator) ``Wire.of`` gives None or
``write`` says False, and the caller sends through ASGI as before.
``tests/chatproject/test_daphne_wire.py`` pins this against the installed daphne and
autobahn: the bytes a client reads are the bytes autobahn would have sent.
"""

from __future__ import annotations

import functools
import struct
import sys

from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import tcp

_OPEN = WebSocketProtocol.STATE_OPEN
_TEXT_FIN = 0x81  # FIN + opcode 1 (text), no RSV bits: an uncompressed, unfragmented frame


@functools.lru_cache(maxsize=64)
def frame_of(text: str) -> bytes:
    """``text`` as one unmasked WebSocket text frame (RFC 6455 section 5.2), the bytes a
    server sends. Cached: a broadcast's few texts are framed once for all of a worker's
    sockets (a ``str`` keeps its hash, so a hit costs a lookup)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", _TEXT_FIN, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", _TEXT_FIN, 126, size)
    else:
        head = struct.pack("!BBQ", _TEXT_FIN, 127, size)
    return head + payload


class Wire:
    """One daphne WebSocket connection's socket, for frames written without ASGI."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol) -> None:
        self._protocol = protocol

    @classmethod
    def of(cls, send) -> Wire | None:
        """The wire under an ASGI ``send`` callable, if daphne made it; else None. Looked up
        only if daphne's server module is loaded (it is whenever daphne serves): importing
        it installs twisted's reactor, which no other server or command should get."""
        server_module = sys.modules.get("daphne.server")
        if server_module is None or not isinstance(send, functools.partial):
            return None
        handle_reply = server_module.Server.handle_reply
        if getattr(send.func, "__func__", None) is not handle_reply or len(send.args) != 1:
            return None
        protocol = send.args[0]
        return cls(protocol) if isinstance(protocol, WebSocketProtocol) else None

    def write(self, texts) -> bool:
        """Write each of ``texts`` as a frame now, if autobahn would have written exactly
        these bytes at once: True if written (or dropped because the socket is closing, as
        daphne drops a send to a closed socket), False if the caller must send them
        through ASGI. The frames go to the transport in one write."""
        protocol = self._protocol
        if protocol.state != _OPEN:
            return protocol.state != WebSocketProtocol.STATE_CONNECTING
        if (
            protocol._perMessageCompress is not None
            or protocol.send_queue
            or protocol.maskServerFrames
            or protocol.autoFragmentSize
        ):
            return False
        frames = [frame_of(text) for text in texts]
        limit = protocol.maxMessagePayloadSize
        if limit and any(len(frame) > limit for frame in frames):
            return False
        _write(protocol.transport, b"".join(frames))
        return True


def _write(transport, data: bytes) -> None:
    """Write ``data`` to a twisted transport, to its socket at once if nothing is waiting
    to go before it. Twisted's own ``write`` only buffers and registers the socket with the
    loop for writing, and unregisters it once written: three calls into the selector per
    socket per broadcast, where the bytes nearly always fit in the socket's buffer at once
    (asyncio's transports send at once the same way). Whatever the socket does not take,
    or any error, is left to twisted as before."""
    if (
        isinstance(transport, tcp.Connection)
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport._tempDataBuffer
        and transport.offset == len(transport.dataBuffer)
    ):
        try:
            sent = transport.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # twisted meets the same error on its own write and closes as usual
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
