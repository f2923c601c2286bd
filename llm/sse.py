"""The two server-sent-event doors: ``POST /api/stream`` (an answer to the conversation the
client sends, seed 003) and ``GET /api/chat/streams/:streamId/events`` (attach to a room
stream from anywhere).

Plain async Django views, not DRF's (which are sync and would hold a thread for the whole
stream): each authenticates (``http_auth``), validates and checks permissions first, so a
refusal is a JSON error in the API's one shape; only then does the event stream start.
"""

from __future__ import annotations

import uuid

from channels.db import database_sync_to_async
from django.views.decorators.csrf import csrf_exempt

from chat.throttles import throttle_check
from chatproject.errors import DomainError, error_json

from .async_doors import json_body, method_not_allowed
from .http_auth import request_user
from .inputs import StreamBodyInput
from .selectors import stream_get_for_member
from .services.slots import slot_acquire, slot_release
from .services.sse_answer import sse_answer, sse_prepare
from .services.stream_follow import StreamFollower
from .sse_wire import EventStreamResponse

# An LLM request spends the same per-user budget whichever door it comes through.
THROTTLE_EVENT = "stream:request"


@csrf_exempt
async def stream_view(request):
    """``POST /api/stream``: ``message-start``, ``message-chunk``..., then
    ``message-complete`` or ``error``."""
    if request.method != "POST":
        return method_not_allowed("POST")
    slot_key = None
    try:
        user = await request_user(request)
        data = json_body(request, StreamBodyInput)
        await throttle_check(user_id=user.pk, event=THROTTLE_EVENT)
        slot_key = f"sse-{uuid.uuid4().hex}"
        await slot_acquire(slot_key)
        plan = await database_sync_to_async(sse_prepare)(user=user, data=data)
    except BaseException as error:
        # Releasing a slot that was refused (STREAM_LIMIT) is harmless.
        if slot_key is not None:
            await slot_release(slot_key)
        if isinstance(error, DomainError):
            return error_json(error)
        raise
    # The answer's generator holds the slot from here and gives it back when it ends. A
    # client gone before the response even starts leaves it to expire (slots.SLOT_TTL_S).
    return EventStreamResponse(sse_answer(plan, slot_key=slot_key))


def _last_event_id(request) -> int:
    """The index of the last chunk the client has (-1: none)."""
    raw = request.headers.get("Last-Event-ID", "").strip()
    try:
        return max(-1, int(raw))
    except ValueError:
        return -1


@csrf_exempt
async def stream_events_view(request, stream_id):
    """``GET /api/chat/streams/:streamId/events`` (members of the stream's session)."""
    if request.method != "GET":
        return method_not_allowed("GET")
    try:
        user = await request_user(request)
        stream = await database_sync_to_async(stream_get_for_member)(user=user, stream_id=stream_id)
    except DomainError as error:
        return error_json(error)
    follower = StreamFollower(stream, user=user, last_index=_last_event_id(request))
    return EventStreamResponse(follower.events())
