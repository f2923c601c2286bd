"""A room stream: the task that runs one answer and broadcasts it to the session.

It runs as its own asyncio task on the worker that accepted the request, not inside a
consumer's ``receive`` (TRAPS: a long await there starves the socket), so it goes on when
its requester disconnects. For each chunk it first appends the delta to the shared state,
then broadcasts it: a client that joins the session reads the text so far after joining the
group, so a chunk is either in its snapshot or reaches it live (or both, and the client
keeps chunks after the snapshot's ``index`` only). Nothing is missed.

Any member on any worker can stop it: the task listens on a channel in the group
``stream-<id hex>`` for a ``stream.stop`` message, and polls the shared state for a stop
request as well, since the channel layer may drop a message. Stopping sets the runner's
``stop`` event, which cancels the read from Ollama and so closes the HTTP connection.

The task asks the model as soon as it starts, while the request's handler stores the
request and opens the stop channel (``open``); the task then publishes the live record,
with the first chunk if the model's is in by then (``_go_live``), and the request is
acknowledged. It tells the room nothing before those exist. If the request can't be
stored, the task ends with nothing saved and nothing said; if the rest can't be set up, the
request is refused and the stream ends as failed.

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
from channels.layers import get_channel_layer
from django.utils import timezone

from chat.events import broadcast_async, broadcast_now, encode, group_for_session

from .. import event_types
from ..models import Stream
from ..provider import chat_model, model_closing
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
# How often the stop watcher also looks for a stop request in the shared state.
STOP_POLL_S = 1.0
STOP_MESSAGE_TYPE = "stream.stop"

# observer(plan, event): told of each event of the answer; its failures are logged, never
# raised into the stream.
StreamObserver = Callable[[StreamPlan, StreamEvent], Awaitable[None]]

# The streams running on this worker, by id: keeps their tasks referenced, and lets a stop
# from a client of this worker act at once.
running: dict[uuid.UUID, RoomStream] = {}


def group_for_stream(stream_id: uuid.UUID) -> str:
    return f"stream-{stream_id.hex}"


class _Unopened(Exception):
    """The request could not be stored, or its live record or stop channel set up."""


class RoomStream:
    """One answer being streamed into a session."""

    def __init__(self, plan: StreamPlan, *, observer: StreamObserver | None = None) -> None:
        self.plan = plan
        self.observer = observer
        self.stop = asyncio.Event()
        self.stopped_by: dict | None = None
        self.task: asyncio.Task | None = None
        self.watcher: asyncio.Task | None = None
        self.channel: str | None = None
        self.deltas: list[str] = []
        self.tokens = 0
        self.bytes_sent = 0
        self.first_token_at = None
        self.started_at = timezone.now()
        self.open_done = asyncio.Event()
        self.open_error: BaseException | None = None
        # Resolved once the live record is published (by the task: ``_go_live``).
        self.live: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.recorded = False

    @property
    def ids(self) -> dict:
        plan = self.plan
        return {
            "stream_id": plan.stream_id,
            "session_id": plan.session_id,
            "message_id": plan.message_id,
        }

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        """Run the answer as a task of its own: it asks the model at once, and waits for
        ``open`` before it tells the room anything."""
        running[self.plan.stream_id] = self
        self.task = asyncio.create_task(self._run(), name=f"room-stream-{self.plan.stream_id}")
        return self.task

    async def open(self, record: Awaitable[None]) -> None:
        """Store the request (``record``) while listening for stops, then have the live
        record published: done before the request is acknowledged, so a join or a stop
        right after the ack finds the stream, and a join never finds a stream whose messages
        are not stored. Raises what failed; the stream then ends (as failed, if stored)."""
        try:
            layer = get_channel_layer()
            group = group_for_stream(self.plan.stream_id)

            async def listen() -> None:
                self.channel = await layer.new_channel()
                await layer.group_add(group, self.channel)

            stored, listening = await asyncio.gather(record, listen(), return_exceptions=True)
            if isinstance(stored, BaseException):
                raise stored
            self.recorded = True
            if isinstance(listening, BaseException):
                raise listening
        except BaseException as exc:
            self.open_error = exc
            raise
        finally:
            self.open_done.set()
        await self.live

    def request_stop(self, by: dict | None) -> None:
        """Called when a member asks to stop: the first one asking is ``stoppedBy``."""
        if not self.stop.is_set():
            self.stopped_by = by
            self.stop.set()

    async def _run(self) -> None:
        try:
            await self._stream()
        finally:
            if not self.live.done():
                self.live.set_exception(_Unopened("The stream ended before it was published."))
                # Retrieved here: ``open`` may have raised already and never waits for it.
                self.live.exception()
            if self.watcher is not None:
                self.watcher.cancel()
                await asyncio.wait([self.watcher])
            await self.release()

    async def release(self) -> None:
        """Give back what the stream holds: its slot, live record and stop channel."""
        stream_id = self.plan.stream_id
        running.pop(stream_id, None)
        state = get_stream_state()
        steps = [
            lambda: state.stream_slot_release(str(stream_id)),
            lambda: state.stream_forget(self.plan.session_id, str(stream_id)),
        ]
        if self.channel is not None:
            group = group_for_stream(stream_id)
            steps.append(lambda: get_channel_layer().group_discard(group, self.channel))
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
            events = run_stream(llm, plan.messages, tools=tools, stop=self.stop)
            async with model_closing(llm), contextlib.aclosing(events):
                # The start comes once the request to Ollama is on its way.
                start = await anext(events)
                await self.open_done.wait()
                if self.open_error is not None:
                    raise _Unopened
                upcoming = asyncio.ensure_future(anext(events))
                try:
                    first = await self._go_live(upcoming)
                    self.watcher = asyncio.create_task(self._watch())
                    await self._start(start)
                    await self._tell(start)
                    if first is not None:
                        await self._send_chunk(first)
                        await self._tell(first)
                        upcoming = None
                    while (event := await self._next(events, upcoming)) is not None:
                        upcoming = None
                        if isinstance(event, StreamChunk):
                            await self._chunk(event)
                        elif isinstance(event, StreamTool):
                            await self._tool(event)
                        else:
                            ending = event
                            continue
                        await self._tell(event)
                finally:
                    if upcoming is not None and not upcoming.done():
                        # The answer can't be closed while a read of it is under way.
                        upcoming.cancel()
                        await asyncio.wait([upcoming])
        except _Unopened:
            # The request was refused: nothing was broadcast, so only the records end.
            if self.recorded:
                await self._save(self._interrupted("The answer could not be started."))
            return
        except asyncio.CancelledError:
            # The worker is going away: keep what was said, as a failed answer.
            await self._end(self._interrupted())
            raise
        except Exception:
            logger.exception("room stream %s failed", plan.stream_id)
            ending = self._interrupted()
        await self._end(ending or self._interrupted())

    async def _go_live(self, upcoming: asyncio.Future) -> StreamChunk | None:
        """Publish the live record, which lets the request be acknowledged. If the answer's
        next event (``upcoming``) is its first chunk and already in (the model is often
        quicker than storing the request), it goes in the same write, one round trip to the
        shared state fewer before the first chunk, and is returned."""
        # One turn of the loop: a chunk at hand is handed over at once (``llm.runner``).
        await asyncio.sleep(0)
        first = None
        ready = upcoming.done() and upcoming.exception() is None
        if ready and isinstance(upcoming.result(), StreamChunk):
            first = upcoming.result()
            self._take(first)
        try:
            await self._publish(first.delta if first is not None else None)
        finally:
            self.live.set_result(None)
        return first

    async def _next(self, events, upcoming: asyncio.Future | None) -> StreamEvent | None:
        """The answer's next event (``upcoming`` if one is being read); None at the end."""
        try:
            return await (upcoming if upcoming is not None else anext(events))
        except StopAsyncIteration:
            return None

    def _interrupted(self, message: str = "The answer was interrupted.") -> StreamError:
        return StreamError(
            content="".join(self.deltas),
            tokens=self.tokens,
            prompt_tokens=0,
            model=self.plan.config.model,
            duration_ms=round((timezone.now() - self.started_at).total_seconds() * 1000),
            latency_ms=None,
            errors=1,
            code="INTERNAL",
            message=message,
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
            event_types.stream_chunk(
                **self.ids,
                index=chunk.index,
                delta=chunk.delta,
                tokens=chunk.tokens,
                is_complete=chunk.is_complete,
                content=chunk.content,
            ),
        )

    async def _tool(self, event: StreamTool) -> None:
        await self._broadcast(
            event_types.STREAM_TOOL,
            event_types.stream_tool(
                **self.ids, name=event.name, args=event.args, result=event.result
            ),
        )

    async def _end(self, ending: StreamEnd) -> None:
        """Save the answer, then tell the room how it ended: exactly one final frame."""
        await self._save(ending)
        await self._broadcast(*self._final_frame(ending))
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
        }
        if isinstance(ending, StreamComplete):
            return StreamOutcome(
                status=Stream.Status.COMPLETED, finish_reason=ending.finish_reason, **common
            )
        if isinstance(ending, StreamStopped):
            by = (self.stopped_by or {}).get("id")
            return StreamOutcome(
                status=Stream.Status.STOPPED, finish_reason="stopped", stopped_by_id=by, **common
            )
        return StreamOutcome(
            status=Stream.Status.FAILED,
            finish_reason="error",
            error_code=getattr(ending, "code", "INTERNAL"),
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
        """Until the stream ends: take stop requests (channel message or shared state) and
        keep the stream's slot and live record from expiring."""
        layer, state = get_channel_layer(), get_stream_state()
        stream_id = str(self.plan.stream_id)
        receive: asyncio.Future | None = None
        kept_alive = time.monotonic()
        try:
            while True:
                if receive is None:
                    receive = asyncio.ensure_future(layer.receive(self.channel))
                done, _ = await asyncio.wait([receive], timeout=STOP_POLL_S)
                try:
                    if done:
                        message, receive = receive.result(), None
                        if message.get("type") == STOP_MESSAGE_TYPE:
                            self.request_stop(message.get("by"))
                        continue
                    if asked := await state.stream_stop_requested(stream_id):
                        self.request_stop(asked.get("by"))
                    if time.monotonic() - kept_alive >= KEEPALIVE_S:
                        await state.stream_keepalive(
                            stream_id, ttl=LIVE_TTL_S, session_id=self.plan.session_id
                        )
                        kept_alive = time.monotonic()
                except Exception:
                    receive = None
                    logger.warning("stop watch of stream %s failed", stream_id, exc_info=True)
                    await asyncio.sleep(STOP_POLL_S)
        finally:
            if receive is not None:
                receive.cancel()
