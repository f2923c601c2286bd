"""The offline queue takes a frame for the users given only while they have no connection,
keeps the newest ``QUEUE_LIMIT``, hands them over on the next connection and lets go of them
only once they are said to be delivered (in memory and in Redis alike)."""

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


def frames(queued):
    return [text for _id, text in queued]


async def take(state, user_id, conn_id):
    """Open a connection and deliver the whole queue, as the consumer does."""
    queued = (await state.connection_open(user_id, conn_id))[1]
    if queued:
        await state.queue_delivered(user_id, queued[-1][0])
    return frames(queued)


async def test_only_users_with_no_connection_get_the_frame(state):
    await state.connection_open(1, "conn-a")

    await state.queue_for_offline([1, 2], "frame-1")

    assert await state.presence_disconnect(1, "conn-a")
    assert await take(state, 1, "conn-b") == []
    assert await take(state, 2, "conn-c") == ["frame-1"]
    assert await take(state, 2, "conn-d") == [], "delivered once"


async def test_the_queue_keeps_the_newest_frames_in_order(state):
    for n in range(QUEUE_LIMIT + 5):
        await state.queue_for_offline([3], f"frame-{n}")

    assert await take(state, 3, "conn") == [f"frame-{n}" for n in range(5, QUEUE_LIMIT + 5)]


async def test_only_what_was_delivered_leaves_the_queue(state):
    for n in range(5):
        await state.queue_for_offline([4], f"frame-{n}")
    queued = (await state.connection_open(4, "conn-a"))[1]
    assert await state.presence_disconnect(4, "conn-a")
    await state.queue_for_offline([4], "frame-5")

    # The connection closed after two frames went out.
    await state.queue_delivered(4, queued[1][0])

    assert await take(state, 4, "conn-b") == ["frame-2", "frame-3", "frame-4", "frame-5"]


async def test_a_queue_not_marked_delivered_is_handed_over_again(state):
    await state.queue_for_offline([5], "frame-1")

    assert frames((await state.connection_open(5, "conn-a"))[1]) == ["frame-1"]
    assert await state.presence_disconnect(5, "conn-a")

    assert await take(state, 5, "conn-b") == ["frame-1"]


async def test_members_with_a_connection_on_this_worker_are_not_looked_up_or_queued(state):
    # The shared presence does not know user 1 (its entry could have expired): the
    # connection registered on this worker is what keeps the frame out of 1's queue.
    timers = connection_timers()
    timers.presence_add(1, "conn-here")
    try:
        await _offline_queueing([1, 2], "frame-1")()
    finally:
        timers.forget("conn-here")

    assert await take(state, 1, "conn-a") == []
    assert await take(state, 2, "conn-b") == ["frame-1"]
