"""The LLM's part of the ``/ws/chat/`` gateway, registered from ``LlmConfig.ready()``
(``chat.extensions``): the ``stream:request``, ``stream:stop``, ``stream:regenerate`` and
``message:resend`` events, and the ``activeStreams`` of a ``session:join`` reply."""

from __future__ import annotations

import logging

from chat.extensions import Route

from . import event_types
from .inputs import MessageResendInput, StreamRegenerateInput, StreamRequestInput, StreamStopInput
from .models import Stream
from .services.regenerate import answer_regenerate, prompt_resend
from .services.stream_sweeper import streams_sweep
from .services.streams import stream_request, stream_stop
from .stream_state import get_stream_state

logger = logging.getLogger(__name__)


async def on_stream_request(consumer, data: dict) -> dict:
    return await stream_request(
        user=consumer.user,
        session_id=data["sessionId"],
        prompt=data["prompt"],
        agent_id=data["agentId"],
        parent_id=data["parentMessageId"],
        config=data["config"],
    )


async def on_stream_stop(consumer, data: dict) -> dict:
    return await stream_stop(user=consumer.user, stream_id=data["streamId"])


async def on_stream_regenerate(consumer, data: dict) -> dict:
    return await answer_regenerate(
        user=consumer.user,
        message_id=data["messageId"],
        agent_id=data["agentId"],
        config=data["config"],
    )


async def on_message_resend(consumer, data: dict) -> dict:
    return await prompt_resend(
        user=consumer.user, message_id=data["messageId"], content=data["content"]
    )


def active_streams(session_id) -> list[dict]:
    """The running streams of a session with their text so far, from the shared state (so a
    stream on any worker is seen). ``index`` is the last chunk in ``content``.

    The session's streams left running by a dead worker are swept first (ended as failed,
    the room told), so a joiner never waits on one; a live record of a stream that has
    ended is not listed. A join must not fail because the shared state can't be read: it
    then lists none.
    """
    running = {
        str(stream.pk)
        for stream in streams_sweep(session_id=session_id)
        if stream.status not in Stream.FINAL
    }
    if not running:
        return []
    try:
        snapshots = get_stream_state().stream_snapshots(session_id)
    except Exception:
        logger.warning("active streams of session %s unavailable", session_id, exc_info=True)
        return []
    return [
        event_types.active_stream(
            stream_id=snapshot["streamId"],
            message_id=snapshot["messageId"],
            content="".join(snapshot["deltas"]),
            index=len(snapshot["deltas"]) - 1,
            tokens=snapshot["tokens"],
            model=snapshot.get("model", ""),
            requested_by=snapshot.get("requestedBy"),
        )
        for snapshot in snapshots
        if snapshot["streamId"] in running
    ]


ROUTES = {
    "stream:request": Route(StreamRequestInput, on_stream_request),
    "stream:stop": Route(StreamStopInput, on_stream_stop),
    # A new version of an answer is one more LLM request: it spends stream:request's budget.
    "stream:regenerate": Route(
        StreamRegenerateInput, on_stream_regenerate, throttle="stream:request"
    ),
    "message:resend": Route(MessageResendInput, on_message_resend, throttle="stream:request"),
}
