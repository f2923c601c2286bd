"""Broadcast frames written straight to daphne's sockets (``chatproject.daphne_wire``),
pinned against the installed daphne and autobahn: a client reads exactly the bytes autobahn
would have sent, and anything autobahn would have done differently goes back to ASGI."""

from __future__ import annotations

import functools
import socket
from types import SimpleNamespace

import pytest
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet import tcp
from twisted.internet.testing import StringTransport

from chatproject.daphne_wire import Wire, _write

MAX_MESSAGE = 1 << 20


@pytest.fixture
def server():
    return Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])


@pytest.fixture
def protocol(server):
    """An open daphne WebSocket connection writing to a string, set up as daphne sets up
    its factory (``Server.run``)."""
    factory = WebSocketFactory(server, server="daphne")
    factory.setProtocolOptions(
        openHandshakeTimeout=0, maxMessagePayloadSize=MAX_MESSAGE, maxFramePayloadSize=MAX_MESSAGE
    )
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    protocol.state = WebSocketProtocol.STATE_OPEN
    protocol.client_addr = ("127.0.0.1", 50000)  # set by daphne's onConnect
    return protocol


def autobahn_bytes(protocol, text: str) -> bytes:
    """What daphne's own path (``serverSend`` -> autobahn ``sendMessage``) writes."""
    protocol.serverSend(text, False)
    sent = protocol.transport.value()
    protocol.transport.clear()
    return sent


@pytest.mark.parametrize("size", [1, 125, 126, 127, 65535, 65536, 70000])
def test_a_frame_is_the_bytes_autobahn_sends(protocol, size):
    text = ("é" if size % 2 else "x") * size
    expected = autobahn_bytes(protocol, text)

    assert Wire(protocol).write([text]) is True

    assert protocol.transport.value() == expected


def test_a_batch_goes_out_as_its_frames_one_after_another(protocol):
    texts = ['{"event":"a"}', '{"event":"b"}', "c" * 300]
    expected = b"".join(autobahn_bytes(protocol, text) for text in texts)

    assert Wire(protocol).write(texts) is True

    assert protocol.transport.value() == expected


def test_the_wire_is_found_only_under_daphne_s_own_send(server, protocol):
    assert isinstance(Wire.of(functools.partial(server.handle_reply, protocol)), Wire)
    assert Wire.of(functools.partial(server.handle_reply, object())) is None
    assert Wire.of(functools.partial(print, protocol)) is None

    async def asgi_send(message):
        return None

    assert Wire.of(asgi_send) is None


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: setattr(p, "_perMessageCompress", object()), id="compression"),
        pytest.param(lambda p: p.send_queue.append((b"x", True)), id="autobahn-queue"),
        pytest.param(lambda p: setattr(p, "autoFragmentSize", 100), id="fragmenting"),
        pytest.param(lambda p: setattr(p, "maskServerFrames", True), id="masking"),
        pytest.param(lambda p: setattr(p, "maxMessagePayloadSize", 10), id="over-the-limit"),
        pytest.param(lambda p: setattr(p, "state", p.STATE_CONNECTING), id="not-accepted"),
    ],
)
def test_where_autobahn_would_write_otherwise_the_frame_goes_back_to_asgi(protocol, change):
    change(protocol)

    assert Wire(protocol).write(["x" * 50]) is False

    assert protocol.transport.value() == b""


@pytest.mark.parametrize("state", ["STATE_CLOSING", "STATE_CLOSED"])
def test_a_frame_for_a_closing_socket_is_dropped_as_daphne_drops_it(protocol, state):
    protocol.state = getattr(WebSocketProtocol, state)

    assert Wire(protocol).write(["late"]) is True

    assert protocol.transport.value() == b""


@pytest.fixture
def tcp_connection():
    """A twisted TCP connection over one end of a socket pair (its reader never
    registered with a reactor), and the other end."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    connection = tcp.Connection(ours, protocol=None)
    connection.connected = 1
    connection.startWriting = lambda: setattr(connection, "writing_started", True)
    yield connection, peer
    ours.close()
    peer.close()


def read_all(peer: socket.socket, size: int) -> bytes:
    peer.settimeout(1)
    data = b""
    while len(data) < size:
        data += peer.recv(size - len(data))
    return data


def test_bytes_go_to_the_socket_at_once_when_nothing_waits_before_them(tcp_connection):
    connection, peer = tcp_connection

    _write(connection, b"frame")

    assert read_all(peer, 5) == b"frame"
    assert not getattr(connection, "writing_started", False), "no selector registration"


def test_bytes_queue_behind_bytes_twisted_still_holds(tcp_connection):
    connection, peer = tcp_connection
    connection.write(b"first")  # buffered by twisted, waiting for the socket to be writable

    _write(connection, b"second")

    assert b"".join(connection._tempDataBuffer) == b"firstsecond"
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)


def test_what_the_socket_does_not_take_is_left_to_twisted(tcp_connection):
    connection, _peer = tcp_connection
    connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = b"y" * (4 << 20)

    _write(connection, big)

    held = b"".join(connection._tempDataBuffer)
    assert 0 < len(held) < len(big) and big.endswith(held)
    assert connection.writing_started


def test_a_tls_transport_is_written_through_twisted(protocol):
    transport = SimpleNamespace(written=[], write=lambda data: transport.written.append(data))

    _write(transport, b"frame")

    assert transport.written == [b"frame"]
