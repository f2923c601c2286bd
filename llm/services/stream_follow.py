"""Following a room stream from anywhere: the events of
``GET /api/chat/streams/:streamId/events``.

The stream may run on another worker, so this reads only what every worker shares:

- the shared state (``llm.stream_state``): a running stream's text so far as its list of chunk
  deltas, appended before each chunk is broadcast;
- the session's channel-layer group, where the running stream broadcasts each
  ``stream:chunk`` and its final frame;
- the ``Stream`` row and the answer's message, saved before the final frame goes out, with
  where each chunk ends in the text (``chunk_ends``).

The follower joins the group first, then sends the text so far (after ``Last-Event-ID``)
from the shared state as one ``chunk`` event whose ``id`` is the last chunk it includes; it
then forwards each live chunk whose index is the next one. The channel layer is at-most-once,
so a gap in the indexes, or a second with nothing for this stream, makes it read the shared
state again and send what it missed: nothing is doubled (indexes below the next are
dropped) and nothing is missing. Once the stream has ended (the final frame, or the row when
the frame was lost or the stream ended before the client came) it sends the rest of the text
from the saved message, split where ``Last-Event-ID`` says, and ends with ``complete``,
``stopped`` or ``error``. A second with nothing new also sweeps the stream
(``stream_sweeper``): one whose worker died is failed then, and the follower ends with it.

Only members may follow, for as long as they are members: the follower is in its user's
group too, so a removal from the session (``session.removed``, as the WebSocket gateway gets
it) or a ban ends it at once with an ``error`` (FORBIDDEN); since that message may be lost
as well, membership is also read again every ``MEMBER_CHECK_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import orjson
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from accounts.serializers import render_user
from accounts.services import USER_DEACTIVATED
from chat.events import (
    FRAME_MESSAGE_TYPE,
    SESSION_REMOVED_TYPE,
    frame_texts,
    group_for_session,
    group_for_user,
)
from chat.selectors import membership_get

from .. import event_types, sse_events
from ..models import Stream
from ..sse_wire import KEEPALIVE, sse_event
from ..stream_state import get_stream_state
from .stream_sweeper import stream_sweep

logger = logging.getLogger(__name__)

# With nothing from the channel layer for this long, the shared state is read again.
POLL_S = 1.0
KEEPALIVE_S = 15.0
# How often membership is read again, in case the removal message was lost.
MEMBER_CHECK_S = 5.0
NOT_A_MEMBER = "You are no longer a member of this stream's session."
DEACTIVATED = "This account was deactivated."

FINAL_EVENTS = {
    event_types.STREAM_COMPLETE: sse_events.COMPLETE,
    event_types.STREAM_STOPPED: sse_events.STOPPED,
    event_types.STREAM_ERROR: sse_events.ERROR,
}
ERROR_SENTENCES = {
    "INVALID_MODEL": "The model is not available on the Ollama server.",
    "LLM_UNAVAILABLE": "The language model was unavailable.",
}


def _ended_row(stream_id) -> Stream:
    return Stream.objects.select_related("message", "stopped_by").get(pk=stream_id)


def _swept_row(stream: Stream) -> Stream | None:
    """The row once the stream has ended, or been swept because its worker died; None while
    it runs."""
    if stream_sweep(stream=stream).status in Stream.FINAL:
        return _ended_row(stream.pk)
    return None


def _snapshot(stream_id: str) -> dict | None:
    try:
        return get_stream_state().stream_snapshot(stream_id)
    except Exception:
        logger.warning("the live record of stream %s can't be read", stream_id, exc_info=True)
        return None


async def _drop_channel(layer, channel: str, receive: asyncio.Future | None) -> None:
    """Give the channel back. Channels has no call for it: a layer drops a channel when a
    ``receive`` on it is cancelled (the Redis pub/sub layer unsubscribes then), so cancel
    one, started if none is waiting."""
    if receive is None:
        receive = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
    receive.cancel()
    # Wait for the layer's clean-up without swallowing a cancellation of this task.
    await asyncio.wait([receive])
    if not receive.cancelled() and receive.exception() is not None:
        logger.warning("giving channel %s back failed", channel, exc_info=receive.exception())


class StreamFollower:
    """``user`` (a member of its session) following one stream, from just after chunk
    ``last_index``."""

    def __init__(self, stream: Stream, *, user, last_index: int = -1) -> None:
        self.stream = stream
        self.user = user
        self.ids = {
            "stream_id": stream.pk,
            "session_id": stream.session_id,
            "message_id": stream.message_id,
        }
        self.next = max(last_index, -1) + 1
        self.member_checked = time.monotonic()

    async def events(self) -> AsyncIterator[bytes]:
        """The encoded events, until the stream's final one."""
        if self.stream.status in Stream.FINAL:
            row = await database_sync_to_async(_ended_row)(self.stream.pk)
            for event in self._ended(row):
                yield event
            return
        layer = get_channel_layer()
        channel = await layer.new_channel()
        groups = [group_for_session(self.stream.session_id), group_for_user(self.user.pk)]
        for group in groups:
            await layer.group_add(group, channel)
        receive: asyncio.Future | None = None
        try:
            events, ended = await self._poll()
            last_sent = time.monotonic()
            while True:
                for event in events:
                    yield event
                if ended:
                    return
                if events:
                    last_sent = time.monotonic()
                if receive is None:
                    receive = asyncio.ensure_future(layer.receive(channel))
                done, _ = await asyncio.wait([receive], timeout=POLL_S)
                if not done:
                    events, ended = await self._poll()
                    if not events and time.monotonic() - last_sent >= KEEPALIVE_S:
                        events = [KEEPALIVE]
                else:
                    try:
                        message = receive.result()
                    except Exception:
                        logger.warning("channel layer receive failed; polling", exc_info=True)
                        await asyncio.sleep(POLL_S)
                        message = {}
                    receive = None
                    events, ended = await self.on_message(message)
                if not ended and not await self._still_member():
                    events, ended = [self._refused(NOT_A_MEMBER)], True
        finally:
            for group in groups:
                try:
                    await layer.group_discard(group, channel)
                except Exception:
                    logger.warning("leaving %s failed", group, exc_info=True)
            await _drop_channel(layer, channel, receive)

    # --- what arrives -----------------------------------------------------------------------

    async def on_message(self, message: dict) -> tuple[list[bytes], bool]:
        kind, session_id = message.get("type"), str(self.stream.session_id)
        if kind == SESSION_REMOVED_TYPE and message.get("sessionId") == session_id:
            return [self._refused(NOT_A_MEMBER)], True
        if kind == USER_DEACTIVATED:
            return [self._refused(DEACTIVATED)], True
        if kind != FRAME_MESSAGE_TYPE:
            return [], False
        events: list[bytes] = []
        for text in frame_texts(message):
            more, ended = await self._on_frame(orjson.loads(text))
            events += more
            if ended:
                return events, True
        return events, False

    async def _on_frame(self, frame: dict) -> tuple[list[bytes], bool]:
        data = frame.get("data") or {}
        if data.get("streamId") != str(self.stream.pk):
            return [], False
        event = frame.get("event")
        if event == event_types.STREAM_CHUNK:
            index = data["index"]
            if index < self.next:
                return [], False
            if index > self.next:
                # The channel layer dropped a chunk: the shared state has it.
                return await self._poll()
            return [self._chunk(index, data["delta"])], False
        if event in FINAL_EVENTS:
            events, found = await self._catch_up()
            if not found:
                row = await database_sync_to_async(_ended_row)(self.stream.pk)
                if row.status in Stream.FINAL:
                    events += self._rest_of(row)
            return [*events, self._final(FINAL_EVENTS[event], data)], True
        return [], False

    async def _poll(self) -> tuple[list[bytes], bool]:
        """Catch up from the shared state; with nothing new, from the row if the stream has
        ended (or is swept now: its worker died)."""
        events, _ = await self._catch_up()
        if events:
            return events, False
        row = await database_sync_to_async(_swept_row)(self.stream)
        if row is None:
            return [], False
        return self._ended(row), True

    async def _still_member(self) -> bool:
        """Whether the user is still a member, read again at most every ``MEMBER_CHECK_S``."""
        if time.monotonic() - self.member_checked < MEMBER_CHECK_S:
            return True
        self.member_checked = time.monotonic()
        membership = await database_sync_to_async(membership_get)(
            user=self.user, session_id=self.stream.session_id
        )
        return membership is not None

    async def _catch_up(self) -> tuple[list[bytes], bool]:
        """The text after the last chunk sent, from the shared state; and whether the stream
        has a live record there."""
        snapshot = await sync_to_async(_snapshot, thread_sensitive=False)(str(self.stream.pk))
        if snapshot is None:
            return [], False
        deltas = snapshot["deltas"]
        if len(deltas) <= self.next:
            return [], True
        return [self._chunk(len(deltas) - 1, "".join(deltas[self.next :]))], True

    # --- a stream that has ended --------------------------------------------------------

    def _ended(self, row: Stream) -> list[bytes]:
        return [*self._rest_of(row), self._final(*self._final_of(row))]

    @staticmethod
    def _text_of(row: Stream) -> str:
        """The stream's own saved text: its version's (``Stream.content``; a regenerated
        message shows another), else the message's (a row saved before rows kept it)."""
        return "" if row.message.is_deleted else (row.content or row.message.content)

    def _rest_of(self, row: Stream) -> list[bytes]:
        """The saved text after the chunks the client has, split where its chunk ends."""
        content = self._text_of(row)
        # Streams saved before chunk ends were kept: every chunk ends at the end.
        ends = row.chunk_ends or [len(content)] * row.chunks_sent
        if len(ends) <= self.next:
            return []
        start = ends[self.next - 1] if self.next > 0 else 0
        return [self._chunk(len(ends) - 1, content[start:])]

    def _final_of(self, row: Stream) -> tuple[str, dict]:
        content = self._text_of(row)
        if row.status == Stream.Status.COMPLETED:
            duration = (row.completed_at - row.started_at) if row.completed_at else None
            return sse_events.COMPLETE, event_types.stream_complete(
                **self.ids,
                content=content,
                tokens=row.tokens_generated,
                prompt_tokens=row.prompt_tokens,
                finish_reason=row.finish_reason,
                model=row.model,
                duration_ms=round(duration.total_seconds() * 1000) if duration else 0,
            )
        if row.status == Stream.Status.STOPPED:
            stopped_by = render_user(row.stopped_by) if row.stopped_by else None
            return sse_events.STOPPED, event_types.stream_stopped(
                **self.ids, content=content, tokens=row.tokens_generated, stopped_by=stopped_by
            )
        code = row.error_code or "INTERNAL"
        message = row.error_message or ERROR_SENTENCES.get(code, "The answer failed.")
        return sse_events.ERROR, event_types.stream_error(**self.ids, code=code, message=message)

    # --- encoding -------------------------------------------------------------------------

    def _chunk(self, index: int, delta: str) -> bytes:
        self.next = index + 1
        data = sse_events.chunk(
            stream_id=self.stream.pk, message_id=self.stream.message_id, index=index, delta=delta
        )
        return sse_event(sse_events.CHUNK, data, event_id=index)

    def _final(self, name: str, data: dict) -> bytes:
        return sse_event(name, data, event_id=self.next - 1 if self.next > 0 else None)

    def _refused(self, sentence: str) -> bytes:
        """The ``error`` that ends the follow of someone who may no longer see the stream."""
        data = event_types.stream_error(**self.ids, code="FORBIDDEN", message=sentence)
        return self._final(sse_events.ERROR, data)
