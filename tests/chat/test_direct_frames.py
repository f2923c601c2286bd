"""When a broadcast frame may skip the consumer's queue and go straight to daphne's socket
(``GatewayConsumer._layer_direct``, ``ChatConsumer.write_now``): only where it can't
overtake anything it would have followed. The wire stands in for daphne's socket."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from chat.consumer import ChatConsumer
from chat.events import FRAME_MESSAGE_TYPE


class RecordingWire:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, texts) -> bool:
        self.written += texts
        return True


@pytest.fixture
def consumer():
    consumer = ChatConsumer()
    consumer.user = SimpleNamespace(pk=7)
    consumer._turn = asyncio.Lock()
    consumer._wire = RecordingWire()
    return consumer


def frame(text: str = "f", **extra) -> dict:
    return {"type": FRAME_MESSAGE_TYPE, "text": text, **extra}


async def test_an_idle_socket_gets_a_frame_at_once(consumer):
    assert consumer._layer_direct({"type": FRAME_MESSAGE_TYPE, "texts": ["a", "b"]})
    assert consumer._wire.written == ["a", "b"]


async def test_a_frame_never_overtakes_a_layer_message_under_way(consumer):
    consumer._from_layer = object()  # a task dispatching the layer's earlier messages
    assert not consumer._layer_direct(frame())
    assert consumer._wire.written == []


async def test_frames_wait_while_a_join_is_handled_but_not_while_a_send_is(consumer):
    async with consumer._turn:
        consumer._frames_pass = "session:join" not in consumer.frames_wait_for
        assert not consumer._layer_direct(frame("during join"))
        consumer._frames_pass = "message:send" not in consumer.frames_wait_for
        assert consumer._layer_direct(frame("during send"))
    assert consumer._wire.written == ["during send"]


async def test_frames_wait_while_the_socket_opens_or_closes(consumer):
    async with consumer._turn:  # connect or disconnect: no client frame is being handled
        assert not consumer._layer_direct(frame())


async def test_a_frame_not_for_this_user_is_taken_and_dropped(consumer):
    assert consumer._layer_direct(frame(exclude=7))
    assert consumer._wire.written == []


async def test_other_layer_messages_are_dispatched_as_usual(consumer):
    assert not consumer._layer_direct({"type": "session.removed", "sessionId": "x"})
