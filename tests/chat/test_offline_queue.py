"""The offline queue takes a frame for the users given only while they have no connection,
keeps the newest ``QUEUE_LIMIT`` and hands them over once (in memory and in Redis alike)."""

import pytest

from chat.state import QUEUE_LIMIT, get_state


@pytest.fixture
def state():
    state = get_state()
    state.reset()
    yield state
    state.reset()


async def test_only_users_with_no_connection_get_the_frame(state):
    await state.connection_open(1, "conn-a")

    await state.queue_for_offline([1, 2], "frame-1")

    assert await state.presence_disconnect(1, "conn-a")
    assert (await state.connection_open(1, "conn-b"))[1] == []
    assert (await state.connection_open(2, "conn-c"))[1] == ["frame-1"]
    assert (await state.connection_open(2, "conn-d"))[1] == [], "taken once"


async def test_the_queue_keeps_the_newest_frames_in_order(state):
    for n in range(QUEUE_LIMIT + 5):
        await state.queue_for_offline([3], f"frame-{n}")

    queued = (await state.connection_open(3, "conn"))[1]

    assert queued == [f"frame-{n}" for n in range(5, QUEUE_LIMIT + 5)]
