"""The two things a member can do to a room stream: request one and stop one.

``stream_request`` is a straight sequence (the consumer has throttled it already): take a
slot among ``MAX_CONCURRENT_STREAMS`` across every worker, check and store the request in one
database call (both messages and the ``Stream`` row), publish the stream's live record,
start the answer as its own task, and return the ack's data. The answer reaches the room as
``stream:*`` events, none before the commit.

``stream_stop`` works the same from any worker and any door: it leaves a stop request in the
shared state, which the worker running the stream looks for (``room_stream``).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async

from accounts.serializers import render_user
from chatproject.errors import DomainError

from ..models import Stream
from ..selectors import stream_get_for_member
from ..stream_state import get_stream_state
from .assistant_access import assistant_start_check
from .room_stream import LIVE_TTL_S, RoomStream, StreamObserver
from .slots import slot_acquire, slot_release
from .stream_records import StreamPlan, stream_draft, stream_open


def runs_to_its_end(start: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
    """Once read, a request runs to its end even if its caller goes away meanwhile, as its
    answer would: a half-started stream would hold its slot and rows with nobody to end it."""

    @functools.wraps(start)
    async def shielded(**request) -> dict:
        starting = asyncio.ensure_future(start(**request))
        # Retrieved here, so a refusal nobody waits for any more is not logged as lost.
        starting.add_done_callback(lambda task: task.cancelled() or task.exception())
        return await asyncio.shield(starting)

    return shielded


async def plan_in_slot(
    open_plan: Callable[..., StreamPlan],
    request: dict,
    *,
    check: Callable[..., object] | None = None,
) -> StreamPlan:
    """Take the slot of ``request["stream_id"]``, then store the stream with ``open_plan``:
    the slot first, so a stream row never exists without one (the sweeper fails a running
    stream whose slot is gone); released if storing fails. With no slot free, ``check``
    (``open_plan``'s checks, storing nothing) runs first: a request that is wrong is
    refused as such, even when no slot is free."""
    key = str(request["stream_id"])
    try:
        await slot_acquire(key)
    except DomainError:
        if check is not None:
            await database_sync_to_async(check)(**request)
        raise
    try:
        return await database_sync_to_async(open_plan)(**request)
    except BaseException:
        await slot_release(key)
        raise


async def room_start(plan: StreamPlan, *, observer: StreamObserver | None = None) -> dict:
    """Publish and start a stored plan's ``RoomStream``: ``{streamId, messageId,
    userMessageId}``."""
    room = RoomStream(plan, observer=observer)
    await room.publish()
    room.start()
    return {
        "streamId": str(plan.stream_id),
        "messageId": str(plan.message_id),
        "userMessageId": str(plan.user_message_id),
    }


@runs_to_its_end
async def stream_request(
    *,
    user,
    session_id,
    prompt: str,
    agent_id=None,
    parent_id=None,
    config: dict | None = None,
    observer: StreamObserver | None = None,
    one_to_one: bool = False,
) -> dict:
    """Start an answer to ``prompt`` in the session: ``{streamId, messageId, userMessageId}``.

    STREAM_LIMIT when ``MAX_CONCURRENT_STREAMS`` answers already run (nothing is saved);
    Ollama's own failures (an unknown model, a server down) come later, as ``stream:error``.
    ``observer`` also sees every event of the answer (the ``/ws/ai/`` door relays them);
    ``one_to_one``: the session is that door's conversation (``stream_draft``).
    """
    assistant_start_check(user)
    stream_id = uuid.uuid4()
    request = {
        "user": user,
        "session_id": session_id,
        "stream_id": stream_id,
        "prompt": prompt,
        "agent_id": agent_id,
        "parent_id": parent_id,
        "config": config,
        "one_to_one": one_to_one,
    }
    plan = await plan_in_slot(stream_open, request, check=stream_draft)
    return await room_start(plan, observer=observer)


async def stream_stop(*, user, stream_id) -> dict:
    """Stop a running answer (any member of its session): ``{streamId, status,
    stopRequested}``. Stopping one that has ended already changes nothing."""
    stream = await database_sync_to_async(stream_get_for_member)(user=user, stream_id=stream_id)
    if stream.status in Stream.FINAL:
        return {"streamId": str(stream.pk), "status": stream.status, "stopRequested": False}
    await get_stream_state().stream_stop_request(
        str(stream.pk), {"by": render_user(user)}, ttl=LIVE_TTL_S
    )
    return {"streamId": str(stream.pk), "status": stream.status, "stopRequested": True}
