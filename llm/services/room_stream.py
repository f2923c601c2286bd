"""A room stream: the task that runs one answer and broadcasts it to the session.

It runs as its own asyncio task on the worker that accepted the request, not inside a
consumer's ``receive`` (TRAPS: a long await there starves the socket), so it goes on when
its requester disconnects. It starts once its request is stored and its live record
published (``llm.services.streams``). For each chunk it first appends the delta to the shared
state, then broadcasts it: a client that joins the session reads the text so far after
joining the group, so a chunk is either in its snapshot or reaches it live (or both, and the
client keeps chunks after the snapshot's ``index`` only). Nothing is missed.

Any member on any worker stops it the same way: a stop request in the shared state
(``stream_stop``), which the running stream's watcher looks for every ``STOP_POLL_S``. It
then sets the runner's ``stop``, which cancels the read from Ollama and so closes the HTTP
connection. The watcher also keeps the stream's slot and live record from expiring.

An optional observer sees every event too, the ending last (after it is saved): that is how
the ``/ws/ai/`` door relays a conversation's answer to its one listener in its own frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from django.utils import timezone

from chat.events import broadcast_async, broadcast_now, encode, group_for_session
from chat.frame_size import (
    ENVELOPE_ALLOWANCE,
    event_max_bytes,
    fit_content,
    frame_max_bytes,
)
from chatproject import metrics

from .. import event_types
from ..models import Stream
from ..provider import chat_model, model_closing
from ..retrieval import grounded_context
from ..runner import run_stream
from ..stream_events import (
    StreamChunk,
    StreamComplete,
    StreamEnd,
    StreamError,
    StreamEvent,
    StreamStart,
    StreamStopped,
    StreamTool,
)
from ..stream_state import get_stream_state
from ..tools import build_tools
from .stream_records import StreamOutcome, StreamPlan, stream_finish

logger = logging.getLogger(__name__)

# A slot and a live record outlive their worker by at most this long.
LIVE_TTL_S = 60
KEEPALIVE_S = 15
# How often a running stream looks for a stop request in the shared state.
STOP_POLL_S = 0.25

# observer(plan, event): told of each event of the answer; its failures are logged, never
# raised into the stream.
StreamObserver = Callable[[StreamPlan, StreamEvent], Awaitable[None]]

# The streams running on this worker, by id: keeps their tasks referenced.
running: dict[uuid.UUID, RoomStream] = {}


def _whole_content_if_it_fits(data: dict) -> dict:
    """A frame's data with the whole answer (``content``) if the frame stays within the
    frame cap, else without it (``contentOmitted: true``): the listener has the text from
    the deltas, and the saved message all of it (CONTRACT section 3, "Frame size")."""
    return fit_content(data, room=frame_max_bytes() - ENVELOPE_ALLOWANCE)


def _tool_result_if_it_fits(data: dict) -> dict:
    """A ``stream:tool`` frame's data, without a ``result`` too large for a frame
    (``resultOmitted: true``): the saved message's ``metadata.toolCalls`` has it."""
    return fit_content(data, room=event_max_bytes(), field="result")


