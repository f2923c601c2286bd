"""Fuzzing ``/ws/chat/`` frames with hypothesis: JSON of every shape (wrong types, unicode,
huge numbers, nested data) for every event name, envelopes of the wrong shape, and text
that is no JSON. Every frame gets exactly one reply, never ``INTERNAL``, and the socket
stays open; only a frame over 64 KiB closes it, with 1009.

Most examples run in-process through the whole ASGI stack (Channels'
``WebsocketCommunicator``, one socket kept across examples on one event loop), with a
fixed seed and a bounded number of examples; a smaller sample runs against a real worker.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework_simplejwt.tokens import AccessToken

from chat.services.messages import message_send
from chat.services.sessions import session_create
from chat.state import get_state
from chatproject.asgi import application

from .strategies import ws_frames

pytestmark = pytest.mark.e2e

FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def example_each(texts):
    """``@example`` for each of ``texts``: edge cases always tried, whatever the seed."""

    def decorate(test):
        for text in texts:
            test = example(text=text)(test)
        return test

    return decorate


async def _cancel_the_rest() -> None:
    """Cancel what the app left running on this loop (stream tasks, timers)."""
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


class Socket:
    """One authenticated socket on its own event loop, kept open across examples."""

    def __init__(self, token: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = application
        self.path = f"/ws/chat/?token={token}"
        self.communicator = WebsocketCommunicator(self.app, self.path)
        connected, _ = self.run(self.communicator.connect(timeout=10))
        assert connected
        first = self.run(self.communicator.receive_json_from(timeout=10))
        assert first["event"] == "connection:success"

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def exchange(self, text: str) -> tuple[dict | None, int | None]:
        """Send a frame; (its reply, None), or (None, close code) if the socket closed."""
        self.run(self.communicator.send_input({"type": "websocket.receive", "text": text}))
        while True:
            output = self.run(self.communicator.receive_output(timeout=15))
            if output["type"] == "websocket.close":
                return None, output.get("code")
            frame = json.loads(output["text"])
            if frame["event"] in ("ack", "error"):
                return frame, None

    def close(self) -> None:
        try:
            self.run(self.communicator.disconnect())
        finally:
            self.run(_cancel_the_rest())
            self.loop.close()


@pytest.fixture
def gateway(alice, bob, carol, ollama_emulator_settings):
    room = session_create(creator=alice, title="fuzz", member_ids=[bob.pk])
    other = session_create(creator=carol, title="not alice's")
    message = message_send(author=alice, session_id=room.pk, content="hello")
    foreign = message_send(author=carol, session_id=other.pk, content="secret")
    socket = Socket(str(AccessToken.for_user(alice)))
    ids = [str(room.pk), str(message.pk), str(other.pk), str(foreign.pk)]
    yield socket, ids
    socket.close()


@pytest.mark.django_db(transaction=True)
def test_no_frame_gets_internal_or_closes_the_socket(gateway):
    socket, ids = gateway
    codes: dict[str, int] = {}

    room, message = ids[0], ids[1]
    edge_cases = [
        {"event": "session:join", "data": {"sessionId": room, "lastSeq": 2**63}},
        {"event": "session:join", "data": {"sessionId": room, "lastSeq": 10**30}},
        {"event": "message:send",
         "data": {"sessionId": room, "content": "x", "clientId": "é" * 100}},
        {"event": "message:reaction", "data": {"messageId": message, "emoji": "👍" * 64}},
        {"event": "stream:request", "data": {"sessionId": room, "prompt": "x",
                                             "config": {"maxTokens": 2**63, "temperature": 1e308}}},
    ]  # fmt: skip

    @FUZZ
    @given(text=ws_frames(ids))
    @example_each(json.dumps(frame) for frame in edge_cases)
    def check(text: str) -> None:
        get_state().reset()  # throttles would otherwise answer most frames
        reply, closed = socket.exchange(text)
        assert closed is None, (text[:200], closed)
        assert reply["event"] in ("ack", "error")
        code = reply["data"]["code"] if reply["event"] == "error" else "ack"
        codes[code] = codes.get(code, 0) + 1
        assert code != "INTERNAL", (text[:300], reply)

    check()
    print(f"\nWebSocket fuzz (in-process): {sum(codes.values())} frames, replies {codes}")
    assert len(codes) >= 5  # the frames reached past parsing into validation and handlers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("size", "closes"), [(65_536, False), (65_537, True), (300_000, True)])
def test_only_a_frame_over_64_kib_closes_with_1009(gateway, size, closes):
    socket, _ = gateway
    head = '{"event": "ping", "data": {"pad": "'
    text = head + "x" * (size - len(head) - 3) + '"}}'
    assert len(text.encode()) == size
    reply, closed = socket.exchange(text)
    if closes:
        assert (reply, closed) == (None, 1009)
    else:
        assert closed is None and reply["event"] == "ack"


async def _sample_on(url: str, frames: list[str]) -> list[str]:
    codes = []
    async with websockets.connect(url, max_size=2**22) as ws:
        assert json.loads(await ws.recv())["event"] == "connection:success"
        for text in frames:
            await ws.send(text)
            async with asyncio.timeout(20):
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["event"] in ("ack", "error"):
                        break
            codes.append(frame["data"]["code"] if frame["event"] == "error" else "ack")
        pong = {"event": "ping", "data": {}, "ref": "last"}
        await ws.send(json.dumps(pong))
        async with asyncio.timeout(20):
            while (frame := json.loads(await ws.recv())).get("ref") != "last":
                pass
        assert frame["event"] == "ack"
    return codes


def test_a_sample_of_frames_on_a_real_worker(rel_platform):
    p = rel_platform
    seeded = p.seed(2, [[0, 1], [1]])
    alice, room, other = seeded.users[0], seeded.rooms[0], seeded.rooms[1]
    with p.api(alice) as http:
        message = http.post("/api/chat/messages", json={"sessionId": room, "content": "hi"}).json()
    ids = [room, message["id"], other, message["id"]]
    seen: list[str] = []

    @settings(max_examples=6, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(frames=st.lists(ws_frames(ids), min_size=5, max_size=12))
    def check(frames: list[str]) -> None:
        url = f"{p.ws_url(len(seen) % len(p.workers))}?token={alice['access']}"
        codes = asyncio.run(_sample_on(url, frames))
        seen.extend(codes)
        assert "INTERNAL" not in codes, frames

    check()
    print(f"\nWebSocket fuzz (real worker): {len(seen)} frames, replies {sorted(set(seen))}")
