"""The two things a member can do to a room stream: request one and stop one.

``stream_request`` takes a slot among ``MAX_CONCURRENT_STREAMS`` across every worker, checks
the request and reads what the model needs (membership, the agent, the context), then
starts the answer as its own task, which asks the model at once, while it stores both
messages and the ``Stream`` row and opens the stream's stop channel; it returns once the
stream can be found (stored, its live record published). The answer reaches the room as
``stream:*`` events, none before the commit. ``stream_stop`` works from any worker: the
worker running the stream is told through the channel layer and the shared state.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from accounts.serializers import render_user
from chat.state import get_state
from chatproject.errors import DomainError

from ..models import Stream
from ..selectors import stream_get_for_member
from .room_stream import (
    LIVE_TTL_S,
    STOP_MESSAGE_TYPE,
    RoomStream,
    StreamObserver,
    group_for_stream,
    running,
)
from .slots import slot_acquire, slot_release
from .stream_records import stream_draft, stream_record

logger = logging.getLogger(__name__)


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
    # The slot comes first, so a stream row never exists without one (the sweeper fails a
    # running stream whose slot is gone).
    await slot_acquire(str(stream_id))
    try:
        plan = await database_sync_to_async(stream_draft)(
            user=user,
            session_id=session_id,
            stream_id=stream_id,
            prompt=prompt,
            agent_id=agent_id,
            parent_id=parent_id,
            config=config,
        )
    except BaseException:
        await slot_release(str(stream_id))
        raise
    # The write is handed to the database thread before the task that asks the model runs:
    # that task's first steps (building the client, sending the request) would hold the
    # loop first.
    record = asyncio.ensure_future(database_sync_to_async(stream_record)(plan=plan, prompt=prompt))
    room = RoomStream(plan, observer=observer)
    room.start()
    try:
        await room.open(record)
    except DomainError:
        raise
    except Exception:
        logger.exception("stream %s could not start", stream_id)
        raise DomainError("INTERNAL", "The answer could not be started.") from None
    return {
        "streamId": str(stream_id),
        "messageId": str(plan.message_id),
        "userMessageId": str(plan.user_message_id),
    }


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
        await get_state().stream_stop_request(str(stream.pk), {"by": by}, ttl=LIVE_TTL_S)
        await get_channel_layer().group_send(
            group_for_stream(stream.pk), {"type": STOP_MESSAGE_TYPE, "by": by}
        )
    return {"streamId": str(stream.pk), "status": stream.status, "stopRequested": True}