class RoomStream:
    """One answer being streamed into a session."""

    def __init__(self, plan: StreamPlan, *, observer: StreamObserver | None = None) -> None:
        self.plan = plan
        self.observer = observer
        self.stop = asyncio.Event()
        self.stopped_by: dict | None = None
        self.task: asyncio.Task | None = None
        self.deltas: list[str] = []
        self.tokens = 0
        self.bytes_sent = 0
        self.first_token_at = None
        self.started_at = timezone.now()
        # The files the answer was given passages of (``llm.retrieval``).
        self.citations: list[dict] = []

    @property
    def ids(self) -> dict:
        plan = self.plan
        return {
            "stream_id": plan.stream_id,
            "session_id": plan.session_id,
            "message_id": plan.message_id,
        }

    # --- lifecycle -------------------------------------------------------------------------

    async def publish(self) -> None:
        """Publish the live record (no text yet): done before the request is acknowledged,
        so a join right after the ack finds the stream."""
        await self._publish(None)

    def start(self) -> asyncio.Task:
        """Run the answer as a task of its own."""
        running[self.plan.stream_id] = self
        self.task = asyncio.create_task(self._run(), name=f"room-stream-{self.plan.stream_id}")
        return self.task

    async def _run(self) -> None:
        watcher = asyncio.create_task(self._watch())
        try:
            await self._stream()
        finally:
            watcher.cancel()
            await asyncio.wait([watcher])
            await self.release()

    async def release(self) -> None:
        """Give back what the stream holds: its slot and live record."""
        stream_id = self.plan.stream_id
        running.pop(stream_id, None)
        state = get_stream_state()
        steps = [
            lambda: state.stream_slot_release(str(stream_id)),
            lambda: state.stream_forget(self.plan.session_id, str(stream_id)),
        ]
        for step in steps:
            try:
                await step()
            except Exception:
                logger.warning("cleaning up stream %s failed", stream_id, exc_info=True)

    # --- the answer ------------------------------------------------------------------------

    async def _stream(self) -> None:
        plan = self.plan
        logger.info("stream %s started in session %s (%s)", plan.stream_id, plan.session_id,
                    plan.config.model)  # fmt: skip
        ending: StreamEnd | None = None
        try:
            tools = build_tools(plan.tool_names, session_id=plan.session_id, user=plan.user)
            llm = chat_model(plan.config)
            grounded = await grounded_context(
                session_id=plan.session_id, messages=plan.messages, prompt=plan.prompt
            )
            self.citations = grounded.citations
            events = run_stream(llm, grounded.messages, tools=tools, stop=self.stop)
            async with model_closing(llm), contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, StreamStart):
                        await self._start(event)
                    elif isinstance(event, StreamChunk):
                        await self._chunk(event)
                    elif isinstance(event, StreamTool):
                        await self._tool(event)
                    else:
                        ending = event
                        continue
                    await self._tell(event)
        except asyncio.CancelledError:
            # The worker is going away: keep what was said, as a failed answer.
            await self._end(self._interrupted())
            raise
        except Exception:
            logger.exception("room stream %s failed", plan.stream_id)
            ending = None
        await self._end(ending or self._interrupted())

    def _interrupted(self) -> StreamError:
        """The ending of an answer this task could not see through (the runner's own
        failures are counted where they happen)."""
        metrics.STREAM_ERRORS.labels("INTERNAL").inc()
        return StreamError(
            content="".join(self.deltas),
            tokens=self.tokens,
            prompt_tokens=0,
            model=self.plan.config.model,
            duration_ms=round((timezone.now() - self.started_at).total_seconds() * 1000),
            latency_ms=None,
            errors=1,
            code="INTERNAL",
            message="The answer was interrupted.",
        )

    async def _start(self, event: StreamStart) -> None:
        # Queued for the session's group without waiting for Redis to take it: the first
        # chunk's shared-state write then overlaps that round trip, and the group's queue
        # still sends the start first (``chat.broadcaster``).
        frame = {
            "event": event_types.STREAM_START,
            "data": event_types.stream_start(
                **self.ids,
                agent_id=self.plan.agent_id,
                model=event.model,
                requested_by=self.plan.requested_by,
                version=self.plan.version,
            ),
        }
        broadcast_now(group_for_session(self.plan.session_id), encode(frame))

    async def _chunk(self, chunk: StreamChunk) -> None:
        """Add a chunk to the live record, then send it: a joiner gets it in its snapshot
        or live (or both)."""
        self._take(chunk)
        await self._publish(chunk.delta)
        await self._send_chunk(chunk)

    def _take(self, chunk: StreamChunk) -> None:
        if self.first_token_at is None:
            self.first_token_at = timezone.now()
        self.deltas.append(chunk.delta)
        self.tokens = chunk.tokens

    async def _send_chunk(self, chunk: StreamChunk) -> None:
        self.bytes_sent += await self._broadcast(
            event_types.STREAM_CHUNK,
            _whole_content_if_it_fits(
                event_types.stream_chunk(
                    **self.ids,
                    index=chunk.index,
                    delta=chunk.delta,
                    tokens=chunk.tokens,
                    is_complete=chunk.is_complete,
                    content=chunk.content,
                )
            ),
        )

    async def _tool(self, event: StreamTool) -> None:
        await self._broadcast(
            event_types.STREAM_TOOL,
            _tool_result_if_it_fits(
                event_types.stream_tool(
                    **self.ids, name=event.name, args=event.args, result=event.result
                )
            ),
        )

    async def _end(self, ending: StreamEnd) -> None:
        """Save the answer, then tell the room how it ended: exactly one final frame."""
        await self._save(ending)
        event, data = self._final_frame(ending)
        await self._broadcast(event, _whole_content_if_it_fits(data))
        await self._tell(ending)

    async def _save(self, ending: StreamEnd) -> None:
        outcome = self._outcome(ending)
        logger.info("stream %s %s %s", self.plan.stream_id, outcome.status, outcome.error_code)
        try:
            await database_sync_to_async(stream_finish)(plan=self.plan, outcome=outcome)
        except Exception:
            logger.exception("saving the answer of stream %s failed", self.plan.stream_id)

    async def _tell(self, event: StreamEvent) -> None:
        if self.observer is None:
            return
        try:
            await self.observer(self.plan, event)
        except Exception:
            logger.warning("the observer of stream %s failed", self.plan.stream_id, exc_info=True)

    def _outcome(self, ending: StreamEnd) -> StreamOutcome:
        common = {
            "ending": ending,
            "first_token_at": self.first_token_at,
            "chunks_sent": len(self.deltas),
            "chunk_ends": list(itertools.accumulate(len(delta) for delta in self.deltas)),
            "bytes_sent": self.bytes_sent,
            "citations": self.citations,
        }
        if isinstance(ending, StreamComplete):
            return StreamOutcome(
                status=Stream.Status.COMPLETED, finish_reason=ending.finish_reason, **common
            )
        if isinstance(ending, StreamStopped):
            return StreamOutcome(
                status=Stream.Status.STOPPED,
                finish_reason="stopped",
                stopped_by=self.stopped_by,
                **common,
            )
        return StreamOutcome(
            status=Stream.Status.FAILED,
            finish_reason="error",
            error_code=getattr(ending, "code", "INTERNAL"),
            error_message=getattr(ending, "message", ""),
            **common,
        )

    def _final_frame(self, ending: StreamEnd) -> tuple[str, dict]:
        if isinstance(ending, StreamComplete):
            return event_types.STREAM_COMPLETE, event_types.stream_complete(
                **self.ids,
                content=ending.content,
                tokens=ending.tokens,
                prompt_tokens=ending.prompt_tokens,
                finish_reason=ending.finish_reason,
                model=ending.model,
                duration_ms=ending.duration_ms,
            )
        if isinstance(ending, StreamStopped):
            return event_types.STREAM_STOPPED, event_types.stream_stopped(
                **self.ids,
                content=ending.content,
                tokens=ending.tokens,
                stopped_by=self.stopped_by,
            )
        return event_types.STREAM_ERROR, event_types.stream_error(
            **self.ids, code=ending.code, message=ending.message
        )

    # --- shared state and broadcast --------------------------------------------------------

    def _meta(self) -> dict:
        plan = self.plan
        return {
            "streamId": str(plan.stream_id),
            "sessionId": str(plan.session_id),
            "messageId": str(plan.message_id),
            "model": plan.config.model,
            "requestedBy": plan.requested_by,
            "status": Stream.Status.STREAMING if self.deltas else Stream.Status.PENDING,
            "index": len(self.deltas) - 1,
            "tokens": self.tokens,
            "chunks": len(self.deltas),
            "bytes": self.bytes_sent,
            "startedAt": self.started_at.timestamp(),
            "firstTokenAt": self.first_token_at.timestamp() if self.first_token_at else None,
        }

    async def _publish(self, delta: str | None) -> None:
        try:
            await get_stream_state().stream_publish(
                self.plan.session_id,
                str(self.plan.stream_id),
                meta=self._meta(),
                delta=delta,
                ttl=LIVE_TTL_S,
            )
        except Exception:
            # Joiners would miss this chunk's text; the room still gets it live.
            logger.warning("publishing stream %s failed", self.plan.stream_id, exc_info=True)

    async def _broadcast(self, event: str, data: dict) -> int:
        """Send a frame to the session; the number of bytes it took."""
        frame = {"event": event, "data": data}
        await broadcast_async(group_for_session(self.plan.session_id), frame)
        return len(encode(frame).encode())

    # --- stop requests and keepalive -------------------------------------------------------

    async def _watch(self) -> None:
        """Until the stream ends: look for a stop request in the shared state, and keep the
        stream's slot and live record from expiring."""
        state = get_stream_state()
        stream_id = str(self.plan.stream_id)
        kept_alive = time.monotonic()
        while True:
            try:
                if asked := await state.stream_stop_requested(stream_id):
                    self.stopped_by = asked.get("by")
                    self.stop.set()
                    return
                if time.monotonic() - kept_alive >= KEEPALIVE_S:
                    await state.stream_keepalive(
                        stream_id, ttl=LIVE_TTL_S, session_id=self.plan.session_id
                    )
                    kept_alive = time.monotonic()
            except Exception:
                logger.warning("stop watch of stream %s failed", stream_id, exc_info=True)
            await asyncio.sleep(STOP_POLL_S)
