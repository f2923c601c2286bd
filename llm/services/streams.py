"""The two things a member can do to a room stream: request one and stop one.

``stream_request`` takes a slot among ``MAX_CONCURRENT_STREAMS`` across every worker while it
checks the request and reads what the model needs (membership, the agent, the context), then
starts the answer as its own task, which asks the model at once, while it stores both
messages and the ``Stream`` row and opens the stream's stop channel; it returns once the
stream can be found (stored, its live record published). The answer reaches the room as
``stream:*`` events, none before the commit. ``stream_stop`` works from any worker: the
worker running the stream is told through the channel layer and the shared state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from accounts.serializers import render_user
from chatproject.errors import DomainError

from ..models import Stream
from ..selectors import stream_get_for_member
from ..stream_state import get_stream_state
from .room_stream import (
    LIVE_TTL_S,
    STOP_MESSAGE_TYPE,
    RoomStream,
    StreamObserver,
    group_for_stream,
    running,
)
from .slots import slot_acquire, slot_release
from .stream_records import StreamPlan, stream_draft, stream_record

logger = logging.getLogger(__name__)


def _runs_to_its_end(start: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
    """Once read, a request runs to its end even if its caller goes away meanwhile, as its
    answer would: a half-started stream would hold its slot and rows with nobody to end it."""

    @functools.wraps(start)
    async def shielded(**request) -> dict:
        starting = asyncio.ensure_future(start(**request))
        # Retrieved here, so a refusal nobody waits for any more is not logged as lost.
        starting.add_done_callback(lambda task: task.cancelled() or task.exception())
        return await asyncio.shield(starting)

    return shielded


@_runs_to_its_end
async def stream_request(
    *,
    user,
    session_id,
    prompt: str,
    agent_id=None,
    parent_id=None,
    config: dict | None = None,
    observer: StreamObserver | None = None,
) -> dict:
    """Start an answer to ``prompt`` in the session: ``{streamId, messageId, userMessageId}``.

    STREAM_LIMIT when ``MAX_CONCURRENT_STREAMS`` answers already run (nothing is saved);
    Ollama's own failures (an unknown model, a server down) come later, as ``stream:error``.
    ``observer`` also sees every event of the answer (the ``/ws/ai/`` door relays them).
    """
    stream_id = uuid.uuid4()
    key = str(stream_id)
    loop = asyncio.get_running_loop()
    # The slot is taken while the request is read, and nothing is stored before both are
    # done: a stream row never exists without a slot (the sweeper fails a running stream
    # whose slot is gone), and neither waits for the other's round trip.
    slot: concurrent.futures.Future[None] = concurrent.futures.Future()
    taking = asyncio.ensure_future(_slot_take(key, slot))
    begun: asyncio.Future[RoomStream] = loop.create_future()
    # The answer's task runs in this context, not in the database thread's (where asgiref
    # marks its one thread as busy, so the task's own database calls would be refused).
    context = contextvars.copy_context()

    def begin(plan: StreamPlan) -> None:
        room = RoomStream(plan, observer=observer)
        room.start()
        begun.set_result(room)

    def read_then_store() -> StreamPlan | None:
        # One call in the database thread, on one connection: the answer begins on the loop
        # (its task asks the model) as soon as the request is read, while this thread goes
        # on to store it. A second call would queue behind the loop's work of asking the
        # model, then take a connection from the pool again. The plan comes back unstored
        # if the slot's answer is not in yet: the thread every connection of this worker
        # shares never waits for Redis.
        plan = stream_draft(
            user=user,
            session_id=session_id,
            stream_id=stream_id,
            prompt=prompt,
            agent_id=agent_id,
            parent_id=parent_id,
            config=config,
        )
        if not slot.done():
            return plan
        slot.result()
        loop.call_soon_threadsafe(begin, plan, context=context)
        stream_record(plan=plan, prompt=prompt)
        return None

    stored = asyncio.ensure_future(database_sync_to_async(read_then_store)())
    await asyncio.wait([begun, stored], return_when=asyncio.FIRST_COMPLETED)
    if not begun.done():
        # Nothing is stored yet. A request that is wrong is refused as such (the draft's
        # error comes first), else the slot decides.
        await asyncio.wait([taking])
        if stored.exception() is not None:
            if taking.exception() is None:
                await slot_release(key)
            raise stored.exception()
        if taking.exception() is not None:
            raise taking.exception()
        plan = stored.result()
        begin(plan)
        stored = asyncio.ensure_future(
            database_sync_to_async(stream_record)(plan=plan, prompt=prompt)
        )
    room = begun.result()
    try:
        await room.open(stored)
    except DomainError:
        raise
    except Exception:
        logger.exception("stream %s could not start", stream_id)
        raise DomainError("INTERNAL", "The answer could not be started.") from None
    return {
        "streamId": key,
        "messageId": str(room.plan.message_id),
        "userMessageId": str(room.plan.user_message_id),
    }


async def _slot_take(key: str, outcome: concurrent.futures.Future) -> None:
    """Take the slot and tell the database thread looking for it, whatever happens."""
    try:
        await slot_acquire(key)
    except BaseException as exc:
        outcome.set_exception(exc)
        raise
    outcome.set_result(None)


async def stream_stop(*, user, stream_id) -> dict:
    """Stop a running answer (any member of its session): ``{streamId, status,
    stopRequested}``. Stopping one that has ended already changes nothing."""
    stream = await database_sync_to_async(stream_get_for_member)(user=user, stream_id=stream_id)
    if stream.status in Stream.FINAL:
        return {"streamId": str(stream.pk), "status": stream.status, "stopRequested": False}
    by = render_user(user)
    local = running.get(stream.pk)
    if local is not None:
        local.request_stop(by)
    else:
        # The state is read by the running worker's poll even if the message is dropped.
        await get_stream_state().stream_stop_request(str(stream.pk), {"by": by}, ttl=LIVE_TTL_S)
        await get_channel_layer().group_send(
            group_for_stream(stream.pk), {"type": STOP_MESSAGE_TYPE, "by": by}
        )
    return {"streamId": str(stream.pk), "status": stream.status, "stopRequested": True}
