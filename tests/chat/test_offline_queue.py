"""The offline queue takes a frame for the users given only while they have no connection,
keeps the newest ``QUEUE_LIMIT`` and hands them over once (in memory and in Redis alike)."""

import pytest

from chat.events import _offline_queueing
from chat.state import QUEUE_LIMIT, get_state
from chat.timers import connection_timers


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


async def test_members_with_a_connection_on_this_worker_are_not_looked_up_or_queued(state):
    # The shared presence does not know user 1 (its entry could have expired): the
    # connection registered on this worker is what keeps the frame out of 1's queue.
    timers = connection_timers()
    timers.presence_add(1, "conn-here")
    try:
        await _offline_queueing([1, 2], "frame-1")()
    finally:
        timers.forget("conn-here")

    assert (await state.connection_open(1, "conn-a"))[1] == []
    assert (await state.connection_open(2, "conn-b"))[1] == ["frame-1"]
