"""The LLM streams' shared state (``llm.stream_state``: memory or Redis, whichever
``REDIS_URL`` picks): concurrency slots that survive a crashed worker, the live text a joiner
resumes from, and stop requests."""

from __future__ import annotations

import asyncio
import uuid

from llm.stream_state import get_stream_state


async def test_slots_are_limited_released_and_idempotent_per_stream():
    state = get_stream_state()
    assert await state.stream_slot_acquire("s1", limit=2, ttl=60)
    assert await state.stream_slot_acquire("s1", limit=2, ttl=60), "the same stream again"
    assert await state.stream_slot_acquire("s2", limit=2, ttl=60)
    assert not await state.stream_slot_acquire("s3", limit=2, ttl=60)

    await state.stream_slot_release("s1")

    assert await state.stream_slot_acquire("s3", limit=2, ttl=60)


async def test_a_slot_left_by_a_dead_worker_expires():
    state = get_stream_state()
    assert await state.stream_slot_acquire("crashed", limit=1, ttl=0.3)
    assert not await state.stream_slot_acquire("next", limit=1, ttl=60)

    await asyncio.sleep(0.5)

    assert await state.stream_slot_acquire("next", limit=1, ttl=60)


async def test_keepalive_holds_a_slot_past_its_first_expiry():
    state = get_stream_state()
    assert await state.stream_slot_acquire("alive", limit=1, ttl=0.4)
    await state.stream_keepalive("alive", ttl=60)

    await asyncio.sleep(0.6)

    assert not await state.stream_slot_acquire("other", limit=1, ttl=60)


async def test_live_text_is_the_deltas_in_order_with_their_meta():
    state, session = get_stream_state(), uuid.uuid4()
    await state.stream_publish(session, "a", meta={"streamId": "a", "tokens": 0}, ttl=60)
    for i, delta in enumerate(["Hel", "lo", "!"]):
        await state.stream_publish(session, "a", meta={"streamId": "a", "tokens": i + 1},
                                   delta=delta, ttl=60)  # fmt: skip
    await state.stream_publish(session, "b", meta={"streamId": "b", "tokens": 0}, ttl=60)

    snapshots = state.stream_snapshots(session)
    assert [(s["streamId"], s["deltas"], s["tokens"]) for s in snapshots] == [
        ("a", ["Hel", "lo", "!"], 3),
        ("b", [], 0),
    ]
    assert state.stream_snapshots(uuid.uuid4()) == []

    await state.stream_forget(session, "a")

    assert [s["streamId"] for s in state.stream_snapshots(session)] == ["b"]
    assert state.stream_snapshot("a") is None


async def test_a_stop_request_is_read_back():
    state = get_stream_state()
    assert await state.stream_stop_requested("s") is None
    await state.stream_stop_request("s", {"by": {"id": 1, "username": "a"}}, ttl=60)
    assert await state.stream_stop_requested("s") == {"by": {"id": 1, "username": "a"}}


async def test_the_first_stop_request_stands_so_the_first_member_is_who_stopped():
    state = get_stream_state()
    await state.stream_stop_request("s", {"by": {"id": 1}}, ttl=60)
    await state.stream_stop_request("s", {"by": {"id": 2}}, ttl=60)

    assert await state.stream_stop_requested("s") == {"by": {"id": 1}}


async def test_keepalive_keeps_a_silent_streams_live_record():
    """A model may send nothing for a long time (loading): the record must not expire."""
    state, session = get_stream_state(), uuid.uuid4()
    await state.stream_publish(session, "quiet", meta={"streamId": "quiet"}, delta="a", ttl=1)
    await state.stream_keepalive("quiet", ttl=60, session_id=session)

    await asyncio.sleep(1.5)

    assert [s["deltas"] for s in state.stream_snapshots(session)] == [["a"]]


async def test_a_dead_workers_text_outlives_its_slot_for_the_sweeper():
    state, session = get_stream_state(), uuid.uuid4()
    assert await state.stream_slot_acquire("dead", limit=1, ttl=0.3)
    await state.stream_publish(session, "dead", meta={"streamId": "dead"}, delta="so far",
                               ttl=0.3)  # fmt: skip
    assert state.stream_running("dead")

    await asyncio.sleep(1.2)

    assert not state.stream_running("dead")
    assert state.stream_snapshot("dead")["deltas"] == ["so far"]


async def test_keepalive_takes_back_a_slot_the_state_lost():
    """Redis restarted under a running stream: the next keepalive holds its slot again, so
    the sweeper does not take it for dead."""
    state = get_stream_state()
    assert await state.stream_slot_acquire("alive", limit=1, ttl=60)
    state.streams_reset()
    assert not state.stream_running("alive")

    await state.stream_keepalive("alive", ttl=60)

    assert state.stream_running("alive")
