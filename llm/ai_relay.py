"""Relays: an answer's events, sent to the one ``/ws/ai/`` socket that asked for it, in the
frames of the protocol it asked with (``chat:start``, seed 001, or ``prompt``, seed 000).

A relay is the room stream's observer (``llm.services.room_stream``): the stream runs as its
own task, saves and broadcasts as in any room, and tells the relay each event, the ending
last, once it is saved. A relay whose socket has closed stays quiet; the answer goes on and
is saved, as a room's does when its requester leaves.
"""

from __future__ import annotations

import logging

from . import ai_events
from .services.stream_records import StreamPlan
from .stream_events import (
    StreamChunk,
    StreamComplete,
    StreamError,
    StreamEvent,
    StreamStopped,
)

logger = logging.getLogger(__name__)


class Relay:
    """One answer for one socket (``consumer``, an ``AiConsumer``)."""

    def __init__(self, consumer, *, conversation_id) -> None:
        self.consumer = consumer
        self.conversation_id = conversation_id
        self.stream_id: str | None = None
        self.detached = False
        self.led = False

    async def __call__(self, plan: StreamPlan, event: StreamEvent) -> None:
        """Called by the room stream with each event of the answer."""
        ended = isinstance(event, StreamComplete | StreamStopped | StreamError)
        if ended:
            self.consumer.answer_ended(self)
        if self.detached:
            return
        if not self.led:
            self.led = True
            await self.lead(plan)
        for name, data in self.frames(plan, event):
            await self.consumer.send_event(name, data)

    async def lead(self, plan: StreamPlan) -> None:
        """Called before the answer's first frame."""

    def frames(self, plan: StreamPlan, event: StreamEvent) -> list[tuple[str, object]]:
        raise NotImplementedError


class ChatRelay(Relay):
    """``chat:start``: ``chat:conversation`` (when made), ``chat:user-message``,
    ``chat:message`` per chunk, then ``chat:end``, ``chat:stopped`` or ``chat:error``."""

    def __init__(self, consumer, *, conversation_id, created: bool) -> None:
        super().__init__(consumer, conversation_id=conversation_id)
        self.created = created

    async def lead(self, plan: StreamPlan) -> None:
        if self.created:
            await self.consumer.send_event(
                ai_events.CHAT_CONVERSATION,
                ai_events.chat_conversation(conversation_id=self.conversation_id),
            )
        await self.consumer.send_event(
            ai_events.CHAT_USER_MESSAGE,
            ai_events.chat_user_message(message_id=plan.user_message_id, content=plan.prompt),
        )

    def frames(self, plan: StreamPlan, event: StreamEvent) -> list[tuple[str, object]]:
        if isinstance(event, StreamChunk):
            if not event.delta:
                return []
            return [(ai_events.CHAT_MESSAGE, ai_events.chat_message(content=event.delta))]
        ids = {"message_id": plan.message_id, "conversation_id": self.conversation_id}
        if isinstance(event, StreamComplete):
            return [
                (
                    ai_events.CHAT_END,
                    ai_events.chat_end(
                        **ids,
                        total_tokens=event.tokens,
                        prompt_tokens=event.prompt_tokens,
                        model=event.model,
                        finish_reason=event.finish_reason,
                    ),
                )
            ]
        if isinstance(event, StreamStopped):
            return [(ai_events.CHAT_STOPPED, ai_events.chat_stopped(**ids))]
        if isinstance(event, StreamError):
            return [
                (ai_events.CHAT_ERROR, ai_events.chat_error(message=event.message, code=event.code))
            ]
        return []


class PromptRelay(Relay):
    """``prompt``: ``ai_chunk`` per chunk (the delta, bare), then ``ai_complete``; a failure
    is ``error`` with a ``status_code``."""

    def frames(self, plan: StreamPlan, event: StreamEvent) -> list[tuple[str, object]]:
        if isinstance(event, StreamChunk):
            if not event.delta:
                return []
            return [(ai_events.AI_CHUNK, ai_events.ai_chunk(delta=event.delta))]
        if isinstance(event, StreamComplete | StreamStopped):
            reason = event.finish_reason if isinstance(event, StreamComplete) else "stopped"
            data = ai_events.ai_complete(
                thread=self.conversation_id, message_id=plan.message_id, finish_reason=reason
            )
            return [(ai_events.AI_COMPLETE, data)]
        if isinstance(event, StreamError):
            return [
                (ai_events.ERROR, ai_events.prompt_error(message=event.message, code=event.code))
            ]
        return []
